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

import hashlib
import itertools
import re
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.search import SearchQuery
from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, Func, JSONField, Model, OuterRef, Prefetch, Q, QuerySet

from calls.models import CallEvent, CallSession, Note, Source, Transcript, TranscriptSegment
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


def _concrete(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is not a concrete field")
    return field


_SOURCE_FIELD = _concrete(CallSession, "source")
_USER_PK = _concrete(User, "id")
_SESSION_PK = _concrete(CallSession, "id")
_TRANSCRIPT_PK = _concrete(Transcript, "id")


# The access rule as a kind and the values it compares with. The row selectors below compile one query per kind
# and run it with each user's values; ``_rule_q`` is the one place that turns a rule into a filter.
_Rule = tuple[str, tuple[Any, ...]]


def _access_rule(*, user: User) -> _Rule:
    if user.is_admin:
        return "all", ()
    if user.is_integration:
        source = integration_of(user)
        return ("source", (source.name,)) if source is not None else ("nothing", ())
    if user.is_manager:
        # The id twice: once for the teams the user manages, once for the user's own sessions.
        return "manager", (user.pk, user.pk)
    return "owner", (user.pk,)


def _rule_q(kind: str, values: tuple[Any, ...]) -> Q | None:
    if kind == "all":
        return None
    if kind == "source":
        return Q(source=values[0])
    if kind == "manager":
        managed = Team.objects.filter(manager_id=values[0]).values("id")
        return Q(team_id__in=managed) | Q(owner_id=values[1]) | Q(owner__isnull=True, team__isnull=True)
    if kind == "owner":
        return Q(owner_id=values[0])
    return Q(pk__in=[])  # "nothing": an inactive integration, or one without its Source


def _rule_fields(kind: str) -> tuple[Field[Any, Any], ...]:
    """The fields that prepare a rule's values for the database, in the order of the values."""
    if kind == "source":
        return (_SOURCE_FIELD,)
    user_pk = _USER_PK
    return {"manager": (user_pk, user_pk), "owner": (user_pk,)}.get(kind, ())


def visible_sessions_q(*, user: User) -> Q | None:
    """The filter of sessions ``user`` may see; ``None`` means all of them."""
    return _rule_q(*_access_rule(user=user))


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


def _storable(*texts: str) -> bool:
    """No column holds an empty id or a NUL character, and PostgreSQL refuses a NUL even in a comparison (a 500)."""
    return all(text and "\x00" not in text for text in texts)


def get_call_session_by_external_id(*, user: User, source: str, external_id: str) -> CallSession:
    if not _storable(source, external_id):
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


@cache
def _session_list_values() -> QuerySet[CallSession, Row]:
    rows: QuerySet[CallSession, Row] = CallSession.objects.values(*SESSION_COLUMNS)
    return rows


# --- Compiled once, run many times ---------------------------------------------------------------------------
#
# Building a queryset and compiling it to SQL costs more than running it: ~0.3 ms for the detail's session row
# alone, on every request, for the same SQL with other values. ``_CompiledValues`` lets the ORM build and compile a
# ``.values()`` query once per database connection and *shape* (which lookup, which kind of access rule), with
# stand-in values, and afterwards runs that SQL with each request's values prepared by the same fields, through the
# connection's own cursor (so assertNumQueries, CaptureQueriesContext and execute wrappers see it), converting the
# columns with the converters the ORM's compiler chose.
#
# On PostgreSQL the statement is also prepared, once per database session, and then only EXECUTEd: planning the
# detail's query (five joined tables and three subqueries) costs about three times the CPU of running it. Django
# keeps psycopg's own prepared statements off (they need server-side binding and break transaction poolers), so
# this uses SQL's PREPARE/EXECUTE through the ordinary cursor, and not at all when the database is declared to sit
# behind a transaction pooler (``DISABLE_SERVER_SIDE_CURSORS``, which Django documents for PgBouncer), where a
# session's prepared statements would not follow the client.


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where a run-time value goes in a compiled query's parameters."""

    index: int


# A column's converters as Django's compiler lists them: (position, converter functions, the column expression).
_Converters = list[tuple[int, list[Callable[[Any, Any, BaseDatabaseWrapper], Any]], Any]]


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    params: tuple[Any, ...]  # the compiled parameters, with a _Slot for each run-time value
    fields: tuple[Field[Any, Any], ...]  # prepare the run-time values, by slot
    names: tuple[str, ...]
    converters: _Converters
    prepared: _Prepared | None  # PostgreSQL: the statement as PREPARE/EXECUTE


@dataclass(frozen=True, slots=True)
class _Prepared:
    name: str
    prepare: str  # PREPARE <name> AS <the query with $1, $2, ...>
    execute: str  # EXECUTE <name>(%s, %s, ...)


# Which statements each PostgreSQL session (psycopg connection) has prepared: a new connection starts empty.
_prepared_in: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_PLACEHOLDER_RE = re.compile(r"%([s%])")


def _as_prepared(conn: BaseDatabaseWrapper, sql: str, params: list[Any]) -> _Prepared | None:
    """PREPARE/EXECUTE for ``sql`` when every parameter is a run-time value, whose type PostgreSQL infers from the
    column it is compared with (a constant could be anywhere, e.g. a SELECT list, where it cannot)."""
    if conn.vendor != "postgresql" or conn.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        return None
    if not all(isinstance(param, _Slot) for param in params):
        return None
    numbers = itertools.count(1)
    # The cursor formats %s (and %%) only when given parameters; PREPARE goes without, so they are written out.
    numbered = _PLACEHOLDER_RE.sub(lambda m: f"${next(numbers)}" if m.group(1) == "s" else "%", sql)
    name = "callbook_" + hashlib.sha256(sql.encode()).hexdigest()[:24]
    arguments = f"({', '.join(['%s'] * len(params))})" if params else ""
    return _Prepared(name=name, prepare=f"PREPARE {name} AS {numbered}", execute=f"EXECUTE {name}{arguments}")


_Shape = tuple[str, ...]
_Build = Callable[[_Shape, tuple[Any, ...]], "QuerySet[Any, Row]"]


def _stand_in(field: Field[Any, Any], index: int) -> object | None:
    """A value no real query would hold, of the type ``field`` stores; None for a type this does not handle."""
    kind = field.get_internal_type()
    if kind == "UUIDField":
        return uuid.UUID(int=0xC0DE_0000_0000_0000_0000_0000_0000_0000 + index)
    if kind in {"AutoField", "BigAutoField", "IntegerField", "BigIntegerField", "PositiveIntegerField"}:
        return 2_000_000_000 + index  # in range for every integer column: out of range, a lookup matches nothing
    if kind in {"CharField", "TextField"}:
        return f"\x00stand-in-{index}\x00"
    return None


class _CompiledValues:
    """``list(build(shape, values))``, with the SQL compiled once per connection and shape.

    ``build`` must return the same query for the same shape whatever the values, and use each value only as a
    parameter compared with (or assigned to) the column of the field given for it. That is checked when the plan
    is made: each stand-in must come out of the compiler as a parameter, as the field prepares it; when one does
    not (or the query has a type of value this does not handle), that shape is never cached and goes through the
    ORM every time.
    """

    def __init__(self, build: _Build) -> None:
        self._build = build
        # Per connection object (one per thread and alias): SQL and converters belong to their connection's backend.
        self._plans: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[_Shape, _Plan | None]] = (
            weakref.WeakKeyDictionary()
        )

    def _plan(self, conn: BaseDatabaseWrapper, shape: _Shape, fields: tuple[Field[Any, Any], ...]) -> _Plan | None:
        stand_ins = tuple(_stand_in(field, i) for i, field in enumerate(fields))
        if any(value is None for value in stand_ins):
            return None
        query = self._build(shape, stand_ins).query
        compiler = query.get_compiler(connection=conn)
        try:
            sql, compiled = compiler.as_sql()
        except EmptyResultSet:  # matches nothing (``pk__in=[]``): the ORM answers that without a query
            return None
        prepared = [field.get_db_prep_value(value, conn) for field, value in zip(fields, stand_ins, strict=True)]
        params: list[Any] = []
        for param in compiled:
            slots = [i for i, value in enumerate(prepared) if type(value) is type(param) and value == param]
            params.append(_Slot(slots[0]) if len(slots) == 1 else param)
        if {p.index for p in params if isinstance(p, _Slot)} != set(range(len(fields))):
            return None
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        converters = [(pos, convs, expr) for pos, (convs, expr) in compiler.get_converters(columns).items()]
        names = (*query.values_select, *query.annotation_select)
        if len(names) != len(columns):
            return None
        return _Plan(
            sql=sql,
            params=tuple(params),
            fields=fields,
            names=names,
            converters=converters,
            prepared=_as_prepared(conn, sql, params),
        )

    def __call__(self, shape: _Shape, values: tuple[Any, ...], fields: tuple[Field[Any, Any], ...]) -> list[Row]:
        conn = connections[DEFAULT_DB_ALIAS]
        plans = self._plans.setdefault(conn, {})
        try:
            plan = plans[shape]
        except KeyError:
            plan = plans[shape] = self._plan(conn, shape, fields)
        if plan is None:
            return list(self._build(shape, values))
        prepared = [field.get_db_prep_value(value, conn) for field, value in zip(plan.fields, values, strict=True)]
        params = [prepared[p.index] if isinstance(p, _Slot) else p for p in plan.params]
        with conn.cursor() as cursor:  # connects (or reconnects, after a failed health check) first
            if plan.prepared is None:
                cursor.execute(plan.sql, params)
            else:
                done = _prepared_in.setdefault(conn.connection, set())
                if plan.prepared.name not in done:
                    # Not transactional: a rollback keeps it, and it lasts as long as the session.
                    cursor.execute(plan.prepared.prepare)
                    done.add(plan.prepared.name)
                cursor.execute(plan.prepared.execute, params)
            rows = cursor.fetchall()
        names = plan.names
        result = []
        for raw in rows:
            row = list(raw)
            for pos, convs, expression in plan.converters:
                converted = row[pos]
                for convert in convs:
                    converted = convert(converted, expression, conn)
                row[pos] = converted
            result.append(dict(zip(names, row, strict=True)))
        return result


# --- Detail rows -----------------------------------------------------------------------------------------------


def _json_rows(queryset: QuerySet[Any, Any], columns: tuple[str, ...]) -> Func:
    """PostgreSQL: ``queryset``'s rows as one JSON array of arrays (``columns``, in order), in its order.

    ``to_jsonb(ARRAY(SELECT json_build_array(...) ... ORDER BY ...))``: ARRAY keeps the subquery's order, and
    one jsonb value is one json.loads. Times come back as ISO 8601 text (see ``_from_json``).
    """
    row = Func(*(F(column) for column in columns), function="JSON_BUILD_ARRAY", output_field=JSONField())
    return Func(ArraySubquery(queryset.values(row=row)), function="TO_JSONB", output_field=JSONField())


def _session_detail_build(shape: _Shape, values: tuple[Any, ...]) -> QuerySet[CallSession, Row]:
    """The detail's session row for ``shape`` = (lookup, rule kind): the lookup's values, then the rule's.

    On PostgreSQL the events, notes and transcript segments come in the same row, as JSON: one round trip for the
    whole detail. Elsewhere (SQLite, in-process: a query costs no round trip) they are separate queries.
    """
    lookup, kind = shape
    names = ("pk",) if lookup == "pk" else ("source", "external_id")
    rows = CallSession.objects.filter(archived_at__isnull=True, **dict(zip(names, values[: len(names)], strict=True)))
    condition = _rule_q(kind, values[len(names) :])
    if condition is not None:
        rows = rows.filter(condition)
    if connections[rows.db].vendor == "postgresql":
        rows = rows.annotate(
            events_json=_json_rows(
                CallEvent.objects.filter(session_id=OuterRef("id")).order_by("occurred_at", "id"), EVENT_COLUMNS
            ),
            notes_json=_json_rows(
                Note.objects.filter(session_id=OuterRef("id")).order_by("created_at", "id"), NOTE_COLUMNS
            ),
            segments_json=_json_rows(
                # By the transcript the session row joins already: no join in the subquery.
                TranscriptSegment.objects.filter(transcript_id=OuterRef("transcript__id")).order_by("position"),
                SEGMENT_COLUMNS,
            ),
        )
        extra: tuple[str, ...] = ("events_json", "notes_json", "segments_json")
    else:
        extra = ()
    # Two rows at most: enough to tell "one" from "more than one", as get() does; and, as get() does, unordered.
    values_rows: QuerySet[CallSession, Row] = rows.order_by().values(
        *SESSION_COLUMNS, *RECORDING_COLUMNS, *TRANSCRIPT_COLUMNS, *extra
    )[:2]
    return values_rows


def _list_build(model: type[Model], key: str, order: tuple[str, ...], columns: tuple[str, ...]) -> _Build:
    def build(shape: _Shape, values: tuple[Any, ...]) -> QuerySet[Any, Row]:
        rows: QuerySet[Any, Row] = model._default_manager.filter(**{key: values[0]}).order_by(*order).values(*columns)
        return rows

    return build


_session_detail = _CompiledValues(_session_detail_build)
_events_of_session = _CompiledValues(_list_build(CallEvent, "session_id", ("occurred_at", "id"), EVENT_COLUMNS))
_notes_of_session = _CompiledValues(_list_build(Note, "session_id", ("created_at", "id"), NOTE_COLUMNS))
_segments_of_transcript = _CompiledValues(
    _list_build(TranscriptSegment, "transcript_id", ("position",), SEGMENT_COLUMNS)
)
_EXTERNAL_FIELDS = (_SOURCE_FIELD, _concrete(CallSession, "external_id"))
_EVENT_TIMES = ("occurred_at", "received_at")
_NOTE_TIMES = ("created_at", "updated_at")


def _from_json(rows: list[list[Any]], columns: tuple[str, ...], times: tuple[str, ...] = ()) -> list[Row]:
    """JSON arrays (``_json_rows``) as the rows ``.values(*columns)`` returns: times parsed back to datetimes."""
    result = [dict(zip(columns, row, strict=True)) for row in rows]
    for row in result:
        for name in times:
            if row[name] is not None:
                row[name] = datetime.fromisoformat(row[name])
    return result


@dataclass(frozen=True, slots=True)
class SessionDetailRows:
    """A session as the detail endpoint shows it, as rows: ``session`` holds SESSION_COLUMNS plus the
    ``recording__*`` and ``transcript__*`` columns; the lists are in the order the API shows them."""

    session: Row
    events: list[Row]
    notes: list[Row]
    segments: list[Row]


def _detail_rows(*, user: User, lookup: str, values: tuple[Any, ...]) -> SessionDetailRows:
    """The one session ``user`` may see matching ``lookup`` ("pk": its id; "external": source and external id),
    with its events, notes and transcript segments.

    A fixed number of queries whatever the session holds: one on PostgreSQL; elsewhere the session with its joins,
    events, notes, and the segments when there is a transcript, the three lists read by session (or transcript)
    id only once the session query has passed the access rule. Raises CallSession.DoesNotExist.
    """
    kind, rule_values = _access_rule(user=user)
    fields = ((_SESSION_PK,) if lookup == "pk" else _EXTERNAL_FIELDS) + _rule_fields(kind)
    found = _session_detail((lookup, kind), values + rule_values, fields)
    if not found:
        raise CallSession.DoesNotExist
    if len(found) > 1:  # source + external_id is unique when both are set, as they are here
        raise CallSession.MultipleObjectsReturned
    session = found[0]
    if "events_json" in session:
        return SessionDetailRows(
            session=session,
            events=_from_json(session.pop("events_json"), EVENT_COLUMNS, _EVENT_TIMES),
            notes=_from_json(session.pop("notes_json"), NOTE_COLUMNS, _NOTE_TIMES),
            segments=_from_json(session.pop("segments_json"), SEGMENT_COLUMNS),
        )
    session_id = session["id"]
    events = _events_of_session(("session",), (session_id,), (_SESSION_PK,))
    notes = _notes_of_session(("session",), (session_id,), (_SESSION_PK,))
    transcript_id = session["transcript__id"]
    segments = (
        [] if transcript_id is None else _segments_of_transcript(("transcript",), (transcript_id,), (_TRANSCRIPT_PK,))
    )
    return SessionDetailRows(session=session, events=events, notes=notes, segments=segments)


def call_session_detail_for_user(*, user: User, session_id: str) -> SessionDetailRows:
    """``get_call_session_for_user(details=True)`` as rows: same access rule, same SessionNotFound.

    No adoption here: a well-formed id with no row is the caller's to hand to ``call_session_get_or_adopt``.
    """
    parsed = parse_session_id(session_id)
    if parsed is None:
        raise SessionNotFound(session_id)
    try:
        return _detail_rows(user=user, lookup="pk", values=(parsed,))
    except CallSession.DoesNotExist:
        raise SessionNotFound(session_id) from None


def call_session_detail_by_external_id(*, user: User, source: str, external_id: str) -> SessionDetailRows:
    """``get_call_session_by_external_id`` as rows."""
    if not _storable(source, external_id):
        raise SessionNotFound(f"{source}/{external_id}")
    try:
        return _detail_rows(user=user, lookup="external", values=(source, external_id))
    except CallSession.DoesNotExist:
        raise SessionNotFound(f"{source}/{external_id}") from None


def call_session_rows(*, user: User, filters: SessionFilters) -> QuerySet[CallSession, Row]:
    """``call_session_list`` as rows of SESSION_COLUMNS (still lazy: the paginator orders and slices it)."""
    return _filtered(_visible(_session_list_values(), user=user), filters)
