"""Contacts and the team do-not-call list: the writes.

Rules kept here (the CSV import in ``campaigns.imports`` keeps the same ones in bulk):

- Every number goes through ``campaigns.phones.phone_normalize``: invalid numbers are refused with the reason.
- One contact per normalised number per team: "(202) 555-0143" and "+1 202 555 0143" are the same contact. Creating
  a second one answers ``ContactDuplicate`` naming the first (the unique constraint contact_unique_phone_per_team
  is the guard when two requests race). ``other_phones`` are normalised, kept in order, without repeats and
  without the primary number; they do not take part in deduplication (a dialer only calls the primary number).
- The time zone is the one given (checked against the IANA database, canonical case) or else the one the number
  plan gives the number; a new number re-infers it unless a time zone comes in the same change.
- Do-not-call: the team's list (``DoNotCall``) is the source of truth, which every run checks at dial time.
  ``Contact.do_not_call`` mirrors it for the contact's primary number, so pages and filters show it without a
  join: adding a number flags every contact of the team with that number, removing it clears them, marking a
  contact do-not-call adds its number to the list (and unmarking removes it), and a contact created, imported or
  renumbered takes the flag of its number. One list, one rule, no flag that disagrees with it.
- Only the team's manager or an admin writes (``campaigns.access.can_manage_team``); callers have already found
  the object through the access helpers, so outsiders never get this far.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone as django_timezone

from campaigns.access import NotAllowed, can_manage_team, teams_managed_by
from campaigns.models import Contact, DoNotCall
from campaigns.phones import (
    InvalidPhoneNumber,
    InvalidRegion,
    InvalidTimezone,
    phone_normalize,
    region_clean,
    timezone_clean,
)
from crm.models import Team, User

logger = logging.getLogger(__name__)

NAME_MAX_CHARS = Contact._meta.get_field("name").max_length or 200
COMPANY_MAX_CHARS = Contact._meta.get_field("company").max_length or 200
REASON_MAX_CHARS = DoNotCall._meta.get_field("reason").max_length or 255
OTHER_PHONES_MAX = 10
CUSTOM_FIELDS_MAX_BYTES = 16 * 1024
CUSTOM_FIELD_NAME_MAX_CHARS = 100
MARKED_ON_CONTACT = "Marked do-not-call on the contact"

UPDATABLE_FIELDS = frozenset(
    {
        "name",
        "company",
        "email",
        "phone",
        "default_region",
        "timezone",
        "other_phones",
        "custom_fields",
        "owner",
        "do_not_call",
        "do_not_call_reason",
    }
)


class ContactInputError(Exception):
    """Input a contact (or a do-not-call entry) cannot take; ``field`` names the culprit when there is one."""

    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class ContactDuplicate(Exception):
    """The team already has a contact with this number: it is the same contact."""

    def __init__(self, contact: Contact) -> None:
        super().__init__(f"{contact.name} ({contact.phone}) already has this number in this team.")
        self.contact = contact


# --- Cleaning ------------------------------------------------------------------------------------------------


def _require_manager(*, actor: User, team_id: int | None) -> None:
    if not can_manage_team(user=actor, team_id=team_id):
        raise NotAllowed("Only the team's manager or an admin may change its contacts and do-not-call list.")


def contact_team_resolve(*, actor: User, team_id: int | str | None) -> Team:
    """The team a manager's new contact, import or do-not-call entry goes to: the one given (which they must
    manage), else the only one they manage. NotAllowed for someone who manages no team."""
    teams = teams_managed_by(user=actor)
    if not actor.is_admin and not actor.is_manager:
        raise NotAllowed("Only a team's manager or an admin may add contacts, imports and do-not-call entries.")
    if team_id in (None, ""):
        candidates = list(teams.order_by("pk")[:2])
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotAllowed("You manage no team: a team's manager or an admin can do this.")
        raise ContactInputError("Choose the team: you manage more than one.", code="team_required", field="team")
    try:
        return teams.get(pk=int(str(team_id)))
    except (Team.DoesNotExist, ValueError, OverflowError):
        raise ContactInputError(
            f"No team you manage has the id {str(team_id)[:20]!r}.", code="unknown_team", field="team"
        ) from None


def _phone(raw: str, *, region: str, field: str) -> tuple[str, str]:
    """(E.164, inferred time zone) of ``raw``; ContactInputError with the reason."""
    try:
        normalised = phone_normalize(raw, default_region=region)
    except InvalidPhoneNumber as exc:
        raise ContactInputError(str(exc), code=f"invalid_phone_{exc.code}", field=field) from None
    except InvalidRegion as exc:
        raise ContactInputError(str(exc), code="invalid_region", field="default_region") from None
    return normalised.e164, normalised.timezone


def _region(value: str) -> str:
    try:
        return region_clean(value)
    except InvalidRegion as exc:
        raise ContactInputError(str(exc), code="invalid_region", field="default_region") from None


def _text(value: Any, *, field: str, max_chars: int, required: bool = False) -> str:
    text = " ".join(str(value or "").split())
    if required and not text:
        raise ContactInputError(f"The {field} is required.", code="required", field=field)
    if len(text) > max_chars:
        raise ContactInputError(
            f"The {field} is {len(text)} characters long; at most {max_chars} are allowed.",
            code="too_long",
            field=field,
        )
    return text


def _email(value: Any) -> str:
    email = str(value or "").strip()
    if not email:
        return ""
    try:
        validate_email(email)
    except ValidationError:
        raise ContactInputError(f"'{email[:100]}' is not a valid e-mail address.", field="email") from None
    return email


def _timezone(value: Any) -> str:
    try:
        return timezone_clean(str(value or ""))
    except InvalidTimezone as exc:
        raise ContactInputError(str(exc), code="invalid_timezone", field="timezone") from None


def _other_phones(values: Iterable[Any], *, region: str, primary: str) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ContactInputError("Must be a list of phone numbers.", field="other_phones")
    numbers: list[str] = []
    for raw in values:
        number, _ = _phone(str(raw), region=region, field="other_phones")
        if number != primary and number not in numbers:
            numbers.append(number)
    if len(numbers) > OTHER_PHONES_MAX:
        raise ContactInputError(f"At most {OTHER_PHONES_MAX} other numbers per contact.", field="other_phones")
    return numbers


def custom_fields_clean(value: Any) -> dict[str, Any]:
    """A flat JSON object of short names to text, numbers, booleans or null."""
    if not isinstance(value, Mapping):
        raise ContactInputError("Must be an object of name -> value.", field="custom_fields")
    clean: dict[str, Any] = {}
    for key, item in value.items():
        name = str(key).strip()
        if not name or len(name) > CUSTOM_FIELD_NAME_MAX_CHARS:
            raise ContactInputError(
                f"Field names must be 1 to {CUSTOM_FIELD_NAME_MAX_CHARS} characters long.", field="custom_fields"
            )
        if item is not None and not isinstance(item, str | int | float | bool):
            raise ContactInputError(
                f"The value of {name!r} must be text, a number, true/false or null.", field="custom_fields"
            )
        clean[name] = item
    if len(json.dumps(clean)) > CUSTOM_FIELDS_MAX_BYTES:
        raise ContactInputError(
            f"Custom fields must be at most {CUSTOM_FIELDS_MAX_BYTES // 1024} KiB of JSON.", field="custom_fields"
        )
    return clean


def _owner(username: Any, *, team: Team) -> User | None:
    """A contact's owner: an active member of its team, or its manager. "" or None: nobody."""
    if username in (None, ""):
        return None
    owner = (
        User.objects.filter(Q(team=team) | Q(managed_teams=team), username=str(username), is_active=True)
        .distinct()
        .first()
    )
    if owner is None:
        raise ContactInputError(
            f"No active member of {team.name} is called {str(username)[:150]!r}.", code="unknown_owner", field="owner"
        )
    return owner


def _on_do_not_call(*, team_id: int, phone: str) -> bool:
    return DoNotCall.objects.filter(team_id=team_id, phone=phone).exists()


# --- Contacts ------------------------------------------------------------------------------------------------


def contact_create(
    *,
    actor: User,
    team: Team,
    name: str,
    phone: str,
    default_region: str = "",
    company: str = "",
    email: str = "",
    timezone: str = "",
    other_phones: Iterable[str] = (),
    custom_fields: Mapping[str, Any] | None = None,
    owner: str | None = None,
) -> Contact:
    """Create a contact of ``team``. Raises NotAllowed, ContactInputError, or ContactDuplicate (same number)."""
    _require_manager(actor=actor, team_id=team.pk)
    region = _region(default_region)
    e164, inferred = _phone(phone, region=region, field="phone")
    contact = Contact(
        team=team,
        name=_text(name, field="name", max_chars=NAME_MAX_CHARS, required=True),
        company=_text(company, field="company", max_chars=COMPANY_MAX_CHARS),
        email=_email(email),
        phone=e164,
        timezone=_timezone(timezone) or inferred,
        other_phones=_other_phones(other_phones, region=region, primary=e164),
        custom_fields=custom_fields_clean(custom_fields or {}),
        owner=_owner(owner, team=team),
    )
    existing = Contact.objects.filter(team=team, phone=e164).first()
    if existing is not None:
        raise ContactDuplicate(existing)
    try:
        with transaction.atomic():
            contact.do_not_call = _on_do_not_call(team_id=team.pk, phone=e164)
            contact.save()
    except IntegrityError:
        # Another request created the same number between the check and the insert.
        raced = Contact.objects.filter(team=team, phone=e164).first()
        if raced is None:
            raise
        raise ContactDuplicate(raced) from None
    logger.info("contact %s created by %s in team %s", contact.pk, actor.pk, team.pk)
    return contact


def contact_update(*, actor: User, contact: Contact, changes: Mapping[str, Any]) -> Contact:
    """Apply ``changes`` (a subset of UPDATABLE_FIELDS) to ``contact``; custom_fields and other_phones are
    replaced whole. ``do_not_call`` adds the number to the team's list (with ``do_not_call_reason``) or removes
    it. Raises NotAllowed, ContactInputError, or ContactDuplicate when the new number is another contact's."""
    _require_manager(actor=actor, team_id=contact.team_id)
    unknown = sorted(set(changes) - UPDATABLE_FIELDS)
    if unknown:
        raise ContactInputError(f"Unknown field: {unknown[0][:50]}.", field=unknown[0][:50])
    region = _region(str(changes.get("default_region") or ""))
    try:
        with transaction.atomic():
            locked = Contact.objects.select_for_update().select_related("team").get(pk=contact.pk)
            _apply(locked, changes, region=region, actor=actor)
            locked.save()
    except IntegrityError:
        # Another contact took the new number between the check and the update.
        if "phone" not in changes:
            raise
        e164, _ = _phone(str(changes["phone"] or ""), region=region, field="phone")
        other = Contact.objects.filter(team_id=contact.team_id, phone=e164).exclude(pk=contact.pk).first()
        if other is None:
            raise
        raise ContactDuplicate(other) from None
    return locked


def _apply(contact: Contact, changes: Mapping[str, Any], *, region: str, actor: User) -> None:
    _apply_details(contact, changes)
    renumbered = _apply_numbers(contact, changes, region=region)
    if changes.get("do_not_call") is not None:
        wanted = bool(changes["do_not_call"])
        reason = _text(changes.get("do_not_call_reason"), field="do_not_call_reason", max_chars=REASON_MAX_CHARS)
        if wanted:
            _dnc_add_number(
                team_id=contact.team_id, phone=contact.phone, reason=reason or MARKED_ON_CONTACT, actor=actor
            )
        else:
            _dnc_remove_number(team_id=contact.team_id, phone=contact.phone)
        contact.do_not_call = wanted
    elif renumbered:
        contact.do_not_call = _on_do_not_call(team_id=contact.team_id, phone=contact.phone)


def _apply_details(contact: Contact, changes: Mapping[str, Any]) -> None:
    if "name" in changes:
        contact.name = _text(changes["name"], field="name", max_chars=NAME_MAX_CHARS, required=True)
    if "company" in changes:
        contact.company = _text(changes["company"], field="company", max_chars=COMPANY_MAX_CHARS)
    if "email" in changes:
        contact.email = _email(changes["email"])
    if "owner" in changes:
        contact.owner = _owner(changes["owner"], team=contact.team)
    if "custom_fields" in changes:
        contact.custom_fields = custom_fields_clean(changes["custom_fields"])


def _apply_numbers(contact: Contact, changes: Mapping[str, Any], *, region: str) -> bool:
    """Phone, time zone and other numbers; whether the primary number changed."""
    renumbered = False
    if "phone" in changes:
        e164, inferred = _phone(str(changes["phone"] or ""), region=region, field="phone")
        if e164 != contact.phone:
            other = Contact.objects.filter(team_id=contact.team_id, phone=e164).exclude(pk=contact.pk).first()
            if other is not None:
                raise ContactDuplicate(other)
            contact.phone = e164
            renumbered = True
            if "timezone" not in changes and inferred:
                contact.timezone = inferred
    if "timezone" in changes:
        # An empty time zone means "the number's": inferred, as when the contact was created without one.
        contact.timezone = _timezone(changes["timezone"]) or _phone(contact.phone, region="", field="phone")[1]
    if "other_phones" in changes or renumbered:
        current = changes.get("other_phones", contact.other_phones)
        contact.other_phones = _other_phones(current or [], region=region, primary=contact.phone)
    return renumbered


# --- The do-not-call list ------------------------------------------------------------------------------------


def _dnc_add_number(*, team_id: int, phone: str, reason: str, actor: User | None) -> tuple[DoNotCall, bool]:
    """Within a transaction: the entry for ``phone`` (created if new) and the team's contacts flagged."""
    try:
        with transaction.atomic():
            entry, created = DoNotCall.objects.get_or_create(
                team_id=team_id, phone=phone, defaults={"reason": reason, "added_by": actor}
            )
    except IntegrityError:
        # Two requests listed the number at once: the unique constraint let one in; this is the other.
        entry, created = DoNotCall.objects.get(team_id=team_id, phone=phone), False
    Contact.objects.filter(team_id=team_id, phone=phone, do_not_call=False).update(
        do_not_call=True, updated_at=django_timezone.now()
    )
    return entry, created


def _dnc_remove_number(*, team_id: int, phone: str) -> int:
    deleted, _ = DoNotCall.objects.filter(team_id=team_id, phone=phone).delete()
    Contact.objects.filter(team_id=team_id, phone=phone, do_not_call=True).update(
        do_not_call=False, updated_at=django_timezone.now()
    )
    return deleted


def dnc_add(
    *, actor: User, team: Team, phone: str, reason: str = "", default_region: str = ""
) -> tuple[DoNotCall, bool]:
    """Put a number on ``team``'s do-not-call list and flag its contacts; (entry, created). Adding a number that
    is listed already changes nothing and answers the existing entry (created False)."""
    _require_manager(actor=actor, team_id=team.pk)
    e164, _ = _phone(phone, region=_region(default_region), field="phone")
    clean_reason = _text(reason, field="reason", max_chars=REASON_MAX_CHARS)
    with transaction.atomic():
        entry, created = _dnc_add_number(team_id=team.pk, phone=e164, reason=clean_reason, actor=actor)
    if created:
        logger.info("do-not-call: %s added to team %s by %s", e164, team.pk, actor.pk)
    return entry, created


def dnc_remove(*, actor: User, entry: DoNotCall) -> None:
    """Take a number off its team's do-not-call list; its contacts are no longer flagged."""
    _require_manager(actor=actor, team_id=entry.team_id)
    with transaction.atomic():
        _dnc_remove_number(team_id=entry.team_id, phone=entry.phone)
    logger.info("do-not-call: %s removed from team %s by %s", entry.phone, entry.team_id, actor.pk)
