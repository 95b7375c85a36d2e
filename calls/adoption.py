"""Adopting orphaned recordings: a folder ``sessions/<id>/`` with audio but no session row becomes a session.

This is what makes a call that was handled "directly" (its recording written to storage by a process that
never told Callbook) findable: the first authorised look at its id, or the periodic sweep, creates the row.
"""

from __future__ import annotations

import logging
import operator
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import DateTimeField, Field, ForeignKey, Model, UUIDField
from django.db.models.constants import OnConflict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from calls import states
from calls.models import CallEvent, CallSession, Recording
from calls.selectors import integration_of, visible_sessions
from calls.storage import SessionFolder, inspect_session_folder
from campaigns.models import Campaign
from crm import metrics
from crm.models import Team, User

logger = logging.getLogger(__name__)


@dataclass
class Ownership:
    owner: User | None
    team: Team | None
    campaign: Campaign | None
    fields: dict[str, Any]


def _text(meta: dict[str, Any], key: str, limit: int, problems: list[str]) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int) or len(str(value)) > limit:
        problems.append(f"meta.json: {key} must be a string of at most {limit} characters; ignored.")
        return ""
    return str(value)


def _time(meta: dict[str, Any], key: str, problems: list[str]) -> datetime | None:
    value = meta.get(key)
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed but impossible, e.g. February 30th
        parsed = None
    if parsed is None:
        problems.append(f"meta.json: {key} is not an ISO 8601 time; ignored.")
        return None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _campaign_pk(ref: Any) -> int | None:
    """A campaign named by its id (a number, or a string of digits) rather than by its name."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return int(ref)
    return None


class Directory:
    """Where read_ownership finds the users, teams and campaigns meta.json names: a query per name."""

    def user(self, username: str) -> User | None:
        return User.objects.filter(username=username, is_active=True).select_related("team").first()

    def team(self, name: str) -> Team | None:
        return Team.objects.filter(name=name).first()

    def campaign(self, team: Team, ref: Any) -> Campaign | None:
        lookup = Campaign.objects.filter(team=team)
        pk = _campaign_pk(ref)
        if pk is not None:
            return lookup.filter(pk=pk).first()
        if isinstance(ref, str):
            return lookup.filter(name=ref).first()
        return None


class CachedDirectory(Directory):
    """The same answers, each name looked up once (the sweep's batches: many folders name the same owner)."""

    def __init__(self) -> None:
        self.users: dict[str, User | None] = {}
        self.teams: dict[str, Team | None] = {}
        self.campaigns: dict[tuple[int, Any], Campaign | None] = {}

    def user(self, username: str) -> User | None:
        if username not in self.users:
            self.users[username] = super().user(username)
        return self.users[username]

    def team(self, name: str) -> Team | None:
        if name not in self.teams:
            self.teams[name] = super().team(name)
        return self.teams[name]

    def campaign(self, team: Team, ref: Any) -> Campaign | None:
        key = (team.pk, ref if isinstance(ref, str | int) else repr(ref))
        if key not in self.campaigns:
            self.campaigns[key] = super().campaign(team, ref)
        return self.campaigns[key]


def read_ownership(*, folder: SessionFolder, directory: Directory | None = None) -> Ownership:
    """Owner, team, campaign and session fields from meta.json; each invalid field is reported and ignored.
    ``directory`` answers the lookups (by default a query each; the sweep preloads a batch's)."""
    directory = directory or Directory()
    meta = folder.meta or {}
    problems = folder.problems
    owner = team = None
    campaign = None
    username = _text(meta, "owner", 150, problems)
    if username:
        owner = directory.user(username)
        if owner is None or owner.is_integration:
            problems.append(f"meta.json: owner {username!r} is not an active user; ignored.")
            owner = None
    team_name = _text(meta, "team", 120, problems)
    if team_name:
        team = directory.team(team_name)
        if team is None:
            problems.append(f"meta.json: team {team_name!r} does not exist; ignored.")
    if team is None and owner is not None:
        team = owner.team
    campaign_ref = meta.get("campaign")
    if campaign_ref is not None:
        campaign = directory.campaign(team, campaign_ref) if team else None
        if campaign is None:
            problems.append(f"meta.json: campaign {campaign_ref!r} is not a campaign of the session's team; ignored.")
    direction = _text(meta, "direction", 8, problems)
    if direction and direction not in CallSession.Direction.values:
        problems.append(f"meta.json: direction {direction!r} is not inbound or outbound; ignored.")
        direction = ""
    fields: dict[str, Any] = {
        "source": _text(meta, "source", 64, problems) or "storage",
        "external_id": _text(meta, "external_id", 255, problems),
        "from_number": _text(meta, "from_number", 64, problems) or _text(meta, "from", 64, problems),
        "to_number": _text(meta, "to_number", 64, problems) or _text(meta, "to", 64, problems),
        "direction": direction or CallSession.Direction.INBOUND,
        "started_at": _time(meta, "started_at", problems),
        "ended_at": _time(meta, "ended_at", problems),
    }
    if fields["started_at"] and fields["ended_at"] and fields["ended_at"] < fields["started_at"]:
        problems.append("meta.json: ended_at is before started_at; ended_at ignored.")
        fields["ended_at"] = None
    return Ownership(owner=owner, team=team, campaign=campaign, fields=fields)


def orphan_adopt(*, session_id: uuid.UUID, requester: User | None) -> CallSession | None:
    """Adopt ``sessions/<session_id>/`` if it holds audio and has no row; None when there is nothing to adopt
    or ``requester`` may not see the result (then nothing is written).

    ``requester=None`` is the periodic sweep: meta.json's owner, else unassigned for managers to triage.
    Concurrent calls for one id create one row (the primary key decides); the others read it.

    Inside ``sweep_batch()`` the sweep's adoptions are collected instead: the answer is the row to be written,
    unsaved, and ``AdoptionBatch.write`` writes them all at once.
    """
    folder = inspect_session_folder(session_id=session_id)
    if folder is None or folder.audio is None:
        return None
    batch = _batch.get() if requester is None else None
    if batch is not None:
        return batch.add(folder)
    ownership = read_ownership(folder=folder)
    owner, team = ownership.owner, ownership.team
    integration = integration_of(requester) if requester is not None else None
    if integration is not None and not (folder.meta or {}).get("source"):
        # An integration asking for a folder adopts it as its own call unless meta.json names another source.
        ownership.fields["source"] = integration.name
    if owner is None and requester is not None:
        if integration is not None:
            owner = integration.default_owner
            team = team or integration.default_team
        elif requester.is_manager or requester.is_admin:
            owner, team = requester, team or requester.team
        else:
            # An agent may adopt only what meta.json assigns to them.
            return None
    return _create_adopted(folder=folder, ownership=ownership, owner=owner, team=team, requester=requester)


def _external_id_taken(*, source: str, external_id: str) -> bool:
    # The condition of the partial unique index session_unique_external_id, so that SQLite's planner may use it.
    return CallSession.objects.filter(source=source, external_id=external_id).exclude(external_id="").exists()


def _drop_taken_external_id(*, folder: SessionFolder, fields: dict[str, Any]) -> None:
    folder.problems.append(
        f"meta.json: external_id {fields['external_id']!r} is already used by another session of "
        f"{fields['source']!r}; not copied."
    )
    fields["external_id"] = ""


def _adopted_session(
    *, folder: SessionFolder, ownership: Ownership, owner: User | None, team: Team | None, fields: dict[str, Any]
) -> CallSession:
    """The row of an adopted folder (not saved); ``fields`` are the ownership's, external_id already checked."""
    fields = dict(fields)
    ended_at = fields.pop("ended_at")
    started_at = fields["started_at"]
    return CallSession(
        id=folder.session_id,
        owner=owner,
        team=team,
        campaign=ownership.campaign,
        status=states.Status.COMPLETED,
        origin=CallSession.Origin.ADOPTED,
        auto_created=True,
        ended_at=ended_at,
        duration_ms=int((ended_at - started_at).total_seconds() * 1000) if ended_at and started_at else None,
        end_reason="adopted from storage",
        recording_status=CallSession.RecordingStatus.PENDING,
        metadata={"adoption": {"files": folder.files, "problems": folder.problems}} if folder.problems else {},
        last_event_at=timezone.now(),
        **fields,
    )


def _adopted_rows(*, session: CallSession, folder: SessionFolder, by: str) -> tuple[Recording, CallEvent]:
    """The recording and the ``adopted`` event that go with an adopted session's row (not saved)."""
    recording = Recording(session=session, file=folder.audio or "", status=Recording.Status.PENDING)
    event = CallEvent(
        session=session,
        type="adopted",
        occurred_at=session.last_event_at or timezone.now(),
        data={"by": by, "files": folder.files, "problems": folder.problems},
    )
    return recording, event


def _log_adopted(*, session: CallSession, folder: SessionFolder, by: str) -> None:
    logger.info(
        "adopted orphaned recording %s (owner %s, by %s)%s",
        session.pk,
        session.owner.username if session.owner else "unassigned",
        by,
        f"; problems: {'; '.join(folder.problems)}" if folder.problems else "",
    )


def _create_adopted(
    *, folder: SessionFolder, ownership: Ownership, owner: User | None, team: Team | None, requester: User | None
) -> CallSession | None:
    fields = dict(ownership.fields)
    if fields["external_id"] and _external_id_taken(source=fields["source"], external_id=fields["external_id"]):
        _drop_taken_external_id(folder=folder, fields=fields)
    session = _adopted_session(folder=folder, ownership=ownership, owner=owner, team=team, fields=fields)
    by = requester.username if requester else "sweep"
    try:
        with transaction.atomic():
            session.save(force_insert=True)
            if requester is not None and not visible_sessions(user=requester).filter(pk=session.pk).exists():
                # Never let someone create a row they could not see: it would hint the id exists.
                transaction.set_rollback(True)
                return None
            recording, event = _adopted_rows(session=session, folder=folder, by=by)
            recording.save(force_insert=True)
            event.save(force_insert=True)
            transaction.on_commit(partial(_adopted_committed, session.pk, via="sweep" if requester is None else "view"))
    except IntegrityError:
        # Someone else adopted it first (or the id was taken meanwhile): theirs is the row.
        return None
    _log_adopted(session=session, folder=folder, by=by)
    return session


# --- The sweep's batch path -------------------------------------------------------------------------------


@dataclass
class BatchAdoption:
    """What ``AdoptionBatch.write`` did with each folder collected (each id is in exactly one list)."""

    adopted: list[uuid.UUID] = field(default_factory=list)
    # A row with that id exists now, made by someone else (a user's first look adopted it meanwhile, say).
    taken: list[uuid.UUID] = field(default_factory=list)
    # Not written by the bulk insert and without a row (its external id was taken meanwhile, say): for the
    # caller to adopt alone, with ``orphan_adopt`` outside the batch.
    left: list[uuid.UUID] = field(default_factory=list)


@dataclass
class AdoptionBatch:
    """The sweep's adoptions, collected by ``orphan_adopt(requester=None)`` inside ``sweep_batch()`` and
    written by ``write``: the same rows, fields and problems as one by one, with the owner, team and campaign
    lookups made once per name, the external ids checked in one query, and the inserts made in bulk."""

    directory: CachedDirectory = field(default_factory=CachedDirectory)
    folders: list[tuple[SessionFolder, Ownership, CallSession]] = field(default_factory=list)

    def add(self, folder: SessionFolder) -> CallSession:
        ownership = read_ownership(folder=folder, directory=self.directory)
        session = _adopted_session(
            folder=folder, ownership=ownership, owner=ownership.owner, team=ownership.team, fields=ownership.fields
        )
        self.folders.append((folder, ownership, session))
        return session

    def write(self) -> BatchAdoption:
        result = BatchAdoption()
        if not self.folders:
            return result
        sessions = self._sessions()
        by_id = {folder.session_id: folder for folder, _, _ in self.folders}
        try:
            created, present = _batch_insert(sessions, by_id)
        except IntegrityError:
            # A row the bulk insert could not ignore (a CHECK, say): none of the batch is written.
            logger.warning("orphan sweep: batch adoption failed, %d folders left to adopt one by one", len(sessions))
            created, present = [], set()
        for session in created:
            result.adopted.append(session.pk)
            _log_adopted(session=session, folder=by_id[session.pk], by="sweep")
        done = {s.pk for s in created}
        for session in sessions:
            if session.pk not in done:
                (result.taken if session.pk in present else result.left).append(session.pk)
        self.folders = []
        return result

    def _sessions(self) -> list[CallSession]:
        """The rows to insert: as built by ``add``, but for an external id used meanwhile or twice in the batch."""
        wanted = {(o.fields["source"], o.fields["external_id"]) for _, o, _ in self.folders if o.fields["external_id"]}
        used: set[tuple[str, str]] = set()
        if wanted:
            found = CallSession.objects.filter(
                source__in={s for s, _ in wanted}, external_id__in={e for _, e in wanted}
            ).order_by()
            # Unordered, and with the condition of the partial unique index session_unique_external_id: SQLite
            # then looks the pairs up in that index instead of walking every session of the source by date.
            used = {p for p in found.exclude(external_id="").values_list("source", "external_id") if p in wanted}
        sessions: list[CallSession] = []
        for folder, ownership, built in self.folders:
            session, fields = built, ownership.fields
            if fields["external_id"]:
                pair = (fields["source"], fields["external_id"])
                if pair in used:
                    fields = dict(fields)
                    _drop_taken_external_id(folder=folder, fields=fields)
                    session = _adopted_session(
                        folder=folder, ownership=ownership, owner=ownership.owner, team=ownership.team, fields=fields
                    )
                else:
                    used.add(pair)  # the first folder of the batch to name it gets it, as one by one
            sessions.append(session)
        return sessions


_batch: ContextVar[AdoptionBatch | None] = ContextVar("adoption_batch", default=None)


@contextmanager
def sweep_batch() -> Iterator[AdoptionBatch]:
    """Collect the sweep's adoptions (``orphan_adopt(requester=None)``) for ``AdoptionBatch.write``."""
    batch = AdoptionBatch()
    token = _batch.set(batch)
    try:
        yield batch
    finally:
        _batch.reset(token)


def _batch_insert(
    sessions: list[CallSession], folders: dict[uuid.UUID, SessionFolder]
) -> tuple[list[CallSession], set[uuid.UUID]]:
    """Insert the rows that nobody inserted meanwhile, with their recordings and events, in one transaction;
    answers the sessions created and the ids that have a row now (created or not)."""
    with transaction.atomic():
        _insert_rows(CallSession, sessions, ignore_conflicts=True)
        # Which rows are ours: a row that was there before, or was made meanwhile by an adoption, already has its
        # recording (an adoption writes both in one transaction); ours have none yet.
        ids = [s.pk for s in sessions]
        present = set(CallSession.objects.filter(pk__in=ids).order_by().values_list("pk", flat=True))
        with_recording = set(Recording.objects.filter(session_id__in=ids).values_list("session_id", flat=True))
        created = [s for s in sessions if s.pk in present and s.pk not in with_recording]
        pairs = [_adopted_rows(session=s, folder=folders[s.pk], by="sweep") for s in created]
        _insert_rows(Recording, [recording for recording, _ in pairs])
        _insert_rows(CallEvent, [event for _, event in pairs])
        for session in created:
            transaction.on_commit(partial(_queue_ingest_later, session.pk))
        transaction.on_commit(partial(_count_adopted, via="sweep", n=len(created)))
    return created, present


# Values whose preparation depends on the value alone and that repeat down a batch's column (defaults, the status,
# the owner, the batch's timestamp): each field prepares each of them once.
_MEMOISED = frozenset({str, int, bool, type(None), datetime})


def _preparer(field: Field[Any, Any], connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """``field.get_db_prep_save`` for one column of a batch, remembering what it prepared for repeated values."""
    target = field.target_field if isinstance(field, ForeignKey) else field
    if isinstance(target, UUIDField) and not connection.features.has_native_uuid_field:
        # Ids are unique down the column, nothing to remember; UUIDField stores 32 hex digits there.
        return lambda value: value.hex if type(value) is uuid.UUID else field.get_db_prep_save(value, connection)
    memo: dict[tuple[type, Any], Any] = {}

    def prepare(value: Any) -> Any:
        kind = type(value)
        if kind in _MEMOISED:
            key: tuple[type, Any] = (kind, value)
        elif (kind is dict or kind is list) and not value:  # an empty JSON default: metadata, a waveform
            key = (kind, ())
        else:
            return field.get_db_prep_save(value, connection)
        if key not in memo:
            memo[key] = field.get_db_prep_save(value, connection)
        return memo[key]

    return prepare


def _reader(field: Field[Any, Any], stamped: list[str]) -> Callable[[Model], Any]:
    """What ``field.pre_save(row, add=True)`` answers: the attribute itself unless the field's class says more."""
    if field.attname in stamped or type(field).pre_save is Field.pre_save:
        return operator.attrgetter(field.attname)
    return lambda row: field.pre_save(row, True)


def _insert_rows(model: type[Model], rows: list[Any], *, ignore_conflicts: bool = False) -> None:
    """``model.objects.bulk_create(rows, ignore_conflicts=...)``. Elsewhere than on PostgreSQL, without the ORM
    writing SQL for every value of every row, which was most of the sweep's time per adopted folder: the same
    columns and values (each field's ``pre_save`` and ``get_db_prep_save``, so JSON is as the ORM writes it), the
    backend's own conflict clause and batch size, in multi-row INSERTs. The auto_now and auto_now_add timestamps
    are the insert's one time, set on each row as ``pre_save`` would, rather than a clock reading per row. Ids the
    database assigns (events, recordings) are not read back: nothing here uses them."""
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    if connection.vendor == "postgresql":
        # There Django inserts a batch as one UNNEST of an array per column: cheap to build, parse and plan. Rows
        # of placeholders were slower (psycopg splits such a statement in Python each time; one statement per row
        # is planned per row).
        model._default_manager.bulk_create(rows, ignore_conflicts=ignore_conflicts)
        return
    ops, quote = connection.ops, connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    head = (
        f"{ops.insert_statement(on_conflict=on_conflict)} {quote(model._meta.db_table)} "
        f"({', '.join(quote(str(f.column)) for f in fields)}) VALUES "
    )
    suffix = ops.on_conflict_suffix_sql(fields, on_conflict, None, None) if on_conflict else ""
    row_sql = f"({', '.join(['%s'] * len(fields))})"
    size = max(ops.bulk_batch_size(fields, rows), 1)
    now = timezone.now()
    stamped = [f.attname for f in fields if isinstance(f, DateTimeField) and (f.auto_now or f.auto_now_add)]
    for row in rows:
        for attname in stamped:
            setattr(row, attname, now)
    columns = [(_reader(f, stamped), _preparer(f, connection)) for f in fields]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            params = [prepare(read(row)) for row in chunk for read, prepare in columns]
            # Names from the model's own metadata, quoted; every value is a parameter.
            cursor.execute(f"{head}{', '.join([row_sql] * len(chunk))} {suffix}".rstrip(), params)


def _adopted_committed(session_id: uuid.UUID, *, via: str) -> None:
    _count_adopted(via=via, n=1)
    _queue_ingest(session_id)


def _count_adopted(*, via: str, n: int) -> None:
    if n:
        metrics.SESSIONS_ADOPTED.labels(via).inc(n)
        metrics.SESSIONS_CREATED.labels(CallSession.Origin.ADOPTED).inc(n)


def _queue_ingest_later(session_id: uuid.UUID) -> None:
    _queue_ingest(session_id)  # looked up when it runs, as the single adoption's lambda does


def _queue_ingest(session_id: uuid.UUID) -> None:
    from calls.tasks import ingest_enqueue  # noqa: PLC0415  # tasks import this module

    ingest_enqueue(session_id=session_id)
