"""The contacts pages: the list (``/contacts/``), a contact (``/contacts/<id>/``, with its calls and runs), adding
and editing one, and the team do-not-call list (``/contacts/do-not-call/``). The import wizard is in
``campaigns.views.contact_imports``.

Every page reaches its object through ``campaigns.access`` (missing, malformed and not-yours all get the same 404
page); a team's agent who may look but not change gets a 403 page that says so; writes go through
``campaigns.contacts`` and its errors land on the form field they name.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from campaigns.access import ContactNotFound, NotAllowed, can_manage_team, get_contact_for_user, teams_managed_by
from campaigns.contact_forms import ContactFilterForm, ContactForm, DncAddForm, DncSearchForm
from campaigns.contact_selectors import (
    ContactFilters,
    DncEntryNotFound,
    contact_calls,
    contact_list,
    contact_runs,
    contact_teams,
    dnc_list,
    get_dnc_entry_for_user,
)
from campaigns.contacts import (
    ContactDuplicate,
    ContactInputError,
    contact_create,
    contact_update,
    dnc_add,
    dnc_remove,
)
from campaigns.models import Contact
from crm.models import Team, User

PAGE_SIZE = 50
SHOWN_ID_CHARS = 100


def user_of(request: HttpRequest) -> User:
    """The signed-in user; only called behind login_required."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def not_found_page(request: HttpRequest, *, what: str, object_id: str) -> HttpResponse:
    """The contacts pages' own 404: what was not found, and where to go instead."""
    context = {
        "what": what,
        "shown_id": object_id[:SHOWN_ID_CHARS],
        "id_truncated": len(object_id) > SHOWN_ID_CHARS,
    }
    return render(request, "campaigns/contacts/not_found.html", context, status=404)


def not_allowed_page(request: HttpRequest, *, reason: str, back_url: str, back_label: str) -> HttpResponse:
    context = {"reason": reason, "back_url": back_url, "back_label": back_label}
    return render(request, "campaigns/contacts/not_allowed.html", context, status=403)


def _managed_teams(user: User) -> tuple[QuerySet[Team], list[Team]]:
    teams = teams_managed_by(user=user).order_by("name")
    return teams, list(teams[:2])


# --- The list ------------------------------------------------------------------------------------------------------


@login_required
@require_safe
def contact_list_view(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    teams = list(contact_teams(user=user))
    form = ContactFilterForm(request.GET, teams=teams)
    page = None
    if form.is_valid():
        filters = ContactFilters(
            q=form.cleaned_data.get("q") or "",
            team=form.cleaned_data.get("team"),
            do_not_call=form.do_not_call_value(),
        )
        page = Paginator(contact_list(user=user, filters=filters), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "show_team": len(teams) > 1,
        "can_manage": user.is_admin or (user.is_manager and bool(teams)),
    }
    return render(request, "campaigns/contacts/list.html", context)


# --- A contact -----------------------------------------------------------------------------------------------------


def contact_url(contact: Contact | int) -> str:
    return reverse(
        "contact-detail", kwargs={"contact_id": str(contact.pk if isinstance(contact, Contact) else contact)}
    )


@login_required
@require_safe
def contact_detail(request: HttpRequest, contact_id: str) -> HttpResponse:
    user = user_of(request)
    try:
        contact = get_contact_for_user(user=user, contact_id=contact_id)
    except ContactNotFound:
        return not_found_page(request, what="contact", object_id=contact_id)
    context = {
        "contact": contact,
        "calls": contact_calls(user=user, contact=contact),
        "targets": contact_runs(user=user, contact=contact),
        "can_manage": can_manage_team(user=user, team_id=contact.team_id),
    }
    return render(request, "campaigns/contacts/detail.html", context)


def _contact_saved(request: HttpRequest, form: ContactForm, save: Any) -> Contact | None:
    """Run ``save()`` (a service call); its errors go on the form. The contact, or None."""
    try:
        contact: Contact = save()
    except ContactInputError as exc:
        form.service_error(exc.field, str(exc))
    except ContactDuplicate as exc:
        form.service_error("phone", f"{exc.contact.name} already has this number ({exc.contact.phone}).")
        form.duplicate = exc.contact
    except NotAllowed as exc:
        form.service_error(None, str(exc))
    else:
        return contact
    return None


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def contact_create_view(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    teams, first_two = _managed_teams(user)
    if not first_two:
        return not_allowed_page(
            request,
            reason="Only a team's manager or an admin can add contacts.",
            back_url=reverse("contact-list"),
            back_label="Back to the contacts",
        )
    choose_team = len(first_two) > 1
    form = ContactForm(request.POST or None, creating=True, teams=teams if choose_team else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        team = data["team"] if choose_team else first_two[0]
        contact = _contact_saved(
            request,
            form,
            lambda: contact_create(
                actor=user,
                team=team,
                name=data["name"],
                phone=data["phone"],
                default_region=data["default_region"],
                company=data["company"],
                email=data["email"],
                timezone=data["timezone"],
                other_phones=data["other_phones"],
            ),
        )
        if contact is not None:
            messages.success(request, f"{contact.name} was added.")
            return HttpResponseRedirect(contact_url(contact))
    return render(request, "campaigns/contacts/form.html", {"form": form, "contact": None})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def contact_edit(request: HttpRequest, contact_id: str) -> HttpResponse:
    user = user_of(request)
    try:
        contact = get_contact_for_user(user=user, contact_id=contact_id)
    except ContactNotFound:
        return not_found_page(request, what="contact", object_id=contact_id)
    if not can_manage_team(user=user, team_id=contact.team_id):
        return not_allowed_page(
            request,
            reason="Only the team's manager or an admin can change its contacts.",
            back_url=contact_url(contact),
            back_label="Back to the contact",
        )
    initial = {
        "name": contact.name,
        "phone": contact.phone,
        "company": contact.company,
        "email": contact.email,
        "timezone": contact.timezone,
        "other_phones": "\n".join(contact.other_phones or []),
        "do_not_call": contact.do_not_call,
    }
    form = ContactForm(request.POST or None, creating=False, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        changes = {
            name: data[name]
            for name in ("name", "phone", "default_region", "company", "email", "timezone", "other_phones")
        }
        if data["do_not_call"] != contact.do_not_call:
            changes.update(do_not_call=data["do_not_call"], do_not_call_reason=data["do_not_call_reason"])
        saved = _contact_saved(request, form, lambda: contact_update(actor=user, contact=contact, changes=changes))
        if saved is not None:
            messages.success(request, f"{saved.name} was saved.")
            return HttpResponseRedirect(contact_url(saved))
    return render(request, "campaigns/contacts/form.html", {"form": form, "contact": contact})


# --- The do-not-call list ----------------------------------------------------------------------------------------


def _dnc_page(request: HttpRequest, *, user: User, add_form: DncAddForm | None, status: int = 200) -> HttpResponse:
    search = DncSearchForm(request.GET)
    q = search.cleaned_data.get("q", "") if search.is_valid() else ""
    page = Paginator(dnc_list(user=user, q=q), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "search": search,
        "page": page,
        "add_form": add_form,
        "show_team": user.is_admin or (user.is_manager and teams_managed_by(user=user).count() > 1),
    }
    return render(request, "campaigns/contacts/do_not_call.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def do_not_call_view(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    teams, first_two = _managed_teams(user)
    if not first_two:
        if request.method == "POST":
            return not_allowed_page(
                request,
                reason="Only a team's manager or an admin can change the do-not-call list.",
                back_url=reverse("contact-dnc"),
                back_label="Back to the do-not-call list",
            )
        return _dnc_page(request, user=user, add_form=None)
    choose_team = len(first_two) > 1
    form = DncAddForm(request.POST or None, teams=teams, choose_team=choose_team)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        team = data["team"] if choose_team else first_two[0]
        try:
            entry, created = dnc_add(
                actor=user,
                team=team,
                phone=data["phone"],
                reason=data["reason"],
                default_region=data["default_region"],
            )
        except ContactInputError as exc:
            form.service_error(exc.field, str(exc))
        except NotAllowed as exc:
            form.service_error(None, str(exc))
        else:
            if created:
                messages.success(request, f"{entry.phone} is on the do-not-call list: no run will call it.")
            else:
                messages.info(request, f"{entry.phone} was on the do-not-call list already.")
            return HttpResponseRedirect(reverse("contact-dnc"))
    return _dnc_page(request, user=user, add_form=form)


@login_required
@require_POST
def do_not_call_remove(request: HttpRequest, entry_id: str) -> HttpResponse:
    user = user_of(request)
    try:
        entry = get_dnc_entry_for_user(user=user, entry_id=entry_id)
    except DncEntryNotFound:
        return not_found_page(request, what="do-not-call entry", object_id=entry_id)
    try:
        dnc_remove(actor=user, entry=entry)
    except NotAllowed as exc:
        return not_allowed_page(
            request, reason=str(exc), back_url=reverse("contact-dnc"), back_label="Back to the do-not-call list"
        )
    messages.success(request, f"{entry.phone} was taken off the do-not-call list.")
    return HttpResponseRedirect(reverse("contact-dnc"))
