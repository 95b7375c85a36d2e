"""Contact imports from CSV: upload and check, mapping and preview, confirmation, the background import, the report.

Lifecycle (``ContactImport.status``): ``preview`` (uploaded and checked; waiting for the mapping and a
confirmation) -> ``queued`` (confirmed; the task is queued once the transaction commits) -> ``running`` (a worker
claimed it) -> ``completed`` | ``failed``. ``canceled`` from preview, queued or running: a running import stops
after its current batch, and the contacts it already imported stay. A queued, running (stalled) or failed import
can be started again: it continues where it stopped.

What happens to a row (the preview shows the same, computed by the same code):

- imported: a new contact. Its number is on the team's do-not-call list? It is imported all the same, flagged
  do-not-call, and the row's reason says so (runs skip it; the list, not the file, decides).
- updated: the number is an existing contact of the team (deduplication by normalised number): the row's
  non-empty values replace the contact's, other numbers and custom fields are added to the contact's, and the
  reason lists what changed. Empty cells never blank a contact's data.
- skipped, with the reason: empty row; more values than the header has columns; missing phone; invalid phone
  number (and why); missing name (for a new contact); a value too long; the same number as an earlier row of the
  file ("duplicate of row N"); an existing contact with nothing to change; an existing contact while "update
  existing contacts" is off.
- A row is never dropped in silence: a value that could not be kept (an invalid e-mail address, an unknown time
  zone, an invalid other number) is left out and the reason of the imported or updated row says so.

The background import (``contact_import_process``, run by the Celery task ``contact_import_run``) is idempotent
and resumable. ``processed_rows`` is the cursor: each batch of BATCH_ROWS rows is one transaction that locks the
import row, checks that it is still running and that the cursor is where this worker left it, writes the
contacts (bulk_create / bulk_update), the report rows and the counters, and moves the cursor. A worker that dies
mid-batch loses nothing (the batch rolls back) and the redelivered task (acks_late) continues from the cursor;
two workers on one import serialise on the lock and the one that finds the cursor moved stops. The queries per
batch are a constant, whatever the file's size. A task hands over to a fresh one after TIME_BUDGET_SECONDS, so
no import runs into the worker's time limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Min, Q
from django.db.models.functions import Coalesce, Now
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import get_valid_filename

from campaigns.access import NotAllowed, can_manage_team
from campaigns.contacts import COMPANY_MAX_CHARS, CUSTOM_FIELDS_MAX_BYTES, NAME_MAX_CHARS, OTHER_PHONES_MAX
from campaigns.import_csv import (
    CsvFile,
    ImportFileRejected,
    MappingInvalid,
    csv_data_rows,
    csv_read,
    mapping_clean,
    mapping_suggest,
)
from campaigns.models import Contact, ContactImport, ContactImportRow, DoNotCall
from campaigns.phones import InvalidPhoneNumber, InvalidRegion, InvalidTimezone, phone_normalize, region_clean
from campaigns.phones import timezone_clean as _timezone_clean
from crm.csv_export import PHONE_LIKE_RE, csv_lines, csv_safe
from crm.metrics import CONTACTS_IMPORTED
from crm.models import Team, User

logger = logging.getLogger(__name__)

BATCH_ROWS = 1000
PREVIEW_ROWS = 20
TIME_BUDGET_SECONDS = 120.0
READ_CHUNK = 1024 * 1024
REASON_MAX_CHARS = ContactImportRow._meta.get_field("reason").max_length or 255
_INTEGRITY_ATTEMPTS = 3

Status = ContactImport.Status
Outcome = ContactImportRow.Outcome
RESTARTABLE = (Status.QUEUED, Status.RUNNING, Status.FAILED)
UPDATED_FIELDS = ("name", "company", "email", "timezone", "other_phones", "custom_fields", "updated_at")


class ImportStateError(Exception):
    """The import is not in a state that allows this (confirming a finished import): 409."""

    def __init__(self, message: str, *, code: str = "import_state") -> None:
        super().__init__(message)
        self.code = code


class ImportInputError(Exception):
    """A bad option for an import (region, delimiter): 400, naming the field."""

    def __init__(self, message: str, *, field: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def _require_manager(*, actor: User, contact_import: ContactImport | None = None, team: Team | None = None) -> None:
    team_id = contact_import.team_id if contact_import is not None else team.pk if team is not None else None
    if not can_manage_team(user=actor, team_id=team_id):
        raise NotAllowed("Only the team's manager or an admin may import contacts.")


def _region(value: str) -> str:
    try:
        return region_clean(value)
    except InvalidRegion as exc:
        raise ImportInputError(str(exc), field="default_region", code="invalid_region") from None


# --- Upload --------------------------------------------------------------------------------------------------


def _too_large(limit: int) -> ImportFileRejected:
    return ImportFileRejected(
        f"The file is larger than the limit of {filesizeformat(limit).replace(chr(0xA0), ' ')}. Split it into smaller "
        "files and import each.",
        code="too_large",
        status=413,
    )


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def import_upload_read(*, body: Readable | IO[bytes], declared_length: int | None) -> bytes:
    """The uploaded bytes, refused (413) beyond CONTACT_IMPORT_MAX_BYTES before and while reading."""
    limit: int = settings.CONTACT_IMPORT_MAX_BYTES
    if declared_length is not None and declared_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := body.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _storage_name(filename: str) -> str:
    stem = get_valid_filename(Path(filename).stem)[:80] if Path(filename).stem.strip() else ""
    return f"{stem or 'contacts'}.csv"


def contact_import_create(
    *,
    actor: User,
    team: Team,
    raw: bytes,
    filename: str,
    default_region: str = "",
    delimiter: str | None = None,
    update_existing: bool = True,
) -> tuple[ContactImport, CsvFile]:
    """Check an upload and store it as an import awaiting confirmation, with a mapping suggested from its
    header. Raises NotAllowed, ImportInputError, or ImportFileRejected (nothing is stored then)."""
    _require_manager(actor=actor, team=team)
    region = _region(default_region)
    parsed = csv_read(raw, delimiter=delimiter or None)

    contact_import = ContactImport(
        team=team,
        uploaded_by=actor,
        original_name=Path(filename or "upload.csv").name[:255],
        encoding=parsed.encoding[:32],
        delimiter=parsed.delimiter,
        headers=parsed.headers,
        mapping=mapping_suggest(parsed.headers),
        default_region=region,
        update_existing=update_existing,
        total_rows=parsed.total_rows,
    )
    # Storage first, outside any transaction; should the insert then fail, the file is an unreferenced leftover.
    contact_import.file.save(_storage_name(filename), ContentFile(raw), save=False)
    contact_import.save()
    logger.info(
        "contact import %s uploaded by %s: %s rows, %s, %r",
        contact_import.pk,
        actor.pk,
        parsed.total_rows,
        parsed.encoding,
        parsed.delimiter,
    )
    return contact_import, parsed


def _stored_csv(contact_import: ContactImport) -> CsvFile:
    """The stored file, read and checked again (the same bytes give the same result as at upload)."""
    with contact_import.file.open("rb") as stored:
        raw = stored.read()
    parsed = csv_read(raw, delimiter=contact_import.delimiter)
    if parsed.total_rows != contact_import.total_rows or parsed.headers != contact_import.headers:
        raise ImportFileRejected("The stored file is not the one that was checked at upload.", code="file_changed")
    return parsed


# --- Reading a row -------------------------------------------------------------------------------------------


@dataclass
class RowRead:
    """One data row, read through the mapping: the contact values it holds, or why it cannot be used."""

    row_number: int
    data: dict[str, Any]
    skip: str = ""
    name: str = ""
    phone: str = ""
    inferred_timezone: str = ""
    company: str = ""
    email: str = ""
    timezone: str = ""
    other_phones: list[str] = field(default_factory=list)
    custom_fields: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _cell(value: str) -> str:
    return " ".join(value.split())


def _row_data(cells: Sequence[str], headers: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    data: dict[str, Any] = {header: cells[index] if index < len(cells) else "" for index, header in enumerate(headers)}
    extra = list(cells[len(headers) :])
    if any(cell.strip() for cell in extra):
        data["_extra"] = extra
    return data, extra


def _read_row(
    row_number: int, cells: Sequence[str], *, headers: Sequence[str], mapping: Mapping[str, Any], region: str
) -> RowRead:
    data, extra = _row_data(cells, headers)
    read = RowRead(row_number=row_number, data=data)
    if not any(cell.strip() for cell in cells):
        read.skip = "Empty row."
        return read
    if any(cell.strip() for cell in extra):
        read.skip = (
            f"The row has {len(cells)} values but the header has {len(headers)} columns: check the delimiter and "
            "the quotes of this row."
        )
        return read

    def get(name: str) -> str:
        column = mapping.get(name)
        return _cell(data.get(column, "")) if isinstance(column, str) else ""

    read.name = get("name") or " ".join(part for part in (get("first_name"), get("last_name")) if part)
    read.company = get("company")
    for label, value, limit in (("name", read.name, NAME_MAX_CHARS), ("company", read.company, COMPANY_MAX_CHARS)):
        if len(value) > limit:
            read.skip = f"The {label} is {len(value)} characters long; at most {limit} are allowed."
            return read
    raw_phone = get("phone")
    if not raw_phone:
        read.skip = f"Missing required field: phone (column {mapping.get('phone')!r} is empty)."
        return read
    try:
        normalised = phone_normalize(raw_phone, default_region=region)
    except InvalidPhoneNumber as exc:
        read.skip = f"Invalid phone number: {exc}"
        return read
    read.phone, read.inferred_timezone = normalised.e164, normalised.timezone
    _read_optional(read, get, mapping=mapping, region=region)
    return read


def _read_optional(read: RowRead, get: Callable[[str], str], *, mapping: Mapping[str, Any], region: str) -> None:
    """E-mail, time zone, other numbers, custom fields: a bad value is left out and noted, never fatal."""
    email = get("email")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            read.warnings.append(f"e-mail {email[:60]!r} left out: not a valid address")
        else:
            read.email = email
    zone = get("timezone")
    if zone:
        try:
            read.timezone = _timezone_clean(zone)
        except InvalidTimezone:
            read.warnings.append(f"time zone {zone[:40]!r} left out: unknown")
    for column in mapping.get("other_phones", []):
        raw = _cell(read.data.get(column, ""))
        if not raw:
            continue
        try:
            number = phone_normalize(raw, default_region=region).e164
        except InvalidPhoneNumber as exc:
            read.warnings.append(f"{column} left out: {exc}")
            continue
        if number != read.phone and number not in read.other_phones:
            if len(read.other_phones) >= OTHER_PHONES_MAX:
                read.warnings.append(f"{column} left out: at most {OTHER_PHONES_MAX} other numbers")
                continue
            read.other_phones.append(number)
    custom = {column: read.data[column].strip() for column in mapping.get("custom_fields", [])}
    custom = {column: value for column, value in custom.items() if value}
    if sum(len(key) + len(value) + 8 for key, value in custom.items()) > CUSTOM_FIELDS_MAX_BYTES:
        read.warnings.append(f"custom fields left out: more than {CUSTOM_FIELDS_MAX_BYTES // 1024} KiB")
        custom = {}
    read.custom_fields = custom


# --- Planning a batch ----------------------------------------------------------------------------------------


@dataclass
class RowPlan:
    """What happens (or, in a preview, would happen) to one row."""

    read: RowRead
    outcome: str
    reason: str
    contact: Contact | None = None  # the new (unsaved) contact, or the existing one
    created: bool = False
    changed: list[str] = field(default_factory=list)

    @property
    def row_number(self) -> int:
        return self.read.row_number


def _reason(*parts: str) -> str:
    text = "; ".join(part.rstrip(".") for part in parts if part)
    text = text[:1].upper() + text[1:]
    if text and not text.endswith("."):
        text += "."
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 1] + "…"


def _changes(contact: Contact, read: RowRead) -> list[str]:
    """Apply the row's non-empty values to ``contact`` (in memory); the names of what changed."""
    changed: list[str] = []
    for name in ("name", "company", "email", "timezone"):
        value = getattr(read, name)
        if value and value != getattr(contact, name):
            setattr(contact, name, value)
            changed.append(name)
    current = list(contact.other_phones or [])
    added = [n for n in read.other_phones if n not in current and n != contact.phone]
    if added:
        contact.other_phones = (current + added)[: max(OTHER_PHONES_MAX, len(current))]
        changed.append("other numbers")
    custom = dict(contact.custom_fields or {})
    fresh = {key: value for key, value in read.custom_fields.items() if custom.get(key) != value}
    if fresh:
        contact.custom_fields = {**custom, **fresh}
        changed.append("custom fields")
    return changed


def _plan(contact_import: ContactImport, reads: Sequence[RowRead], *, earlier_rows: Mapping[str, int]) -> list[RowPlan]:
    """Decide every row of a batch: two queries (existing contacts, do-not-call) whatever its size.
    ``earlier_rows``: number -> the first earlier row of the file that had it (from previous batches)."""
    phones = {read.phone for read in reads if read.phone}
    existing = {c.phone: c for c in Contact.objects.filter(team_id=contact_import.team_id, phone__in=phones)}
    listed = set(
        DoNotCall.objects.filter(team_id=contact_import.team_id, phone__in=phones).values_list("phone", flat=True)
    )
    first_row = dict(earlier_rows)
    plans: list[RowPlan] = []
    for read in reads:
        if read.skip:
            plans.append(RowPlan(read=read, outcome=Outcome.SKIPPED, reason=_reason(read.skip)))
            continue
        if read.phone in first_row:
            reason = f"Duplicate of row {first_row[read.phone]}: the same number ({read.phone}) earlier in the file"
            plans.append(RowPlan(read=read, outcome=Outcome.SKIPPED, reason=_reason(reason)))
            continue
        warnings = "; ".join(read.warnings)
        contact = existing.get(read.phone)
        if contact is None:
            if not read.name:
                plans.append(
                    RowPlan(read=read, outcome=Outcome.SKIPPED, reason=_reason("Missing required field: name"))
                )
                continue
            contact = Contact(
                team_id=contact_import.team_id,
                name=read.name,
                company=read.company,
                email=read.email,
                phone=read.phone,
                timezone=read.timezone or read.inferred_timezone,
                other_phones=read.other_phones,
                custom_fields=read.custom_fields,
                do_not_call=read.phone in listed,
            )
            flagged = "on the do-not-call list: imported and flagged do-not-call" if contact.do_not_call else ""
            plan = RowPlan(read=read, outcome=Outcome.IMPORTED, reason=_reason(flagged, warnings), contact=contact)
            plan.created = True
        elif not contact_import.update_existing:
            reason = f"Already a contact ({contact.name}, #{contact.pk}); updating existing contacts is turned off"
            plan = RowPlan(read=read, outcome=Outcome.SKIPPED, reason=_reason(reason, warnings), contact=contact)
        else:
            changed = _changes(contact, read)
            if changed:
                reason = _reason(f"Changed {', '.join(changed)}", warnings)
                plan = RowPlan(read=read, outcome=Outcome.UPDATED, reason=reason, contact=contact, changed=changed)
            else:
                reason = f"Unchanged: the contact {contact.name} (#{contact.pk}) already has these details"
                plan = RowPlan(read=read, outcome=Outcome.SKIPPED, reason=_reason(reason, warnings), contact=contact)
        first_row[read.phone] = read.row_number
        plans.append(plan)
    return plans


# --- Mapping and preview -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    rows: list[RowPlan]
    mapping_errors: dict[str, str]
    total_rows: int


def contact_import_preview(
    *, contact_import: ContactImport, parsed: CsvFile | None = None, limit: int = PREVIEW_ROWS
) -> Preview:
    """What the first ``limit`` rows would become with the import's mapping; nothing is written. With a mapping
    that cannot be used, no rows and the mapping's problems."""
    try:
        mapping = mapping_clean(contact_import.mapping, contact_import.headers)
    except MappingInvalid as exc:
        return Preview(rows=[], mapping_errors=exc.errors, total_rows=contact_import.total_rows)
    csv_file = parsed if parsed is not None else _stored_csv(contact_import)
    reads = [
        _read_row(number, cells, headers=contact_import.headers, mapping=mapping, region=contact_import.default_region)
        for number, cells in islice(csv_data_rows(csv_file.text, csv_file.delimiter), limit)
    ]
    return Preview(
        rows=_plan(contact_import, reads, earlier_rows={}), mapping_errors={}, total_rows=csv_file.total_rows
    )


def contact_import_configure(
    *,
    actor: User,
    contact_import: ContactImport,
    mapping: Mapping[str, Any] | None = None,
    default_region: str | None = None,
    update_existing: bool | None = None,
) -> ContactImport:
    """Change the mapping and options of an import still awaiting confirmation. Raises NotAllowed,
    ImportStateError, ImportInputError or MappingInvalid (nothing is saved then)."""
    _require_manager(actor=actor, contact_import=contact_import)
    changes: dict[str, Any] = {}
    if mapping is not None:
        changes["mapping"] = mapping_clean(mapping, contact_import.headers)
    if default_region is not None:
        changes["default_region"] = _region(default_region)
    if update_existing is not None:
        changes["update_existing"] = bool(update_existing)
    if changes:
        saved = ContactImport.objects.filter(pk=contact_import.pk, status=Status.PREVIEW).update(**changes)
        if not saved:
            raise ImportStateError("This import was confirmed already: its mapping can no longer change.")
        for name, value in changes.items():
            setattr(contact_import, name, value)
    return contact_import


def contact_import_start(
    *,
    actor: User,
    contact_import: ContactImport,
    mapping: Mapping[str, Any] | None = None,
    default_region: str | None = None,
    update_existing: bool | None = None,
) -> ContactImport:
    """Confirm an import and queue it (on commit). Starting a queued, running or failed import again queues it
    to continue from its cursor (a stalled worker, a broker that was down): safe, as the import is idempotent."""
    _require_manager(actor=actor, contact_import=contact_import)
    status = contact_import.status
    if status in RESTARTABLE:
        with transaction.atomic():
            resumed = ContactImport.objects.filter(pk=contact_import.pk, status__in=RESTARTABLE).update(
                status=Status.QUEUED if status == Status.FAILED else F("status"),
                error="",
                finished_at=None,
                heartbeat_at=Now(),
            )
            if resumed:
                transaction.on_commit(lambda: contact_import_enqueue(import_id=contact_import.pk))
        contact_import.refresh_from_db()
        return contact_import
    if status != Status.PREVIEW:
        raise ImportStateError(f"This import is {contact_import.get_status_display().lower()}: it cannot start again.")
    contact_import_configure(
        actor=actor,
        contact_import=contact_import,
        mapping=mapping if mapping is not None else contact_import.mapping,
        default_region=default_region,
        update_existing=update_existing,
    )
    with transaction.atomic():
        queued = ContactImport.objects.filter(pk=contact_import.pk, status=Status.PREVIEW).update(
            status=Status.QUEUED, heartbeat_at=Now()
        )
        if not queued:
            raise ImportStateError("This import was confirmed or canceled meanwhile.")
        transaction.on_commit(lambda: contact_import_enqueue(import_id=contact_import.pk))
    contact_import.refresh_from_db()
    logger.info("contact import %s confirmed by %s", contact_import.pk, actor.pk)
    return contact_import


def contact_import_cancel(*, actor: User, contact_import: ContactImport) -> ContactImport:
    """Stop an import: before it starts, or after the batch it is on (contacts already imported stay)."""
    _require_manager(actor=actor, contact_import=contact_import)
    canceled = ContactImport.objects.filter(
        pk=contact_import.pk, status__in=(Status.PREVIEW, Status.QUEUED, Status.RUNNING)
    ).update(status=Status.CANCELED, finished_at=timezone.now())
    contact_import.refresh_from_db()
    if not canceled:
        raise ImportStateError(f"This import is {contact_import.get_status_display().lower()}: nothing to cancel.")
    return contact_import


def contact_import_enqueue(*, import_id: int) -> bool:
    """Queue the import task. If the broker is down the import stays queued in the database and the page offers
    to start it again; the request that confirmed it still succeeds."""
    from campaigns.import_tasks import contact_import_run  # noqa: PLC0415  # the task module imports this one

    try:
        contact_import_run.delay(import_id)
    except Exception as exc:  # broker errors come from kombu, redis-py or amqp, with no common base class
        logger.warning("could not queue contact import %s (start it again from its page): %s", import_id, exc)
        return False
    return True


def contact_imports_resume_stalled(*, stalled_after: timedelta, now: datetime | None = None) -> list[int]:
    """Queue again the queued or running imports that showed no sign of life for ``stalled_after``: their task
    was lost with a worker, or never reached a broker that was down. Safe, as an import continues from its cursor
    and never repeats a row. Each import is claimed by moving its heartbeat, so two beats never queue it twice.
    Returns the ids queued."""
    now = now or timezone.now()
    cutoff = now - stalled_after
    live = (Status.QUEUED, Status.RUNNING)
    stalled = ContactImport.objects.filter(status__in=live).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
    resumed: list[int] = []
    for import_id, heartbeat in stalled.order_by("pk").values_list("pk", "heartbeat_at")[:500]:
        claimed = ContactImport.objects.filter(pk=import_id, status__in=live, heartbeat_at=heartbeat).update(
            heartbeat_at=now
        )
        if claimed:
            logger.warning("contact import %s showed no progress since %s: queued again", import_id, heartbeat)
            resumed.append(import_id)
            transaction.on_commit(partial(contact_import_enqueue, import_id=import_id))
    return resumed


# --- The background import -----------------------------------------------------------------------------------


def _batches(rows: Iterator[tuple[int, list[str]]], size: int) -> Iterator[list[tuple[int, list[str]]]]:
    while batch := list(islice(rows, size)):
        yield batch


def contact_import_fail(*, import_id: int, error: str) -> None:
    ContactImport.objects.filter(pk=import_id, status__in=(Status.QUEUED, Status.RUNNING)).update(
        status=Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def contact_import_process(*, import_id: int, time_budget: float = TIME_BUDGET_SECONDS) -> str:
    """Import the rows of a confirmed import from its cursor on; safe to run twice (see the module's docstring).
    Returns what it did, for the task's result and the logs."""
    claimed = ContactImport.objects.filter(pk=import_id, status__in=(Status.QUEUED, Status.RUNNING)).update(
        status=Status.RUNNING, started_at=Coalesce(F("started_at"), Now()), heartbeat_at=Now()
    )
    if not claimed:
        return "not runnable"
    contact_import = ContactImport.objects.get(pk=import_id)
    try:
        parsed = _stored_csv(contact_import)
        mapping = mapping_clean(contact_import.mapping, contact_import.headers)
    except FileNotFoundError:
        contact_import_fail(import_id=import_id, error="The uploaded file is missing from storage: upload it again.")
        return "failed: file missing"
    except (ImportFileRejected, MappingInvalid) as exc:
        contact_import_fail(import_id=import_id, error=str(exc))
        return f"failed: {exc}"
    cursor = contact_import.processed_rows
    deadline = time.monotonic() + time_budget
    rows = csv_data_rows(parsed.text, parsed.delimiter, skip=cursor)
    for batch in _batches(rows, BATCH_ROWS):
        region = contact_import.default_region
        reads = [
            _read_row(number, cells, headers=contact_import.headers, mapping=mapping, region=region)
            for number, cells in batch
        ]
        stopped = _commit_batch_retrying(contact_import, reads, cursor=cursor)
        if stopped:
            return stopped
        cursor += len(batch)
        if time.monotonic() > deadline and cursor < contact_import.total_rows:
            contact_import_enqueue(import_id=import_id)
            return f"continues after row {cursor} of {contact_import.total_rows}"
    finished = ContactImport.objects.filter(pk=import_id, status=Status.RUNNING, processed_rows=cursor).update(
        status=Status.COMPLETED, finished_at=timezone.now()
    )
    logger.info("contact import %s: %s rows processed, %s", import_id, cursor, "completed" if finished else "stopped")
    return "completed" if finished else "stopped"


def _commit_batch_retrying(contact_import: ContactImport, reads: list[RowRead], *, cursor: int) -> str:
    for attempt in range(1, _INTEGRITY_ATTEMPTS + 1):
        try:
            return _commit_batch(contact_import, reads, cursor=cursor)
        except IntegrityError:
            # A contact with one of these numbers was created meanwhile (the API, another import): the batch
            # rolled back whole; planning it again finds that contact and updates it instead.
            if attempt == _INTEGRITY_ATTEMPTS:
                raise
            logger.info(
                "contact import %s: batch at %s raced another write; planning it again", contact_import.pk, cursor
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _commit_batch(contact_import: ContactImport, reads: list[RowRead], *, cursor: int) -> str:
    """One batch in one transaction; "" when committed, else why this worker stops."""
    with transaction.atomic():
        locked = (
            ContactImport.objects.select_for_update()
            .filter(pk=contact_import.pk)
            .values_list("status", "processed_rows")
            .first()
        )
        if locked is None or locked[0] != Status.RUNNING:
            return f"stopped: {locked[0] if locked else 'deleted'}"
        if locked[1] != cursor:
            return f"stopped: another worker is at row {locked[1]}"
        phones = {read.phone for read in reads if read.phone}
        earlier = dict(
            ContactImportRow.objects.filter(contact_import_id=contact_import.pk, contact__phone__in=phones)
            .values_list("contact__phone")
            .annotate(first=Min("row_number"))
        )
        plans = _plan(contact_import, reads, earlier_rows=earlier)
        new = [plan.contact for plan in plans if plan.created and plan.contact is not None]
        Contact.objects.bulk_create(new, batch_size=BATCH_ROWS)
        now = timezone.now()
        changed = [plan.contact for plan in plans if plan.changed and plan.contact is not None]
        for contact in changed:
            contact.updated_at = now
        Contact.objects.bulk_update(changed, UPDATED_FIELDS, batch_size=BATCH_ROWS)
        ContactImportRow.objects.bulk_create(
            [
                ContactImportRow(
                    contact_import_id=contact_import.pk,
                    row_number=plan.row_number,
                    outcome=plan.outcome,
                    reason=plan.reason,
                    contact=plan.contact if plan.contact is not None and plan.contact.pk else None,
                    data=plan.read.data,
                )
                for plan in plans
            ],
            batch_size=BATCH_ROWS,
        )
        counts = {outcome: sum(plan.outcome == outcome for plan in plans) for outcome in Outcome.values}
        ContactImport.objects.filter(pk=contact_import.pk).update(
            processed_rows=F("processed_rows") + len(plans),
            imported=F("imported") + counts[Outcome.IMPORTED],
            updated=F("updated") + counts[Outcome.UPDATED],
            skipped=F("skipped") + counts[Outcome.SKIPPED],
            heartbeat_at=Now(),
        )
        transaction.on_commit(lambda: _count(counts))
    return ""


def _count(counts: Mapping[str, int]) -> None:
    for outcome, count in counts.items():
        if count:
            CONTACTS_IMPORTED.labels(outcome=outcome).inc(count)


# --- The report ----------------------------------------------------------------------------------------------


def import_report_lines(*, contact_import: ContactImport, rows: Iterable[ContactImportRow]) -> Iterator[str]:
    """The report as CSV lines: row, outcome, reason, contact id, then the row as read (its own columns)."""
    return csv_lines(_import_report_rows(contact_import=contact_import, rows=rows))


def _import_report_rows(*, contact_import: ContactImport, rows: Iterable[ContactImportRow]) -> Iterator[list[object]]:
    headers = list(contact_import.headers)
    yield ["row", "outcome", "reason", "contact_id", *headers, "extra values"]
    for row in rows:
        data = row.data if isinstance(row.data, dict) else {}
        extra = data.get("_extra") or []
        yield [
            row.row_number,
            row.outcome,
            csv_safe(row.reason, allow=PHONE_LIKE_RE),
            row.contact_id or "",
            *(csv_safe(data.get(header, ""), allow=PHONE_LIKE_RE) for header in headers),
            csv_safe(" | ".join(str(value) for value in extra), allow=PHONE_LIKE_RE) if extra else "",
        ]


def import_report_filename(*, contact_import: ContactImport, outcome: str | None = None) -> str:
    return f"contact-import-{contact_import.pk}{f'-{outcome}' if outcome else ''}-report.csv"
