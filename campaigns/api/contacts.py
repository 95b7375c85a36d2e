"""REST endpoints for contacts, contact imports and the do-not-call list, under /api/crm/.

Each view parses input, finds the object through ``campaigns.access`` (missing and not-yours answer the same
404), calls one service or selector and renders; domain errors become JSON ``{"detail", "code"}`` answers with
the right status. A team's manager and admins write; the team's agents read; integrations get 404 everywhere
here (contacts are no voice agent's business).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import contact_serializers as s
from campaigns.access import (
    ContactNotFound,
    ImportNotFound,
    NotAllowed,
    get_contact_for_user,
    get_import_for_user,
)
from campaigns.contact_selectors import (
    ContactFilters,
    DncEntryNotFound,
    contact_list,
    dnc_list,
    get_dnc_entry_for_user,
    import_list,
    import_progress,
    import_rows,
)
from campaigns.contacts import (
    ContactDuplicate,
    ContactInputError,
    contact_create,
    contact_team_resolve,
    contact_update,
    dnc_add,
    dnc_remove,
)
from campaigns.import_csv import ImportFileRejected, MappingInvalid
from campaigns.imports import (
    ImportInputError,
    ImportStateError,
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
from campaigns.phones import InvalidPhoneNumber, InvalidRegion
from crm.api import PAGINATION_PARAMS, CallbookApiView, Pagination
from crm.models import User

RAW_CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel", "application/octet-stream")


class ContactNotFoundError(exceptions.NotFound):
    default_detail = "Contact not found."
    default_code = "contact_not_found"


class ImportNotFoundError(exceptions.NotFound):
    default_detail = "Contact import not found."
    default_code = "import_not_found"


class DncNotFoundError(exceptions.NotFound):
    default_detail = "Do-not-call entry not found."
    default_code = "dnc_entry_not_found"


class NoIntegrations(permissions.BasePermission):
    """Integrations (voice agents, dialers) have no business with contacts: the same 404 as a missing route."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if isinstance(user, User) and user.is_integration:
            raise exceptions.NotFound()
        return True


ERROR_RESPONSES = {
    400: OpenApiResponse(description="Invalid input: `{detail, code, errors?}`; `errors` names the field."),
    401: OpenApiResponse(description="Missing or invalid token."),
    404: OpenApiResponse(description="Not found, or not yours to see (integrations: always)."),
}
WRITE_ERRORS = {
    **ERROR_RESPONSES,
    403: OpenApiResponse(description="You may see this but not change it (an agent): only the team's manager."),
}


def _error(detail: str, code: str, status_code: int, **extra: Any) -> Response:
    return Response({"detail": detail, "code": code, **extra}, status=status_code)


class ContactsApiView(CallbookApiView):
    permission_classes = [permissions.IsAuthenticated, NoIntegrations]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ContactNotFound):
            exc = ContactNotFoundError()
        elif isinstance(exc, ImportNotFound):
            exc = ImportNotFoundError()
        elif isinstance(exc, DncEntryNotFound):
            exc = DncNotFoundError()
        elif isinstance(exc, NotAllowed):
            exc = exceptions.PermissionDenied(str(exc))
        elif isinstance(exc, ContactInputError | ImportInputError):
            errors = {exc.field: [str(exc)]} if exc.field else {}
            return _error(str(exc), exc.code, 400, errors=errors)
        elif isinstance(exc, ContactDuplicate):
            path = f"/api/crm/contacts/{exc.contact.pk}"
            return _error(
                str(exc),
                "duplicate_contact",
                409,
                contact_id=exc.contact.pk,
                contact_url=self.request.build_absolute_uri(path),
            )
        elif isinstance(exc, MappingInvalid):
            errors = {field: [error] for field, error in exc.errors.items()}
            return _error("The column mapping cannot be used.", "invalid_mapping", 400, errors=errors)
        elif isinstance(exc, ImportFileRejected):
            return _error(str(exc), exc.code, exc.status)
        elif isinstance(exc, ImportStateError):
            return _error(str(exc), exc.code, 409)
        return super().handle_exception(exc)


# --- Contacts ------------------------------------------------------------------------------------------------


class ContactCursorPagination(Pagination):
    # The contacts page's order; the id breaks ties between namesakes (contact_team_name_idx serves a team's).
    ordering = ("name", "id")


class ContactListCreateApi(ContactsApiView):
    pagination_class = ContactCursorPagination

    @extend_schema(
        operation_id="contacts_list",
        parameters=[s.ContactFilterInputSerializer],
        responses={200: s.ContactOutputSerializer(many=True), **ERROR_RESPONSES},
        description="The contacts you may see (your team's; a manager's teams; all for admins), by name.",
    )
    def get(self, request: Request) -> Response:
        params = self.parse(s.ContactFilterInputSerializer, request.query_params, also_allowed=PAGINATION_PARAMS)
        filters = ContactFilters(
            q=params.get("q", ""),
            team=params.get("team"),
            do_not_call=params.get("do_not_call"),
            company=params.get("company", ""),
        )
        return self.paginated(contact_list(user=self.actor, filters=filters), s.ContactOutputSerializer)

    @extend_schema(
        operation_id="contacts_create",
        request=s.ContactCreateInputSerializer,
        responses={
            201: s.ContactOutputSerializer,
            409: OpenApiResponse(s.ContactDuplicateOutputSerializer, "The team has a contact with this number."),
            **WRITE_ERRORS,
        },
        parameters=[OpenApiParameter("Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[201])],
        description="Creates a contact. The number is normalised to E.164 (invalid numbers are refused with the "
        "reason) and deduplicated within the team: the same number answers 409 naming the existing contact.",
    )
    def post(self, request: Request) -> Response:
        data = self.parse(s.ContactCreateInputSerializer, request.data)
        team = contact_team_resolve(actor=self.actor, team_id=data.pop("team", None))
        contact = contact_create(actor=self.actor, team=team, **data)
        body = s.ContactOutputSerializer(contact, context={"request": request}).data
        return Response(body, status=201, headers={"Location": body["url"]})


class ContactDetailApi(ContactsApiView):
    @extend_schema(operation_id="contacts_retrieve", responses={200: s.ContactOutputSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, contact_id: str) -> Response:
        contact = get_contact_for_user(user=self.actor, contact_id=contact_id)
        return Response(s.ContactOutputSerializer(contact, context={"request": request}).data)

    @extend_schema(
        operation_id="contacts_partial_update",
        request=s.ContactUpdateInputSerializer,
        responses={
            200: s.ContactOutputSerializer,
            409: OpenApiResponse(s.ContactDuplicateOutputSerializer, "The new number is another contact's."),
            **WRITE_ERRORS,
        },
        description="Changes a contact. `do_not_call` adds its number to the team's do-not-call list (true) or "
        "removes it (false); a new number re-infers the time zone unless `timezone` comes with it.",
    )
    def patch(self, request: Request, contact_id: str) -> Response:
        contact = get_contact_for_user(user=self.actor, contact_id=contact_id)
        changes = self.parse(s.ContactUpdateInputSerializer, request.data)
        updated = contact_update(actor=self.actor, contact=contact, changes=changes)
        return Response(s.ContactOutputSerializer(updated, context={"request": request}).data)


# --- Do-not-call ---------------------------------------------------------------------------------------------


class NewestFirstPagination(Pagination):
    ordering = ("-created_at", "-id")


class DoNotCallListCreateApi(ContactsApiView):
    pagination_class = NewestFirstPagination

    @extend_schema(
        operation_id="do_not_call_list",
        parameters=[s.DoNotCallFilterInputSerializer],
        responses={200: s.DoNotCallOutputSerializer(many=True), **ERROR_RESPONSES},
        description="The do-not-call entries of the teams you may see, newest first. `phone` finds one number.",
    )
    def get(self, request: Request) -> Response:
        params = self.parse(s.DoNotCallFilterInputSerializer, request.query_params, also_allowed=PAGINATION_PARAMS)
        try:
            entries = dnc_list(
                user=self.actor,
                q=params.get("q", ""),
                team=params.get("team"),
                phone=params.get("phone", ""),
                default_region=params.get("default_region", ""),
            )
        except (InvalidPhoneNumber, InvalidRegion) as exc:
            raise exceptions.ValidationError({"phone": [str(exc)]}) from None
        return self.paginated(entries, s.DoNotCallOutputSerializer)

    @extend_schema(
        operation_id="do_not_call_create",
        request=s.DoNotCallCreateInputSerializer,
        responses={
            201: s.DoNotCallOutputSerializer,
            200: OpenApiResponse(s.DoNotCallOutputSerializer, "The number was on the list already."),
            **WRITE_ERRORS,
        },
        description="Puts a number on a team's do-not-call list; the team's contacts with that number are flagged "
        "and every run skips it from its next dial on.",
    )
    def post(self, request: Request) -> Response:
        data = self.parse(s.DoNotCallCreateInputSerializer, request.data)
        team = contact_team_resolve(actor=self.actor, team_id=data.pop("team", None))
        entry, created = dnc_add(actor=self.actor, team=team, **data)
        body = s.DoNotCallOutputSerializer(entry, context={"request": request}).data
        return Response(body, status=201 if created else 200)


class DoNotCallDetailApi(ContactsApiView):
    @extend_schema(operation_id="do_not_call_retrieve", responses={200: s.DoNotCallOutputSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, entry_id: str) -> Response:
        entry = get_dnc_entry_for_user(user=self.actor, entry_id=entry_id)
        return Response(s.DoNotCallOutputSerializer(entry, context={"request": request}).data)

    @extend_schema(
        operation_id="do_not_call_destroy",
        responses={204: None, **WRITE_ERRORS},
        description="Takes the number off the list; its contacts are no longer flagged.",
    )
    def delete(self, request: Request, entry_id: str) -> Response:
        entry = get_dnc_entry_for_user(user=self.actor, entry_id=entry_id)
        dnc_remove(actor=self.actor, entry=entry)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Imports -------------------------------------------------------------------------------------------------


def _raw_upload(request: Request) -> tuple[bytes, str | None, Any]:
    """(bytes, file name, the options' source) of a multipart upload's ``file`` part or of a raw CSV body."""
    if request.content_type.startswith("multipart/form-data"):
        # One file per import: a second one (under any name) is refused rather than dropped in silence.
        parts = [upload for name in request.FILES for upload in request.FILES.getlist(name)]
        if len(parts) > 1:
            raise ImportFileRejected(
                f"Send one CSV file per import; this upload has {len(parts)} files.", code="one_file_only"
            )
        upload = request.FILES.get("file")
        if upload is None:
            raise ImportFileRejected("A multipart upload needs its file in a part named 'file'.", code="missing_file")
        form = request.data if isinstance(request.data, Mapping) else {}
        options = {key: value for key, value in form.items() if key != "file"}
        return import_upload_read(body=upload, declared_length=upload.size), upload.name, options
    media_type = request.content_type.split(";")[0].strip().lower()
    if media_type not in RAW_CSV_TYPES:
        raise ImportFileRejected(
            "Send the CSV as multipart/form-data (part 'file') or as a text/csv body.",
            code="unsupported_media_type",
            status=415,
        )
    django_request = request._request
    length = django_request.META.get("CONTENT_LENGTH")
    declared = int(length) if length and length.isdigit() else None
    raw = import_upload_read(body=django_request, declared_length=declared)
    return raw, request.query_params.get("filename") or None, request.query_params


def _preview_response(request: Request, contact_import: ContactImport, preview: Any, *, code: int = 200) -> Response:
    context = {"request": request, "preview": preview}
    return Response(s.ImportWithPreviewOutputSerializer(contact_import, context=context).data, status=code)


class ImportListCreateApi(ContactsApiView):
    pagination_class = NewestFirstPagination

    @extend_schema(
        operation_id="contact_imports_list",
        responses={200: s.ImportOutputSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        return self.paginated(import_list(user=self.actor), s.ImportOutputSerializer)

    @extend_schema(
        operation_id="contact_imports_upload",
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "team": {"type": "integer"},
                    "default_region": {"type": "string"},
                    "delimiter": {"type": "string", "enum": ["", ",", ";", "tab", "|"]},
                    "update_existing": {"type": "boolean"},
                },
                "required": ["file"],
            },
            "text/csv": OpenApiTypes.BINARY,
        },
        parameters=[s.ImportUploadInputSerializer],
        responses={
            201: s.ImportWithPreviewOutputSerializer,
            413: OpenApiResponse(description="Larger than CONTACT_IMPORT_MAX_BYTES (`too_large`)."),
            415: OpenApiResponse(description="Not a CSV file (a spreadsheet, an image, binary data)."),
            **WRITE_ERRORS,
        },
        description="Upload a CSV (multipart part `file`, options as form fields; or a raw text/csv body, options "
        "as query parameters). Decoded as UTF-8 (with or without BOM), UTF-16 with BOM or Windows-1252; the "
        "delimiter (comma, semicolon, tab, pipe) is sniffed. Answers the import awaiting confirmation, with a "
        "mapping suggested from the header and a preview of the first rows. Nothing is imported until `start`.",
    )
    def post(self, request: Request) -> Response:
        raw, filename, source = _raw_upload(request)
        options = self.parse(s.ImportUploadInputSerializer, source)
        delimiter = options.get("delimiter") or None
        team = contact_team_resolve(actor=self.actor, team_id=options.get("team"))
        contact_import, parsed = contact_import_create(
            actor=self.actor,
            team=team,
            raw=raw,
            filename=filename or options.get("filename") or "upload.csv",
            default_region=options.get("default_region", ""),
            delimiter="\t" if delimiter == "tab" else delimiter,
            update_existing=options.get("update_existing", True),
        )
        preview = contact_import_preview(contact_import=contact_import, parsed=parsed)
        response = _preview_response(request, contact_import, preview, code=201)
        response["Location"] = response.data["url"]
        return response


class ImportDetailApi(ContactsApiView):
    @extend_schema(
        operation_id="contact_imports_retrieve", responses={200: s.ImportOutputSerializer, **ERROR_RESPONSES}
    )
    def get(self, request: Request, import_id: str) -> Response:
        contact_import = get_import_for_user(user=self.actor, import_id=import_id)
        return Response(s.ImportOutputSerializer(contact_import, context={"request": request}).data)


class ImportPreviewApi(ContactsApiView):
    @extend_schema(
        operation_id="contact_imports_preview_retrieve",
        responses={200: s.ImportWithPreviewOutputSerializer, **ERROR_RESPONSES},
        description="The first rows as the current mapping would import them.",
    )
    def get(self, request: Request, import_id: str) -> Response:
        contact_import = get_import_for_user(user=self.actor, import_id=import_id)
        return _preview_response(request, contact_import, contact_import_preview(contact_import=contact_import))

    @extend_schema(
        operation_id="contact_imports_preview",
        request=s.ImportOptionsInputSerializer,
        responses={200: s.ImportWithPreviewOutputSerializer, 409: OpenApiResponse(), **WRITE_ERRORS},
        description="Change the mapping and options of an import awaiting confirmation; answers the new preview.",
    )
    def post(self, request: Request, import_id: str) -> Response:
        contact_import = get_import_for_user(user=self.actor, import_id=import_id)
        options = self.parse(s.ImportOptionsInputSerializer, request.data)
        contact_import_configure(actor=self.actor, contact_import=contact_import, **options)
        return _preview_response(request, contact_import, contact_import_preview(contact_import=contact_import))


class ImportStartApi(ContactsApiView):
    @extend_schema(
        operation_id="contact_imports_start",
        request=s.ImportOptionsInputSerializer,
        responses={
            202: s.ImportOutputSerializer,
            409: OpenApiResponse(description="Completed or canceled: it cannot start again."),
            **WRITE_ERRORS,
        },
        description="Confirm the import (optionally with a last mapping) and run it in the background; follow it "
        "with `progress`. Starting a queued, running or failed import again continues it from where it stopped.",
    )
    def post(self, request: Request, import_id: str) -> Response:
        contact_import = get_import_for_user(user=self.actor, import_id=import_id)
        options = self.parse(s.ImportOptionsInputSerializer, request.data)
        started = contact_import_start(actor=self.actor, contact_import=contact_import, **options)
        return Response(s.ImportOutputSerializer(started, context={"request": request}).data, status=202)


class ImportCancelApi(ContactsApiView):
    @extend_schema(
        operation_id="contact_imports_cancel",
        request=None,
        responses={
            200: s.ImportOutputSerializer,
            409: OpenApiResponse(description="Already finished."),
            **WRITE_ERRORS,
        },
        description="Stops the import after its current batch; the contacts it imported so far stay.",
    )
    def post(self, request: Request, import_id: str) -> Response:
        contact_import = get_import_for_user(user=self.actor, import_id=import_id)
        canceled = contact_import_cancel(actor=self.actor, contact_import=contact_import)
        return Response(s.ImportOutputSerializer(canceled, context={"request": request}).data)


class ImportProgressApi(ContactsApiView):
    @extend_schema(
        operation_id="contact_imports_progress",
        responses={200: s.ImportProgressOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, import_id: str) -> Response:
        contact_import = get_import_for_user(user=self.actor, import_id=import_id)
        response = Response(import_progress(contact_import=contact_import))
        response["Cache-Control"] = "no-store"
        return response


class RowPagination(Pagination):
    page_size = 100
    max_page_size = 1000
    ordering = ("row_number",)


class ImportRowsApi(ContactsApiView):
    pagination_class = RowPagination

    @extend_schema(
        operation_id="contact_imports_rows",
        parameters=[s.ImportRowFilterInputSerializer],
        responses={200: s.ImportRowOutputSerializer(many=True), **ERROR_RESPONSES},
        description="The per-row report in file order: what became of each row and why.",
    )
    def get(self, request: Request, import_id: str) -> Response:
        contact_import = get_import_for_user(user=self.actor, import_id=import_id)
        params = self.parse(s.ImportRowFilterInputSerializer, request.query_params, also_allowed=PAGINATION_PARAMS)
        rows = import_rows(contact_import=contact_import, outcome=params.get("outcome"))
        return self.paginated(rows, s.ImportRowOutputSerializer)


class ImportReportCsvApi(ContactsApiView):
    @extend_schema(
        operation_id="contact_imports_report_csv",
        parameters=[s.ImportRowFilterInputSerializer],
        responses={(200, "text/csv"): OpenApiTypes.BINARY, **ERROR_RESPONSES},
        description="The per-row report as CSV: row, outcome, reason, contact id, then the row as read.",
    )
    def get(self, request: Request, import_id: str) -> StreamingHttpResponse:
        contact_import = get_import_for_user(user=self.actor, import_id=import_id)
        params = self.parse(s.ImportRowFilterInputSerializer, request.query_params, also_allowed=PAGINATION_PARAMS)
        outcome = params.get("outcome")
        rows = import_rows(contact_import=contact_import, outcome=outcome).iterator(chunk_size=2000)
        response = StreamingHttpResponse(
            import_report_lines(contact_import=contact_import, rows=rows), content_type="text/csv; charset=utf-8"
        )
        filename = import_report_filename(contact_import=contact_import, outcome=outcome)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response
