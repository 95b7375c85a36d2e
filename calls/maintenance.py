"""Jobs that keep the recordings storage and the database in agreement (run by Celery beat and by the
operator commands ingest, adopt_orphans and expire_sessions)."""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from itertools import islice
from typing import Any, TypeVar

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from calls import states
from calls.adoption import orphan_adopt, sweep_batch
from calls.ingest import claim_lease
from calls.models import CallEvent, CallSession, Recording, StorageFolder, Transcript
from calls.services import call_session_abandon_if_quiet
from calls.storage import (
    META_FILE,
    SESSIONS_PREFIX,
    TRANSCRIPT_EXTENSIONS,
    inspect_session_folder,
    recordings_storage,
)
from crm import metrics

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
_T = TypeVar("_T")
BATCH = 1000


def _batches(items: Iterable[_T], size: int = BATCH) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# --- Orphan sweep -----------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    folders: int = 0
    unchanged: int = 0
    adopted: list[uuid.UUID] = field(default_factory=list)
    attached: list[uuid.UUID] = field(default_factory=list)
    without_audio: int = 0
    not_session_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.folders} folders: {len(self.adopted)} adopted, {len(self.attached)} recordings attached to "
            f"existing sessions, {self.unchanged} unchanged since the last sweep, {self.without_audio} without "
            f"audio yet, {len(self.not_session_ids)} not named by a session id"
        )


def list_session_folders() -> dict[str, str]:
    """Folder name → change signature. Local folders sign with their mtime, so an edited folder is looked at
    again; S3 has no folder mtime, so there a folder is looked at until it has been dealt with."""
    storage = recordings_storage()
    if isinstance(storage, FileSystemStorage):
        root = os.path.join(storage.location, SESSIONS_PREFIX)
        try:
            with os.scandir(root) as entries:
                return {e.name: str(e.stat().st_mtime_ns) for e in entries if e.is_dir(follow_symlinks=False)}
        except FileNotFoundError:
            return {}
    try:
        folders, _ = storage.listdir(f"{SESSIONS_PREFIX}/")
    except FileNotFoundError:
        return {}
    return dict.fromkeys(folders, "")


def orphans_sweep(*, dry_run: bool = False, progress: Progress | None = None) -> SweepReport:
    """Adopt every folder ``sessions/<id>/`` that has audio and no row; attach late recordings to sessions that
    have a row but no recording; queue their ingest. Incremental: folders already dealt with and unchanged
    since (the StorageFolder ledger) are skipped without being opened."""
    report = SweepReport()
    listing = list_session_folders()
    report.folders = len(listing)
    ledger = _ledger_signatures()
    # Folders are handled by name (the session id's canonical text): a UUID object is made only for a folder
    # that is adopted, attached or queued, not for each of the store's folders.
    todo: dict[str, str] = {}
    for name, signature in listing.items():
        # The ledger is keyed by the canonical form of session ids, so a name found there with the same signature
        # is a session id whose folder was dealt with and has not changed since: nothing to parse or open.
        if ledger.get(name) == signature:
            report.unchanged += 1
        # Session ids are minted lowercase and the folder contract uses them as they are: an upper-case folder
        # name is reported for someone to rename, rather than adopted under a key that does not exist.
        elif _CANONICAL_ID_RE.match(name):
            todo[name] = signature
        else:
            report.not_session_ids.append(name)
    if progress:
        progress(report.unchanged + len(report.not_session_ids))
    # In id order: a directory lists its entries in hash order, and batches of random ids touched pages all over
    # every index they read or wrote; a batch of neighbouring ids reads and writes a narrow range of each.
    for batch in _batches(sorted(todo), SWEEP_BATCH):
        rows = _session_states(batch)
        if dry_run:
            for name in batch:
                _sweep_one(session_id=uuid.UUID(name), has_row=name in rows, dry_run=True, report=report)
        else:
            known = {name: rows[name] for name in batch if name in rows}
            # A folder in the ledger under another signature was dealt with before and has changed since.
            found = _sweep_known(known, changed={name for name in known if name in ledger}, report=report)
            orphans = [uuid.UUID(name) for name in batch if name not in rows]
            found.update({str(sid): state for sid, state in _sweep_orphans(orphans, report=report).items()})
            _ledger_write({name: (state, todo[name]) for name, state in found.items()})
        if progress:
            progress(len(batch))
    if report.adopted or report.attached:
        logger.info("orphan sweep: %s", report.summary())
    return report


def _ledger_signatures() -> dict[str, str]:
    """The ledger as {session id in its canonical text form (as folders are named): signature}.

    Read with one query through the cursor, without a model value per row: at 100,000 folders building UUIDs
    through the ORM cost more than the rest of a second sweep. A uuid column reads back as text in the
    canonical form on PostgreSQL and as 32 hex digits on SQLite (Django's storage there), written out here.
    """
    rows = StorageFolder.objects.annotate(key=Cast("session_id", output_field=TextField())).values_list(
        "key", "checked_signature"
    )
    sql, params = rows.query.sql_with_params()
    connection = connections[rows.db]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return {
        key if len(key) == 36 else f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:]}": signature
        for key, signature in found
    }


# The canonical text of a session id, as session folders are named.
_CANONICAL_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
# Folders looked up, adopted and written to the ledger per transaction. Large: at a hundred thousand sessions,
# rows under random ids land on pages all over each index, and a commit writes each page it dirtied once.
SWEEP_BATCH = 5000


def _id_values(names: list[str], connection: BaseDatabaseWrapper) -> list[str]:
    """Session ids as their uuid columns take them: the canonical text where the database has a uuid type, else
    the 32 hex digits that UUIDField stores there."""
    return names if connection.features.has_native_uuid_field else [name.replace("-", "") for name in names]


def _session_states(names: list[str]) -> dict[str, tuple[str | None, int | None]]:
    """{name: (its recording's status, its transcript's id)} for the names that have a session row.

    One query with the names as one parameter (a JSON array on SQLite, an array on PostgreSQL): building an IN
    list of a thousand ids through the ORM cost more than the query.
    """
    connection = connections[CallSession.objects.db]
    native = connection.features.has_native_uuid_field
    ids = _id_values(names, connection)
    with connection.cursor() as cursor:
        cursor.execute(_session_states_sql(connection.vendor, native), [ids if native else json.dumps(ids)])
        found = cursor.fetchall()
    return {
        key if len(key) == 36 else f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:]}": (status, transcript)
        for key, status, transcript in found
    }


@cache
def _session_states_sql(vendor: str, native_uuid: bool) -> str:
    quote = connections[CallSession.objects.db].ops.quote_name

    def column(model: type[Model], name: str) -> str:
        return quote(str(_column(model, name).column))

    session, recording, transcript = (quote(m._meta.db_table) for m in (CallSession, Recording, Transcript))
    pk = f"{session}.{column(CallSession, 'id')}"
    # PostgreSQL: the id as canonical text and the names as a uuid array; elsewhere json_each of the hex ids.
    selected, condition = (
        (f"{pk}::text", f"{pk} = ANY(%s::uuid[])")
        if native_uuid
        else (pk, f"{pk} IN (SELECT value FROM json_each(%s))")  # noqa: S608  # model names
    )
    return (
        f"SELECT {selected}, {recording}.{column(Recording, 'status')}, {transcript}.{column(Transcript, 'id')} "  # noqa: S608  # model names
        f"FROM {session} "
        f"LEFT JOIN {recording} ON {recording}.{column(Recording, 'session')} = {pk} "
        f"LEFT JOIN {transcript} ON {transcript}.{column(Transcript, 'session')} = {pk} "
        f"WHERE {condition}"
    )


# Recordings whose ingest has not finished: queueing it again is what lets a lost task be picked up.
_UNFINISHED = frozenset({Recording.Status.PENDING, Recording.Status.PROCESSING})


def _sweep_known(
    known: dict[str, tuple[str | None, int | None]], *, changed: set[str], report: SweepReport
) -> dict[str, str]:
    """Folders of sessions that have a row, given with their recording's status and transcript (read for the
    whole batch in one query). An ingest is queued only for what has something to do: a recording not yet
    ingested, a folder that changed since it was dealt with, or a transcript file in the folder of a session
    without a transcript. A folder is opened only for a session without a recording (late audio) or listed (not
    read) for a session without a transcript. Answers the ledger state of each folder dealt with."""
    found: dict[str, str] = {}
    for name, (recording_status, transcript_id) in known.items():
        if recording_status is None:
            state = _attach_late(session_id=uuid.UUID(name), dry_run=False, report=report)
            if state is not None:
                found[name] = state
            continue
        if name in changed or recording_status in _UNFINISHED or (transcript_id is None and _holds_transcript(name)):
            # Ingest is idempotent and picks up what is new (a transcript that arrived, say).
            _queue(uuid.UUID(name))
        found[name] = StorageFolder.State.HAS_SESSION
    return found


def _holds_transcript(name: str) -> bool:
    """Whether the folder of the session named so holds a transcript file: a listing of the folder, nothing read."""
    storage = recordings_storage()
    try:
        if isinstance(storage, FileSystemStorage):
            files = os.listdir(os.path.join(storage.location, SESSIONS_PREFIX, name))
        else:
            _, files = storage.listdir(f"{SESSIONS_PREFIX}/{name}")
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(name != META_FILE and name.lower().endswith(TRANSCRIPT_EXTENSIONS) for name in files)


def _sweep_orphans(orphans: list[uuid.UUID], *, report: SweepReport) -> dict[uuid.UUID, str]:
    """Folders without a session row: looked at one by one, adopted as a batch (``adoption.sweep_batch``).
    Answers the ledger state of each folder dealt with."""
    if not orphans:
        return {}
    found: dict[uuid.UUID, str] = {}
    nothing: list[uuid.UUID] = []
    with sweep_batch() as batch:
        for session_id in orphans:
            if orphan_adopt(session_id=session_id, requester=None) is None:
                nothing.append(session_id)
        written = batch.write()
    if nothing:
        # Adopted meanwhile by someone's page view: theirs is the row.
        appeared = set(CallSession.objects.filter(pk__in=nothing).order_by().values_list("pk", flat=True))
        found.update(dict.fromkeys(appeared, StorageFolder.State.HAS_SESSION))
        report.without_audio += len(nothing) - len(appeared)
    report.adopted.extend(written.adopted)
    found.update(dict.fromkeys(written.adopted, StorageFolder.State.ADOPTED))
    found.update(dict.fromkeys(written.taken, StorageFolder.State.HAS_SESSION))
    for session_id in written.left:  # what the bulk insert could not write: one by one, as it always was
        state = _sweep_one(session_id=session_id, has_row=False, dry_run=False, report=report)
        if state is not None:
            found[session_id] = state
    return found


@dataclass(frozen=True)
class _Column:
    field: Field[Any, Any]
    column: str

    def get_db_prep_save(self, value: Any, connection: BaseDatabaseWrapper) -> Any:
        return self.field.get_db_prep_save(value, connection)


def _column(model: type[Model], name: str) -> _Column:
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or not field.column:
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return _Column(field=field, column=field.column)


def _ledger_write(rows: dict[str, tuple[str, str]]) -> None:
    """Record each folder's state and signature, inserting or updating, for the whole batch in one transaction.
    What ``bulk_create(update_conflicts=True)`` writes, without the ORM building each value of each row (that took
    most of a first sweep's time: ~0.1 ms a folder): on PostgreSQL one upsert of the rows as arrays (UNNEST, as
    Django's own bulk insert does there: one statement to plan), elsewhere one upsert executed per row."""
    if not rows:
        return
    connection = connections[StorageFolder.objects.db]
    quote = connection.ops.quote_name
    columns = key, state, signature, checked_at = tuple(
        _column(StorageFolder, name) for name in ("session_id", "state", "checked_signature", "checked_at")
    )
    names = ", ".join(quote(f.column) for f in columns)
    updated = ", ".join(f"{quote(f.column)} = EXCLUDED.{quote(f.column)}" for f in (state, signature, checked_at))
    upsert = f"ON CONFLICT ({quote(key.column)}) DO UPDATE SET {updated}"
    table = quote(StorageFolder._meta.db_table)
    now = checked_at.get_db_prep_save(timezone.now(), connection)
    keys = _id_values(list(rows), connection)
    # Names and types from the model's own metadata, quoted; every value is a parameter.
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{f.field.db_type(connection)}[]" for f in columns)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT * FROM UNNEST({arrays}) {upsert}",  # noqa: S608
                [keys, [st for st, _ in rows.values()], [sig for _, sig in rows.values()], [now] * len(keys)],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES (%s, %s, %s, %s) {upsert}",  # noqa: S608
                [(k, st, sig, now) for k, (st, sig) in zip(keys, rows.values(), strict=True)],
            )


def _sweep_one(*, session_id: uuid.UUID, has_row: bool, dry_run: bool, report: SweepReport) -> str | None:
    """Deal with one folder, one by one (the dry run's path); answers the ledger state, or None to look at it
    again next time."""
    if has_row:
        if Recording.objects.filter(session_id=session_id).exists():
            if not dry_run:
                # The folder changed (a transcript arrived, say): ingest is idempotent and picks up what is new.
                _queue(session_id)
            return StorageFolder.State.HAS_SESSION
        return _attach_late(session_id=session_id, dry_run=dry_run, report=report)
    if dry_run:
        folder = inspect_session_folder(session_id=session_id)
        if folder is not None and folder.audio is not None:
            report.adopted.append(session_id)
        else:
            report.without_audio += 1
        return None
    adopted = orphan_adopt(session_id=session_id, requester=None)
    if adopted is None:
        if CallSession.objects.filter(pk=session_id).exists():  # adopted meanwhile by someone's page view
            return StorageFolder.State.HAS_SESSION
        report.without_audio += 1
        return None
    report.adopted.append(session_id)
    return StorageFolder.State.ADOPTED


def _attach_late(*, session_id: uuid.UUID, dry_run: bool, report: SweepReport) -> str | None:
    """A session with a row and no recording: attach the folder's audio if it has arrived."""
    folder = inspect_session_folder(session_id=session_id)
    if folder is None or folder.audio is None:
        report.without_audio += 1
        return None
    report.attached.append(session_id)
    if not dry_run:
        recording_attach(session_id=session_id, key=folder.audio)
    return StorageFolder.State.HAS_SESSION


def recording_attach(*, session_id: uuid.UUID, key: str) -> Recording:
    recording, created = Recording.objects.get_or_create(
        session_id=session_id, defaults={"file": key, "status": Recording.Status.PENDING}
    )
    if created:
        CallSession.objects.filter(pk=session_id).update(
            recording_status=CallSession.RecordingStatus.PENDING, updated_at=timezone.now()
        )
        _queue(session_id)
    return recording


def _queue(session_id: uuid.UUID) -> None:
    from calls.tasks import ingest_enqueue  # noqa: PLC0415  # tasks import this module

    ingest_enqueue(session_id=session_id)


# --- Stale sessions ---------------------------------------------------------------------------------------


def sessions_expire_stale(*, older_than: timedelta | None = None, progress: Progress | None = None) -> int:
    """Sessions in a live status with no event for ``older_than`` become ``abandoned``, with an event saying
    why. Nothing is deleted. Answers how many were expired."""
    ttl = older_than or timedelta(minutes=settings.SESSION_STALE_AFTER_MINUTES)
    cutoff = timezone.now() - ttl
    quiet = Q(last_event_at__lt=cutoff) | Q(last_event_at__isnull=True, created_at__lt=cutoff)
    stale = CallSession.objects.filter(quiet, status__in=sorted(states.ACTIVE), archived_at__isnull=True)
    expired = 0
    minutes = int(ttl.total_seconds() // 60)
    for batch in _batches(stale.values_list("pk", flat=True).iterator()):
        for session_id in batch:
            expired += call_session_abandon_if_quiet(
                session_id=session_id, quiet_since=cutoff, reason=f"no event for {minutes} minutes"
            )
        if progress:
            progress(len(batch))
    if expired:
        logger.info("expired %d stale call sessions (no event for %s)", expired, ttl)
    return expired


# --- Ingest retries ---------------------------------------------------------------------------------------


def ingests_retry(*, progress: Progress | None = None) -> int:
    """Queue again what did not finish: pending recordings nobody picked up (the broker was down), claims of
    dead workers, and failures with attempts left (at most INGEST_MAX_ATTEMPTS in all)."""
    now = timezone.now()
    waiting = Q(
        status=Recording.Status.PENDING, updated_at__lt=now - timedelta(seconds=settings.INGEST_PENDING_GRACE_SECONDS)
    )
    abandoned_claims = Q(status=Recording.Status.PROCESSING, updated_at__lt=now - claim_lease())
    retryable = Q(status=Recording.Status.FAILED, attempts__lt=settings.INGEST_MAX_ATTEMPTS)
    candidates = list(Recording.objects.filter(waiting | abandoned_claims | retryable).values_list("pk", "session_id"))
    Recording.objects.filter(pk__in=[pk for pk, _ in candidates], status=Recording.Status.FAILED).update(
        status=Recording.Status.PENDING, updated_at=now
    )
    for _, session_id in candidates:
        _queue(session_id)
        if progress:
            progress(1)
    return len(candidates)


# --- Retention --------------------------------------------------------------------------------------------


def recordings_apply_retention(*, days: int | None = None) -> int:
    """Delete recording files older than the retention period, only when one is configured; every deletion is
    logged and written to its session's timeline. The rows and the recordings' facts are kept."""
    keep_days = settings.RECORDING_RETENTION_DAYS if days is None else days
    if keep_days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=keep_days)
    storage = recordings_storage()
    old = Recording.objects.filter(
        session__created_at__lt=cutoff, status__in=[Recording.Status.AVAILABLE, Recording.Status.FAILED]
    )
    deleted = 0
    for recording in old.iterator():
        storage.delete(recording.file)
        recording.status = Recording.Status.DELETED
        recording.save(update_fields=["status", "updated_at"])
        CallSession.objects.filter(pk=recording.session_id).update(
            recording_status=CallSession.RecordingStatus.ABSENT, updated_at=timezone.now()
        )
        CallEvent.objects.create(
            session_id=recording.session_id,
            type="recording_deleted",
            occurred_at=timezone.now(),
            data={"file": recording.file, "policy": f"retention of {keep_days} days"},
        )
        logger.info(
            "retention: deleted %s of session %s (older than %d days)", recording.file, recording.session_id, keep_days
        )
        metrics.RECORDINGS_DELETED.inc()
        deleted += 1
    return deleted
