"""Contacts, the do-not-call list and contact imports: the reads.

Every function starts from the access helpers of ``campaigns.access``, so what a page or an endpoint lists is
exactly what its user may see, and each list is a fixed number of queries whatever its length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from calls.models import CallSession
from calls.selectors import visible_sessions
from campaigns.access import (
    managed_team_ids,
    parse_object_id,
    visible_contacts,
    visible_do_not_call,
    visible_imports,
    visible_runs,
)
from campaigns.models import Contact, ContactImport, ContactImportRow, DoNotCall, RunContact
from campaigns.phones import phone_normalize
from crm.models import Team, User

CONTACT_CALLS_SHOWN = 50
CONTACT_RUNS_SHOWN = 50
_NON_DIGITS_RE = re.compile(r"\D")
# Fewer digits than this in a search are part of a name or a company ("3M"), not a phone number.
PHONE_SEARCH_MIN_DIGITS = 3


class DncEntryNotFound(Exception):
    """Missing, or not the user's to see: callers answer 404 alike."""


@dataclass(frozen=True)
class ContactFilters:
    q: str = ""
    team: int | None = None
    do_not_call: bool | None = None
    company: str = ""


def contact_search_q(text: str) -> Q:
    """Every word must match the name, the company, the e-mail or (by its digits) a number."""
    condition = Q()
    for word in text.split():
        word_q = Q(name__icontains=word) | Q(company__icontains=word) | Q(email__icontains=word)
        digits = _NON_DIGITS_RE.sub("", word)
        if len(digits) >= PHONE_SEARCH_MIN_DIGITS:
            word_q |= Q(phone__contains=digits)
        condition &= word_q
    return condition


def contact_list(*, user: User, filters: ContactFilters) -> QuerySet[Contact]:
    """The contacts ``user`` may see, filtered, by name; with their team and owner (no query per row)."""
    queryset = visible_contacts(user=user).select_related("team", "owner")
    if filters.q.strip():
        queryset = queryset.filter(contact_search_q(filters.q))
    if filters.team is not None:
        queryset = queryset.filter(team_id=filters.team)
    if filters.do_not_call is not None:
        queryset = queryset.filter(do_not_call=filters.do_not_call)
    if filters.company.strip():
        queryset = queryset.filter(company__iexact=filters.company.strip())
    return queryset.order_by("name", "id")


def contact_detail(*, contact_id: int) -> Contact:
    return Contact.objects.select_related("team", "owner").get(pk=contact_id)


def contact_calls(*, user: User, contact: Contact) -> list[CallSession]:
    """The contact's latest calls that ``user`` may see (an agent sees their own calls only)."""
    sessions = visible_sessions(user=user).filter(contact=contact).select_related("owner", "campaign")
    return list(sessions.order_by("-created_at", "-pk")[:CONTACT_CALLS_SHOWN])


def contact_runs(*, user: User, contact: Contact) -> list[RunContact]:
    """The contact's place in the runs ``user`` may see, latest run first."""
    targets = RunContact.objects.filter(contact=contact, run__in=visible_runs(user=user).values("pk"))
    return list(
        targets.select_related("run", "run__campaign").order_by("-run__created_at", "-run_id")[:CONTACT_RUNS_SHOWN]
    )


def contact_teams(*, user: User) -> QuerySet[Team]:
    """The teams whose contacts ``user`` sees: the team filter's choices."""
    if user.is_admin:
        return Team.objects.order_by("name")
    if user.is_manager:
        return Team.objects.filter(pk__in=managed_team_ids(user=user)).order_by("name")
    return Team.objects.filter(pk=user.team_id).order_by("name") if user.team_id else Team.objects.none()


# --- Do-not-call ---------------------------------------------------------------------------------------------


def dnc_list(
    *, user: User, q: str = "", team: int | None = None, phone: str = "", default_region: str = ""
) -> QuerySet[DoNotCall]:
    """The do-not-call entries ``user`` may see, newest first; ``q`` matches digits of the number or the reason,
    ``phone`` finds one number however it is written (InvalidPhoneNumber / InvalidRegion when it is no number)."""
    queryset = visible_do_not_call(user=user).select_related("team", "added_by")
    if team is not None:
        queryset = queryset.filter(team_id=team)
    if phone:
        queryset = queryset.filter(phone=phone_normalize(phone, default_region=default_region).e164)
    for word in q.split():
        digits = _NON_DIGITS_RE.sub("", word)
        word_q = Q(reason__icontains=word)
        if len(digits) >= PHONE_SEARCH_MIN_DIGITS:
            word_q |= Q(phone__contains=digits)
        queryset = queryset.filter(word_q)
    return queryset.order_by("-created_at", "-id")


def get_dnc_entry_for_user(*, user: User, entry_id: int | str) -> DoNotCall:
    pk = parse_object_id(entry_id)
    if pk is None:
        raise DncEntryNotFound(str(entry_id)[:100])
    try:
        return visible_do_not_call(user=user).select_related("team").get(pk=pk)
    except (DoNotCall.DoesNotExist, ValueError, TypeError, OverflowError):
        raise DncEntryNotFound(str(entry_id)[:100]) from None


# --- Imports -------------------------------------------------------------------------------------------------


def import_list(*, user: User) -> QuerySet[ContactImport]:
    """The imports ``user`` may see, newest first, with their team and uploader."""
    return visible_imports(user=user).order_by("-created_at", "-id")


def import_rows(*, contact_import: ContactImport, outcome: str | None = None) -> QuerySet[ContactImportRow]:
    """The report of an import in file order; served by import_row_outcome_idx when filtered by outcome."""
    rows = ContactImportRow.objects.filter(contact_import=contact_import)
    if outcome:
        rows = rows.filter(outcome=outcome)
    return rows.order_by("row_number")


FINISHED_STATUSES = frozenset(
    {ContactImport.Status.COMPLETED, ContactImport.Status.FAILED, ContactImport.Status.CANCELED}
)


def import_progress(*, contact_import: ContactImport) -> dict[str, Any]:
    """What the progress bar shows (the API's progress endpoint and the page's polling share it)."""
    total = contact_import.total_rows
    processed = contact_import.processed_rows
    return {
        "id": contact_import.pk,
        "status": contact_import.status,
        "status_label": contact_import.get_status_display(),
        "finished": contact_import.status in FINISHED_STATUSES,
        "total_rows": total,
        "processed_rows": processed,
        "imported": contact_import.imported,
        "updated": contact_import.updated,
        "skipped": contact_import.skipped,
        "percent": round(100 * processed / total, 1) if total else 0.0,
        "error": contact_import.error,
        "started_at": contact_import.started_at.isoformat() if contact_import.started_at else None,
        "finished_at": contact_import.finished_at.isoformat() if contact_import.finished_at else None,
    }
