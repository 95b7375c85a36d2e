"""Reads of call sessions. Every page and endpoint reaches a session through ``get_call_session_for_user``
(or its row-returning twins ``call_session_detail_for_user`` / ``call_session_detail_by_external_id``) or lists
through ``call_session_list`` (or ``call_session_rows``), all built on ``visible_sessions``, so one rule decides
who sees what:

- admins see every session;
- managers see the sessions of the teams they manage, their own, and unassigned ones (no owner, no team:
  adopted recordings waiting for someone to triage them);
- agents see their own sessions;
- integrations see the sessions whose ``source`` is their name;
- archived sessions are visible to nobody through the app (admins still find them in Django admin).
"""

from __future__ import annotations

import re
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, Prefetch, Q, QuerySet

from calls.models import CallEvent, CallSession, Note, Source, TranscriptSegment
from crm.models import Team, User

_SESSION_ID_RE = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


class SessionNotFound(Exception):
    """The session does not exist, is archived, or is not the user's to see: callers answer 404 alike."""

    def __init__(self, session_id: str = "") -> None:
        super().__init__(f"Call session not found: {session_id[:100]!r}")
        self.session_id = session_id


def parse_session_id(raw: str) -> uuid.UUID | None:
    """The canonical 8-4-4-4-12 form only: nothing else from a URL ever reaches a storage key."""
    if len(raw) != 36 or not _SESSION_ID_RE.match(raw):
        return None
    return uuid.UUID(raw)


def integration_of(user: User) -> Source | None:
    if not user.is_integration:
        return None
    try:
        source = user.integration
    except Source.DoesNotExist:
        return None
    return source if source.is_active else None


def visible_sessions_q(*, user: User) -> Q | None:
    """The filter of sessions ``user`` may see; ``None`` means all of them."""
    if user.is_admin:
        return None
    if user.is_integration:
        source = integration_of(user)
        return Q(source=source.name) if source is not None else Q(pk__in=[])
    if user.is_manager:
        managed = Team.objects.filter(manager=user).values("id")
        return Q(team_id__in=managed) | Q(owner=user) | Q(owner__isnull=True, team__isnull=True)
    return Q(owner=user)


# Any queryset of sessions: of instances, or of rows (``.values()``).
_Sessions = TypeVar("_Sessions", bound="QuerySet[CallSession, Any]")


def _visible(queryset: _Sessions, *, user: User) -> _Sessions:
    """The access rule applied to ``queryset``: the one place that says which sessions ``user`` sees."""
    queryset = queryset.filter(archived_at__isnull=True)
    condition = visible_sessions_q(user=user)
    return queryset if condition is None else queryset.filter(condition)


def visible_sessions(*, user: User) -> QuerySet[CallSession]:
    return _visible(CallSession.objects.all(), user=user)


def _with_details(queryset: QuerySet[CallSession]) -> QuerySet[CallSession]:
    # No campaign or contact join: the output shows their ids only, which are columns of the session row.
    return queryset.select_related("owner", "team", "recording", "transcript").prefetch_related(
        Prefetch("events", queryset=CallEvent.objects.order_by("occurred_at", "id")),
        Prefetch("notes", queryset=Note.objects.select_related("author").order_by("created_at", "id")),
        Prefetch("transcript__segments", queryset=TranscriptSegment.objects.order_by("position")),
    )


def get_call_session_for_user(*, user: User, session_id: str, details: bool = False) -> CallSession:
    """The one access helper for a session: raises SessionNotFound for missing and for not-yours alike."""
    parsed = parse_session_id(session_id)
    if parsed is None:
        raise SessionNotFound(session_id)
    queryset = visible_sessions(user=user)
    if details:
        queryset = _with_details(queryset)
    try:
        return queryset.get(pk=parsed)
    except CallSession.DoesNotExist:
        raise SessionNotFound(session_id) from None


def get_call_session_by_external_id(*, user: User, source: str, external_id: str) -> CallSession:
    if not source or not external_id:
        raise SessionNotFound(f"{source}/{external_id}")
    try:
        return _with_details(visible_sessions(user=user)).get(source=source, external_id=external_id)
    except CallSession.DoesNotExist:
        raise SessionNotFound(f"{source}/{external_id}") from None


@dataclass(frozen=True)
class SessionFilters:
    status: list[str] | None = None
    direction: str | None = None
    owner: str | None = None
    team: str | None = None
    campaign: int | None = None
    source: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    has_recording: bool | None = None
    q: str | None = None


def call_session_list(*, user: User, filters: SessionFilters) -> QuerySet[CallSession]:
    """Visible sessions matching ``filters``; joins only what a list row shows, so the query count is fixed."""
    # A list row shows no recording: joining it would only fetch columns nobody reads.
    return _filtered(visible_sessions(user=user).select_related("owner", "team"), filters)


def _filtered(queryset: _Sessions, filters: SessionFilters) -> _Sessions:
    if filters.status:
        queryset = queryset.filter(status__in=filters.status)
    if filters.direction:
        queryset = queryset.filter(direction=filters.direction)
    if filters.owner:
        queryset = queryset.filter(owner__username=filters.owner)
    if filters.team:
        queryset = queryset.filter(team__name=filters.team)
    if filters.campaign is not None:
        queryset = queryset.filter(campaign_id=filters.campaign)
    if filters.source:
        queryset = queryset.filter(source=filters.source)
    if filters.started_after:
        queryset = queryset.filter(started_at__gte=filters.started_after)
    if filters.started_before:
        queryset = queryset.filter(started_at__lt=filters.started_before)
    if filters.has_recording is not None:
        available = Q(recording_status=CallSession.RecordingStatus.AVAILABLE)
        queryset = queryset.filter(available if filters.has_recording else ~available)
    if filters.q:
        queryset = queryset.filter(call_session_search_q(filters.q))
    return queryset


def call_session_search_q(text: str) -> Q:
    """Text search in transcripts and phone numbers.

    On PostgreSQL transcripts are searched in full text (websearch syntax: words, "phrases", -exclusions) over the
    GIN-indexed search vector; on SQLite, the embedded mode, a case-insensitive substring match stands in.
    """
    term = text.strip()
    digits = re.sub(r"\D", "", term)
    if connection.vendor == "postgresql":
        query = SearchQuery(term, config=settings.SEARCH_CONFIG, search_type="websearch")
        condition = Q(transcript__search_vector=query) | Q(external_id=term)
    else:
        condition = Q(transcript__text__icontains=term) | Q(external_id=term)
    if len(digits) >= 3:
        condition |= Q(from_number__contains=digits) | Q(to_number__contains=digits)
    return condition


# --- Rows for the API's read path ----------------------------------------------------------------------------
#
# The session endpoints answer GETs from plain rows rather than model instances. ``.values()`` fetches just the
# columns the response shows, follows the owner/team/recording/transcript joins in SQL (a username rather than a
# whole user row with its password hash) and skips model instantiation, select_related's row splitting and the
# prefetch machinery, which cost more than the SQL itself. ``calls.presenters`` turns the rows into the JSON the
# DRF output serializers describe; tests/calls/test_presenters.py holds the two to the same output.

# One list row: every column CallSessionOutputSerializer shows. Campaign and contact are shown as ids, so their
# ``_id`` columns are read without a join.
SESSION_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "external_id",
    "owner__username",
    "team__name",
    "campaign_id",
    "contact_id",
    "direction",
    "status",
    "origin",
    "auto_created",
    "from_number",
    "to_number",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_ms",
    "end_reason",
    "recording_status",
    "metadata",
    "last_event_at",
    "created_at",
    "updated_at",
)
# The detail's one-to-one parts come in the session's own query (LEFT JOINs); a NULL id means there is none.
RECORDING_COLUMNS: tuple[str, ...] = (
    "recording__id",
    "recording__status",
    "recording__format",
    "recording__codec",
    "recording__content_type",
    "recording__duration_ms",
    "recording__size_bytes",
    "recording__sha256",
    "recording__channels",
    "recording__sample_rate",
    "recording__failure_reason",
    "recording__ingested_at",
)
TRANSCRIPT_COLUMNS: tuple[str, ...] = (
    "transcript__id",
    "transcript__text",
    "transcript__language",
    "transcript__source",
    "transcript__encoding",
    "transcript__had_replacements",
    "transcript__updated_at",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "id",
    "type",
    "event_id",
    "occurred_at",
    "received_at",
    "data",
    "status_before",
    "status_after",
)
NOTE_COLUMNS: tuple[str, ...] = ("id", "author__username", "body", "created_at", "updated_at")
SEGMENT_COLUMNS: tuple[str, ...] = ("position", "speaker", "start_ms", "end_ms", "text")

Row = dict[str, Any]


# The row querysets below are built once per process and only filtered per request. Turning some forty column
# names into joins and a SELECT list costs more than running the query (~0.3 ms for the detail's session row
# alone); ``.filter()`` on a built queryset clones it and adds the WHERE, and the template itself is never
# evaluated, so sharing it between requests and threads is safe.


@cache
def _session_detail_values() -> QuerySet[CallSession, Row]:
    rows: QuerySet[CallSession, Row] = CallSession.objects.values(
        *SESSION_COLUMNS, *RECORDING_COLUMNS, *TRANSCRIPT_COLUMNS
    )
    return rows


@cache
def _session_list_values() -> QuerySet[CallSession, Row]:
    rows: QuerySet[CallSession, Row] = CallSession.objects.values(*SESSION_COLUMNS)
    return rows


@cache
def _event_values() -> QuerySet[CallEvent, Row]:
    rows: QuerySet[CallEvent, Row] = CallEvent.objects.order_by("occurred_at", "id").values(*EVENT_COLUMNS)
    return rows


@cache
def _note_values() -> QuerySet[Note, Row]:
    rows: QuerySet[Note, Row] = Note.objects.order_by("created_at", "id").values(*NOTE_COLUMNS)
    return rows


@cache
def _segment_values() -> QuerySet[TranscriptSegment, Row]:
    rows: QuerySet[TranscriptSegment, Row] = TranscriptSegment.objects.order_by("position").values(*SEGMENT_COLUMNS)
    return rows


_M = TypeVar("_M", bound=Model)
# A column's converters as Django's compiler lists them: (position, converter functions, the column expression).
_Converters = list[tuple[int, list[Callable[[Any, Any, BaseDatabaseWrapper], Any]], Any]]


@dataclass(frozen=True, slots=True)
class _CompiledRows:
    sql: str
    key_field: Field[Any, Any]  # prepares the one parameter
    names: list[str]
    converters: _Converters


class _RowsByKey(Generic[_M]):
    """``list(template().filter(<key>=value))``, with the SQL compiled once per database connection.

    For the detail's events, notes and segments: queries whose one parameter is the id of a session (or
    transcript) that has already passed the access rule. Building and compiling them through the ORM costs two to
    three times as much as running them (SQLite: ~250 µs against ~80 µs for the events), on every request, for
    the same SQL. So the ORM compiles the query once, with a placeholder key, and later calls run that SQL with
    the key converted as the ORM converts it, through the connection's own cursor (so assertNumQueries,
    CaptureQueriesContext and execute wrappers see it), and convert the columns with the converters the ORM's
    compiler chose. If the compiled query does not have exactly the placeholder as its one parameter, it is not
    cached and every call goes through the ORM.
    """

    def __init__(self, template: Callable[[], QuerySet[_M, Row]], key: str, placeholder: object) -> None:
        self._template = template
        self._key = key
        self._placeholder = placeholder
        # Per connection object (one per thread and alias): converters belong to their connection's backend.
        self._compiled: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _CompiledRows | None] = (
            weakref.WeakKeyDictionary()
        )

    def _orm(self, value: object) -> list[Row]:
        return list(self._template().filter(**{self._key: value}))

    def _compile(self, conn: BaseDatabaseWrapper) -> _CompiledRows | None:
        queryset = self._template().filter(**{self._key: self._placeholder})
        query = queryset.query
        if query.extra_select or query.annotation_select:
            return None
        compiler = query.get_compiler(connection=conn)
        sql, params = compiler.as_sql()
        field = queryset.model._meta.get_field(self._key)
        if not isinstance(field, Field) or list(params) != [field.get_db_prep_value(self._placeholder, conn)]:
            return None
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        converters = [(pos, convs, expr) for pos, (convs, expr) in compiler.get_converters(columns).items()]
        return _CompiledRows(sql=sql, key_field=field, names=list(query.values_select), converters=converters)

    def __call__(self, value: object) -> list[Row]:
        conn = connections[self._template().db]
        try:
            compiled = self._compiled[conn]
        except KeyError:
            compiled = self._compiled[conn] = self._compile(conn)
        if compiled is None:
            return self._orm(value)
        with conn.cursor() as cursor:
            cursor.execute(compiled.sql, [compiled.key_field.get_db_prep_value(value, conn)])
            rows = cursor.fetchall()
        names = compiled.names
        result = []
        for raw in rows:
            row = list(raw)
            for pos, convs, expression in compiled.converters:
                converted = row[pos]
                for convert in convs:
                    converted = convert(converted, expression, conn)
                row[pos] = converted
            result.append(dict(zip(names, row, strict=True)))
        return result


_events_of_session = _RowsByKey(_event_values, "session_id", uuid.UUID(int=0))
_notes_of_session = _RowsByKey(_note_values, "session_id", uuid.UUID(int=0))
_segments_of_transcript = _RowsByKey(_segment_values, "transcript_id", 0)


@dataclass(frozen=True, slots=True)
class SessionDetailRows:
    """A session as the detail endpoint shows it, as rows: ``session`` holds SESSION_COLUMNS plus the
    ``recording__*`` and ``transcript__*`` columns; the lists are in the order the API shows them."""

    session: Row
    events: list[Row]
    notes: list[Row]
    segments: list[Row]


def _detail_rows(*, user: User, **lookup: Any) -> SessionDetailRows:
    """The one session ``user`` may see matching ``lookup``, with its events, notes and transcript segments.

    A fixed number of queries whatever the session holds: the session with its joins, events, notes, and the
    segments when there is a transcript. The three lists are read by session (or transcript) id only once the
    session query has passed the access rule. Raises CallSession.DoesNotExist.
    """
    session = _visible(_session_detail_values(), user=user).get(**lookup)
    session_id = session["id"]
    events = _events_of_session(session_id)
    notes = _notes_of_session(session_id)
    transcript_id = session["transcript__id"]
    segments = [] if transcript_id is None else _segments_of_transcript(transcript_id)
    return SessionDetailRows(session=session, events=events, notes=notes, segments=segments)


def call_session_detail_for_user(*, user: User, session_id: str) -> SessionDetailRows:
    """``get_call_session_for_user(details=True)`` as rows: same access rule, same SessionNotFound.

    No adoption here: a well-formed id with no row is the caller's to hand to ``call_session_get_or_adopt``.
    """
    parsed = parse_session_id(session_id)
    if parsed is None:
        raise SessionNotFound(session_id)
    try:
        return _detail_rows(user=user, pk=parsed)
    except CallSession.DoesNotExist:
        raise SessionNotFound(session_id) from None


def call_session_detail_by_external_id(*, user: User, source: str, external_id: str) -> SessionDetailRows:
    """``get_call_session_by_external_id`` as rows."""
    if not source or not external_id:
        raise SessionNotFound(f"{source}/{external_id}")
    try:
        return _detail_rows(user=user, source=source, external_id=external_id)
    except CallSession.DoesNotExist:
        raise SessionNotFound(f"{source}/{external_id}") from None


def call_session_rows(*, user: User, filters: SessionFilters) -> QuerySet[CallSession, Row]:
    """``call_session_list`` as rows of SESSION_COLUMNS (still lazy: the paginator orders and slices it)."""
    return _filtered(_visible(_session_list_values(), user=user), filters)
