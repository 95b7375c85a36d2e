"""The contact import wizard: upload (``/contacts/imports/``), then on the import's own page
(``/contacts/imports/<id>/``) the column mapping with a preview, the progress bar while it runs (import.js polls
``progress.json``), and the per-row report with its filters and CSV download once it is done.

The page shows what the import's status calls for, so a reload or a link always lands on the right step. Reads go
through ``campaigns.contact_selectors``, writes through ``campaigns.imports``; the team's agents see imports
read-only, outsiders get the 404 page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from campaigns.access import ImportNotFound, NotAllowed, can_manage_team, get_import_for_user, teams_managed_by
from campaigns.contact_forms import ImportMappingForm, ImportRowFilterForm, ImportUploadForm
from campaigns.contact_selectors import FINISHED_STATUSES, import_list, import_progress, import_rows
from campaigns.contacts import ContactInputError, contact_team_resolve
from campaigns.import_csv import DELIMITER_NAMES, ImportFileRejected, MappingInvalid
from campaigns.imports import (
    ImportInputError,
    ImportStateError,
    Preview,
    contact_import_cancel,
    contact_import_configure,
    contact_import_create,
    contact_import_preview,
    contact_import_start,
    import_report_filename,
    import_report_lines,
    import_upload_read,
)
from campaigns.models import ContactImport
from campaigns.views.contacts import not_allowed_page, not_found_page, user_of
from crm.models import User

IMPORTS_SHOWN = 50
REPORT_PAGE_SIZE = 100
SAMPLE_VALUES = 3
POLL_SECONDS = 2


def import_url(contact_import: ContactImport | int) -> str:
    pk = contact_import.pk if isinstance(contact_import, ContactImport) else contact_import
    return reverse("contact-import-detail", kwargs={"import_id": str(pk)})


# --- Upload --------------------------------------------------------------------------------------------------------


def _upload_form(request: HttpRequest, user: User) -> ImportUploadForm | None:
    """The upload form for a team's manager or an admin; None for everyone else."""
    if not (user.is_admin or user.is_manager):
        return None
    managed = teams_managed_by(user=user).order_by("name")
    first_two = list(managed[:2])
    if not first_two:
        return None
    latest = import_list(user=user).values_list("default_region", flat=True).first() or ""
    data = request.POST if request.method == "POST" else None
    files = request.FILES if request.method == "POST" else None
    return ImportUploadForm(data, files, teams=managed, choose_team=len(first_two) > 1, initial_region=latest)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def import_list_view(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    form = _upload_form(request, user)
    if request.method == "POST":
        if form is None:
            return not_allowed_page(
                request,
                reason="Only a team's manager or an admin can import contacts.",
                back_url=reverse("contact-import-list"),
                back_label="Back to the imports",
            )
        if form.is_valid():
            created = _create_import(request, user, form)
            if created is not None:
                return HttpResponseRedirect(import_url(created))
    context = {
        "form": form,
        "imports": list(import_list(user=user)[:IMPORTS_SHOWN]),
    }
    return render(request, "campaigns/contacts/imports.html", context)


def _create_import(request: HttpRequest, user: User, form: ImportUploadForm) -> ContactImport | None:
    data = form.cleaned_data
    upload = data["file"]
    try:
        team = data["team"] if "team" in form.fields else contact_team_resolve(actor=user, team_id=None)
        raw = import_upload_read(body=upload, declared_length=upload.size)
        contact_import, _ = contact_import_create(
            actor=user,
            team=team,
            raw=raw,
            filename=upload.name or "contacts.csv",
            default_region=data["default_region"],
            delimiter=data["delimiter"] or None,
            update_existing=data["update_existing"],
        )
    except ImportFileRejected as exc:
        form.service_error("file", str(exc))
    except (ContactInputError, ImportInputError) as exc:
        form.service_error(exc.field, str(exc))
    except NotAllowed as exc:
        form.service_error(None, str(exc))
    else:
        messages.success(
            request, f"{contact_import.original_name}: {contact_import.total_rows:,} rows read. Check the columns."
        )
        return contact_import
    return None


# --- The import's page ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingColumn:
    field: object  # the form's bound field for this column
    header: str
    samples: list[str]


def _mapping_columns(form: ImportMappingForm, preview: Preview) -> list[MappingColumn]:
    columns = []
    for name, header in form.columns:
        samples = [str(plan.read.data.get(header, "")).strip() for plan in preview.rows]
        columns.append(
            MappingColumn(field=form[name], header=header, samples=[s for s in samples if s][:SAMPLE_VALUES])
        )
    return columns


def _preview_context(contact_import: ContactImport, form: ImportMappingForm) -> dict[str, object]:
    try:
        preview = contact_import_preview(contact_import=contact_import)
    except (ImportFileRejected, FileNotFoundError) as exc:
        # The stored file vanished or changed since it was checked: say so rather than fail.
        problem = str(exc) if isinstance(exc, ImportFileRejected) else "The uploaded file is missing from storage."
        return {"preview": None, "file_problem": problem, "mapping_columns": []}
    return {"preview": preview, "file_problem": "", "mapping_columns": _mapping_columns(form, preview)}


def _report_context(request: HttpRequest, contact_import: ContactImport) -> dict[str, object]:
    filters = ImportRowFilterForm(request.GET)
    outcome = filters.cleaned_data.get("outcome") or None if filters.is_valid() else None
    page = Paginator(import_rows(contact_import=contact_import, outcome=outcome), REPORT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return {"filters": filters, "outcome": outcome or "", "rows_page": page}


def _render_detail(
    request: HttpRequest, user: User, contact_import: ContactImport, *, form: ImportMappingForm | None = None
) -> HttpResponse:
    can_manage = can_manage_team(user=user, team_id=contact_import.team_id)
    context: dict[str, object] = {
        "contact_import": contact_import,
        "progress": import_progress(contact_import=contact_import),
        "can_manage": can_manage,
        "finished": contact_import.status in FINISHED_STATUSES,
        "poll_seconds": POLL_SECONDS,
        "delimiter_name": DELIMITER_NAMES.get(contact_import.delimiter, repr(contact_import.delimiter)),
    }
    if contact_import.status == ContactImport.Status.PREVIEW:
        form = form or ImportMappingForm(contact_import=contact_import)
        context["form"] = form
        context.update(_preview_context(contact_import, form))
    elif contact_import.status in FINISHED_STATUSES:
        context.update(_report_context(request, contact_import))
    response = render(request, "campaigns/contacts/import_detail.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_safe
def import_detail(request: HttpRequest, import_id: str) -> HttpResponse:
    user = user_of(request)
    try:
        contact_import = get_import_for_user(user=user, import_id=import_id)
    except ImportNotFound:
        return not_found_page(request, what="import", object_id=import_id)
    return _render_detail(request, user, contact_import)


def _import_or_page(request: HttpRequest, import_id: str) -> tuple[User, ContactImport | HttpResponse]:
    user = user_of(request)
    try:
        return user, get_import_for_user(user=user, import_id=import_id)
    except ImportNotFound:
        return user, not_found_page(request, what="import", object_id=import_id)


def _not_allowed(request: HttpRequest, contact_import: ContactImport, exc: NotAllowed) -> HttpResponse:
    return not_allowed_page(
        request, reason=str(exc), back_url=import_url(contact_import), back_label="Back to the import"
    )


@login_required
@require_POST
def import_mapping(request: HttpRequest, import_id: str) -> HttpResponse:
    """Save the columns and options; with ``action=start``, confirm and start the import too."""
    user, found = _import_or_page(request, import_id)
    if isinstance(found, HttpResponse):
        return found
    contact_import = found
    if not can_manage_team(user=user, team_id=contact_import.team_id):
        return _not_allowed(request, contact_import, NotAllowed("Only the team's manager or an admin may import."))
    form = ImportMappingForm(request.POST, contact_import=contact_import)
    if not form.is_valid():
        return _render_detail(request, user, contact_import, form=form)
    data = form.cleaned_data
    try:
        contact_import_configure(
            actor=user,
            contact_import=contact_import,
            mapping=data["mapping"],
            default_region=data["default_region"],
            update_existing=data["update_existing"],
        )
        if request.POST.get("action") == "start":
            contact_import_start(actor=user, contact_import=contact_import)
            messages.success(request, "The import is running: this page follows it.")
    except NotAllowed as exc:
        return _not_allowed(request, contact_import, exc)
    except (ImportInputError, MappingInvalid) as exc:
        form.add_error(None, str(exc))
        return _render_detail(request, user, contact_import, form=form)
    except ImportStateError as exc:
        messages.error(request, str(exc))
    return HttpResponseRedirect(import_url(contact_import))


@login_required
@require_POST
def import_start(request: HttpRequest, import_id: str) -> HttpResponse:
    """Start again an import that stalled or failed: it continues where it stopped."""
    user, found = _import_or_page(request, import_id)
    if isinstance(found, HttpResponse):
        return found
    try:
        contact_import_start(actor=user, contact_import=found)
    except NotAllowed as exc:
        return _not_allowed(request, found, exc)
    except (ImportStateError, MappingInvalid) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The import continues where it stopped.")
    return HttpResponseRedirect(import_url(found))


@login_required
@require_POST
def import_cancel(request: HttpRequest, import_id: str) -> HttpResponse:
    user, found = _import_or_page(request, import_id)
    if isinstance(found, HttpResponse):
        return found
    try:
        contact_import_cancel(actor=user, contact_import=found)
    except NotAllowed as exc:
        return _not_allowed(request, found, exc)
    except ImportStateError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The import was canceled. Contacts it imported before stay.")
    return HttpResponseRedirect(import_url(found))


@login_required
@require_safe
def import_progress_json(request: HttpRequest, import_id: str) -> JsonResponse:
    """What the progress bar polls: the import's counters, small and uncached."""
    user = user_of(request)
    try:
        contact_import = get_import_for_user(user=user, import_id=import_id)
    except ImportNotFound:
        return JsonResponse({"detail": "Contact import not found.", "code": "import_not_found"}, status=404)
    response = JsonResponse(import_progress(contact_import=contact_import))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_safe
def import_report_csv(request: HttpRequest, import_id: str) -> HttpResponseBase:
    _, found = _import_or_page(request, import_id)
    if isinstance(found, HttpResponse):
        return found
    filters = ImportRowFilterForm(request.GET)
    outcome = filters.cleaned_data.get("outcome") or None if filters.is_valid() else None
    rows = import_rows(contact_import=found, outcome=outcome).iterator(chunk_size=2000)
    response = StreamingHttpResponse(
        import_report_lines(contact_import=found, rows=rows), content_type="text/csv; charset=utf-8"
    )
    filename = import_report_filename(contact_import=found, outcome=outcome)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
