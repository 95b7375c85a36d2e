"""Reads behind the pages people live in: the calls list (with its CSV export) and the dashboard.

Everything here starts from ``calls.selectors`` (``call_session_list`` / ``visible_sessions``), so the one access
rule decides what each page shows. Each function runs a fixed number of queries, whatever the page size or the
number of calls:

- ``call_list_page``: one query for the page's rows (search snippets are computed in that same query);
- ``call_export_rows``: one query, streamed with ``.iterator()``;
- ``dashboard_stats``: three grouped queries (per day, per status, per campaign), plus one ``exists()`` only
  when the period is empty (to tell "no calls yet" from "none in this period").

The list pages with a KEYSET (seek) cursor on ``(sort key, id)``: no OFFSET and no COUNT(*), so the 2,000th page
costs what the first does. The default order (newest first, ``-created_at, -id``) is what the indexes
``session_owner_recent_idx``, ``session_team_recent_idx`` and the ``created_at`` index serve.
"""

from __future__ import annotations

import base64
import binascii
import csv
import html
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchHeadline, SearchQuery
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.expressions import OrderBy
from django.db.models.functions import Coalesce, Greatest, Length, Lower, StrIndex, Substr, TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from calls.models import CallSession
from calls.selectors import SessionFilters, call_session_list, visible_sessions
from calls.states import Status
from campaigns.models import Campaign
from crm.models import Team, User
from crm.selectors import team_members

Row = dict[str, Any]

# --- Formatting ----------------------------------------------------------------------------------------------


def format_duration(ms: float | None) -> str:
    """``m:ss`` (minutes may pass 59: a 75-minute call is ``75:00``); empty when unknown."""
    if ms is None:
        return ""
    seconds = int(Decimal(ms) / 1000 + Decimal("0.5"))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _percent(part: int, whole: int) -> float:
    return round(part * 100 / whole, 1) if whole else 0.0


# --- Choices for the filter form -----------------------------------------------------------------------------


def _teams_seen(user: User) -> Q | None:
    """Teams whose campaigns and members ``user`` may pick in a filter; None means every team."""
    if user.is_admin:
        return None
    condition = Q(manager=user) if user.is_manager else Q(pk__in=[])
    if user.team_id is not None:
        condition |= Q(pk=user.team_id)
    return condition


def campaign_choices(*, user: User) -> list[tuple[int, str]]:
    """The campaigns of the teams ``user`` sees, as (id, name): one query."""
    teams = _teams_seen(user)
    campaigns = Campaign.objects.all()
    if teams is not None:
        campaigns = campaigns.filter(team__in=Team.objects.filter(teams))
    return [(pk, name) for pk, name in campaigns.order_by("name", "id").values_list("id", "name")]


def owner_choices(*, user: User) -> list[tuple[str, str]]:
    """For managers and admins: the people whose calls they may filter by, as (username, display name).

    A manager gets the members of the teams they manage, and themselves; an admin every active person. Agents get
    nothing: they see only their own calls. One query (none for agents).
    """
    if not (user.is_manager or user.is_admin):
        return []
    people = User.objects.filter(is_active=True).exclude(role=User.Role.INTEGRATION)
    if not user.is_admin:
        people = people.filter(Q(team__manager=user) | Q(pk=user.pk))
    rows = people.order_by("username").values_list("username", "first_name", "last_name")
    return [(username, _person(username, first, last)) for username, first, last in rows]


def _person(username: str, first_name: str, last_name: str) -> str:
    full = f"{first_name} {last_name}".strip()
    return f"{full} ({username})" if full else username


# --- Sorting and the keyset cursor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    field: str
    label: str
    # NULLs (a call not started yet, a duration not known yet) come after every value, in both directions.
    nullable: bool = False


SORT_KEYS: dict[str, SortKey] = {
    key.name: key
    for key in (
        SortKey("created", "created_at", "Logged"),
        SortKey("started", "started_at", "Started", nullable=True),
        SortKey("duration", "duration_ms", "Duration", nullable=True),
        SortKey("status", "status", "Status"),
    )
}
DEFAULT_SORT = "-created"
SORT_CHOICES: list[tuple[str, str]] = [
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("-started", "Started: latest first"),
    ("started", "Started: earliest first"),
    ("-duration", "Longest first"),
    ("duration", "Shortest first"),
    ("status", "Status: A to Z"),
    ("-status", "Status: Z to A"),
]
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50


class InvalidCursor(ValueError):
    """A cursor that was not made by ``Cursor.encode`` for this sort order."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page starts: just past the row ``(value, pk)`` in the order ``sort``, going back when
    ``backwards`` (towards the first page). Opaque to users: URL-safe base64 of JSON."""

    sort: str
    value: datetime | int | str | None
    pk: uuid.UUID
    backwards: bool = False

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        raw = json.dumps([self.sort, "p" if self.backwards else "n", value, self.pk.hex], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, *, sort: str) -> Cursor:
        """Raises InvalidCursor for anything ``encode`` did not make for ``sort``."""
        # Anything can arrive in a URL: every failure of any step is the same InvalidCursor.
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            sort_name, direction, value, pk = json.loads(raw)
            parsed_pk = uuid.UUID(hex=pk)
        except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCursor("malformed cursor") from exc
        if sort_name != sort or direction not in ("n", "p"):
            raise InvalidCursor("cursor of another sort order")
        key = SORT_KEYS[sort.lstrip("-")]
        return cls(sort=sort, value=_cursor_value(key, value), pk=parsed_pk, backwards=direction == "p")


def _cursor_value(key: SortKey, value: object) -> datetime | int | str | None:
    if value is None:
        if not key.nullable:
            raise InvalidCursor("missing value")
        return None
    if key.field.endswith("_at"):
        if not isinstance(value, str):
            raise InvalidCursor("not a time")
        try:
            moment = datetime.fromisoformat(value)
            if timezone.is_naive(moment):
                raise InvalidCursor("naive time")
            # In UTC, as the database compares it: an offset that leaves the calendar fails here, not there.
            return moment.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise InvalidCursor("not a time") from exc
    if key.field == "duration_ms":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise InvalidCursor("not a duration")
        return value
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidCursor("not a status")
    return value


def _ordering(key: SortKey, *, descending: bool, nulls_last: bool) -> list[OrderBy]:
    nulls = {"nulls_last": True} if nulls_last else {"nulls_first": True}
    column = (
        (F(key.field).desc(**nulls) if descending else F(key.field).asc(**nulls))
        if key.nullable
        else (F(key.field).desc() if descending else F(key.field).asc())
    )
    return [column, F("id").desc() if descending else F("id").asc()]


def _beyond(key: SortKey, *, descending: bool, nulls_last: bool, value: object, pk: uuid.UUID) -> Q:
    """The rows that come after ``(value, pk)`` in the order ``_ordering`` gives for the same arguments."""
    past = "lt" if descending else "gt"
    name = key.field
    same_value_later_id = Q(**{name: value, f"id__{past}": pk})
    if value is None:  # the cursor row is in the NULL block
        after_nulls = Q(**{f"{name}__isnull": True, f"id__{past}": pk})
        return after_nulls if nulls_last else after_nulls | Q(**{f"{name}__isnull": False})
    condition = Q(**{f"{name}__{past}": value}) | same_value_later_id
    if not key.nullable:
        # The redundant bound lets the database start an index range scan at the cursor (created_at <= v).
        return Q(**{f"{name}__{past}e": value}) & condition
    return (condition | Q(**{f"{name}__isnull": True})) if nulls_last else condition


# --- The list page -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallListQuery:
    filters: SessionFilters = field(default_factory=SessionFilters)
    sort: str = DEFAULT_SORT
    cursor: Cursor | None = None
    page_size: int = DEFAULT_PAGE_SIZE


@dataclass(frozen=True, slots=True)
class CallRow:
    id: uuid.UUID
    url: str  # the call's page
    when: datetime  # started_at, or created_at for a call that has not started
    started: bool
    status: str
    status_label: str
    direction: str
    direction_label: str
    from_number: str
    to_number: str
    owner: str  # "" when unassigned
    campaign: str
    duration: str  # m:ss, "" when not known yet
    recording_status: str
    recording_label: str
    snippet: SafeString | None  # the transcript around the match, with <mark>s, when searching


@dataclass(frozen=True, slots=True)
class SortColumn:
    """A sortable column header: the sort its link asks for and its aria-sort now."""

    key: str
    label: str
    next_sort: str
    aria_sort: str | None  # "ascending" | "descending" | None


@dataclass(frozen=True, slots=True)
class CallListPage:
    rows: list[CallRow]
    sort: str
    sort_label: str
    columns: dict[str, SortColumn]
    next_cursor: str | None
    prev_cursor: str | None
    searching: bool

    @property
    def prev_label(self) -> str:
        return _PAGER_LABELS.get(self.sort, ("Previous", "Next"))[0]

    @property
    def next_label(self) -> str:
        return _PAGER_LABELS.get(self.sort, ("Previous", "Next"))[1]


# Where the Newer/Older links lead, for the orders by time.
_PAGER_LABELS = {
    "-created": ("Newer", "Older"),
    "-started": ("Newer", "Older"),
    "created": ("Older", "Newer"),
    "started": ("Older", "Newer"),
}


LIST_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "started_at",
    "duration_ms",
    "status",
    "direction",
    "from_number",
    "to_number",
    "owner__username",
    "owner__first_name",
    "owner__last_name",
    "campaign__name",
    "recording_status",
)

RECORDING_LABELS: dict[str, str] = {
    CallSession.RecordingStatus.NONE: "None yet",
    CallSession.RecordingStatus.PENDING: "Processing",
    CallSession.RecordingStatus.AVAILABLE: "Available",
    CallSession.RecordingStatus.ABSENT: "Not recorded",
    CallSession.RecordingStatus.FAILED: "Failed",
}
_STATUS_LABELS: dict[str, str] = {value: str(label) for value, label in Status.choices}
_DIRECTION_LABELS: dict[str, str] = {value: str(label) for value, label in CallSession.Direction.choices}


def sort_columns(sort: str) -> dict[str, SortColumn]:
    """Column headers: a click on the sorted column flips it; on another, sorts it descending first."""
    current, descending = sort.lstrip("-"), sort.startswith("-")
    columns: dict[str, SortColumn] = {}
    for key in ("started", "duration", "status"):
        label = SORT_KEYS[key].label
        if key == current:
            columns[key] = SortColumn(key, label, key if descending else f"-{key}", _aria(descending))
        else:
            columns[key] = SortColumn(key, label, key if key == "status" else f"-{key}", None)
    return columns


def _aria(descending: bool) -> str:
    return "descending" if descending else "ascending"


def call_list_page(*, user: User, query: CallListQuery) -> CallListPage:
    """One page of the calls ``user`` may see that match ``query``: one query, whatever the page size."""
    key = SORT_KEYS[query.sort.lstrip("-")]
    descending = query.sort.startswith("-")
    cursor = query.cursor
    backwards = cursor is not None and cursor.backwards
    # Going back walks the order in reverse (NULLs then come first) and flips the rows afterwards.
    walk_descending, nulls_last = descending != backwards, not backwards

    sessions, snippet_columns = _with_snippet(call_session_list(user=user, filters=query.filters), query.filters.q)
    rows_qs: QuerySet[CallSession, Row] = sessions.values(*LIST_COLUMNS, *snippet_columns)
    if cursor is not None:
        rows_qs = rows_qs.filter(
            _beyond(key, descending=walk_descending, nulls_last=nulls_last, value=cursor.value, pk=cursor.pk)
        )
    rows_qs = rows_qs.order_by(*_ordering(key, descending=walk_descending, nulls_last=nulls_last))
    rows = list(rows_qs[: query.page_size + 1])
    more = len(rows) > query.page_size
    rows = rows[: query.page_size]
    if backwards:
        rows.reverse()
    has_next = True if backwards else more
    has_prev = more if backwards else cursor is not None

    def cursor_at(row: Row, *, back: bool) -> str:
        return Cursor(sort=query.sort, value=row[key.field], pk=row["id"], backwards=back).encode()

    term = (query.filters.q or "").strip()
    # One reverse() for the page rather than one per row: /calls/<id>/ differs only by the id.
    url_prefix = reverse("call-detail", args=["-"]).removesuffix("-/")
    return CallListPage(
        rows=[_call_row(row, term, url_prefix) for row in rows],
        sort=query.sort,
        sort_label=dict(SORT_CHOICES)[query.sort],
        columns=sort_columns(query.sort),
        next_cursor=cursor_at(rows[-1], back=False) if rows and has_next else None,
        prev_cursor=cursor_at(rows[0], back=True) if rows and has_prev else None,
        searching=bool(term),
    )


def _call_row(row: Row, term: str, url_prefix: str) -> CallRow:
    status: str = row["status"]
    direction: str = row["direction"]
    recording: str = row["recording_status"]
    return CallRow(
        id=row["id"],
        url=f"{url_prefix}{row['id']}/",
        when=row["started_at"] or row["created_at"],
        started=row["started_at"] is not None,
        status=status,
        status_label=_STATUS_LABELS.get(status) or status,
        direction=direction,
        direction_label=_DIRECTION_LABELS.get(direction) or direction,
        from_number=row["from_number"],
        to_number=row["to_number"],
        owner="" if row["owner__username"] is None else _display_name(row),
        campaign=row["campaign__name"] or "",
        duration=format_duration(row["duration_ms"]),
        recording_status=recording,
        recording_label=RECORDING_LABELS.get(recording) or recording,
        snippet=_snippet(row, term) if term else None,
    )


def _display_name(row: Row) -> str:
    full = f"{row['owner__first_name']} {row['owner__last_name']}".strip()
    return full or str(row["owner__username"])


# --- Search snippets -----------------------------------------------------------------------------------------
#
# PostgreSQL: ts_headline with the search's own query and config marks the matched words between two
# private-use characters; SQLite: the database cuts a window of text around the first match and Python marks
# the term in it. Either way the text is HTML-escaped piece by piece and only our own <mark> tags are added,
# so nothing a transcript holds is ever output as markup.

_START, _STOP = "\ue000", "\ue001"
_WINDOW_BEFORE, _WINDOW = 60, 170


def _with_snippet(sessions: QuerySet[CallSession], q: str | None) -> tuple[QuerySet[CallSession], tuple[str, ...]]:
    term = (q or "").strip()
    if not term:
        return sessions, ()
    if connection.vendor == "postgresql":
        config = settings.SEARCH_CONFIG
        headline = SearchHeadline(
            "transcript__text",
            SearchQuery(term, config=config, search_type="websearch"),
            config=config,
            start_sel=_START,
            stop_sel=_STOP,
            max_words=14,
            min_words=6,
            max_fragments=2,
            fragment_delimiter=" … ",
        )
        return sessions.annotate(snippet_headline=headline), ("snippet_headline",)
    # SQLite: LIKE (what the search used) folds ASCII case only, and so does lower(): both find the same match.
    position = StrIndex(Lower("transcript__text"), Lower(Value(term)))
    start = Greatest(position - _WINDOW_BEFORE, Value(1))
    return (
        sessions.annotate(
            snippet_at=position,
            snippet_from=start,
            snippet_window=Substr("transcript__text", start, _WINDOW + len(term)),
            snippet_length=Length("transcript__text"),
        ),
        ("snippet_at", "snippet_from", "snippet_window", "snippet_length"),
    )


def _snippet(row: Row, term: str) -> SafeString | None:
    if "snippet_headline" in row:
        return _marked_headline(row["snippet_headline"])
    if not row.get("snippet_at"):
        return None  # matched on a number or the external id, not the transcript
    window: str = row["snippet_window"]
    start: int = row["snippet_from"]
    match_at = row["snippet_at"] - start  # where the match starts in the window
    lead = start > 1
    tail = start - 1 + len(window) < row["snippet_length"]
    # Cut at word boundaries, so the snippet neither starts nor ends in the middle of a word (nor of the match).
    first_space = window.find(" ", 0, match_at)
    if lead and first_space >= 0:
        window, match_at = window[first_space + 1 :], match_at - first_space - 1
    last_space = window.rfind(" ", match_at + len(term))
    if tail and last_space >= 0:
        window = window[:last_space]
    return highlight(window, term, lead=lead, tail=tail)


def highlight(text: str, term: str, *, lead: bool = False, tail: bool = False) -> SafeString:
    """``text`` escaped, with every case-insensitive occurrence of ``term`` in ``<mark>``."""
    pieces: list[str] = []
    last = 0
    for match in re.finditer(re.escape(term), text, flags=re.IGNORECASE) if term else ():
        pieces.append(html.escape(text[last : match.start()]))
        pieces.append(f"<mark>{html.escape(match.group())}</mark>")
        last = match.end()
    pieces.append(html.escape(text[last:]))
    body = " ".join("".join(pieces).split())  # transcripts are one line per segment: one line here
    return mark_safe(("… " if lead else "") + body + (" …" if tail else ""))  # noqa: S308  # every piece escaped


def _marked_headline(headline: str | None) -> SafeString | None:
    """ts_headline's output, escaped, with its markers turned into <mark>; None when nothing matched."""
    if not headline or _START not in headline:
        return None
    pieces: list[str] = []
    for i, outside in enumerate(headline.split(_START)):
        inside, _, rest = outside.partition(_STOP) if i else ("", "", outside)
        if inside:
            pieces.append(f"<mark>{html.escape(inside)}</mark>")
        pieces.append(html.escape(rest.replace(_STOP, "")))
    return mark_safe(" ".join("".join(pieces).split()))  # noqa: S308  # every piece escaped


# --- CSV export ----------------------------------------------------------------------------------------------

EXPORT_HEADER = (
    "id",
    "started_at",
    "ended_at",
    "duration_s",
    "status",
    "direction",
    "from",
    "to",
    "owner",
    "team",
    "campaign_id",
    "source",
    "external_id",
    "recording_status",
)
EXPORT_COLUMNS = (
    "id",
    "started_at",
    "ended_at",
    "duration_ms",
    "status",
    "direction",
    "from_number",
    "to_number",
    "owner__username",
    "team__name",
    "campaign_id",
    "source",
    "external_id",
    "recording_status",
)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def call_export_rows(*, user: User, query: CallListQuery) -> Iterator[list[str]]:
    """The header, then every call matching ``query`` (no page, no cursor) in its sort order, as CSV cells.

    Lazy: one query, read in chunks by ``.iterator()``, so a 100,000-row export never sits in memory.
    """
    key = SORT_KEYS[query.sort.lstrip("-")]
    rows = (
        call_session_list(user=user, filters=query.filters)
        .order_by(*_ordering(key, descending=query.sort.startswith("-"), nulls_last=True))
        .values_list(*EXPORT_COLUMNS)
    )
    yield list(EXPORT_HEADER)
    for values in rows.iterator(chunk_size=2000):
        cells = list(values)
        duration = cells[3]
        cells[3] = None if duration is None else format(Decimal(duration) / 1000, "f")
        yield [csv_safe(cell) for cell in cells]


class _Echo:
    """A file-like object whose write() hands back the line: csv.writer formats, the generator yields."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def export_filename(*, today: date | None = None) -> str:
    return f"calls-{(today or timezone.localdate()):%Y%m%d}.csv"


# --- Dashboard -----------------------------------------------------------------------------------------------

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    calls: int


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    status: str
    label: str
    calls: int
    percent: float


@dataclass(frozen=True, slots=True)
class CampaignStats:
    campaign_id: int | None
    name: str
    calls: int
    completed: int
    completed_percent: float
    avg_duration_ms: float | None

    @property
    def avg_duration(self) -> str:
        return format_duration(self.avg_duration_ms)


@dataclass(frozen=True, slots=True)
class DashboardStats:
    days: int
    first_day: date
    last_day: date  # today, in the user's time zone
    total_calls: int
    answered_calls: int
    completed_calls: int
    avg_answered_duration_ms: float | None
    per_day: list[DayCount]  # every day of the period, oldest first, days without calls included
    outcomes: list[OutcomeCount]  # statuses that occurred, most frequent first
    campaigns: list[CampaignStats]  # most calls first; calls of no campaign last
    has_any_calls: bool  # ever, not only in the period

    @property
    def avg_answered_duration(self) -> str:
        return format_duration(self.avg_answered_duration_ms)

    @property
    def completed_percent(self) -> float:
        return _percent(self.completed_calls, self.total_calls)

    @property
    def busiest_day(self) -> DayCount | None:
        busiest = max(self.per_day, key=lambda d: d.calls, default=None)
        return busiest if busiest is not None and busiest.calls else None


# A call "happened" when it started; one that never started, when it was logged.
_CALL_TIME = Coalesce("started_at", "created_at")
# Answered: picked up (answered_at), or with talk time (adopted recordings carry a duration, no answer event).
_ANSWERED = Q(answered_at__isnull=False) | Q(duration_ms__gt=0)
# The average duration is over answered calls that have ended (a call in progress has no duration yet).
_ANSWERED_ENDED = _ANSWERED & Q(duration_ms__isnull=False)


def _period(days: int) -> tuple[date, date, datetime, datetime]:
    tz = timezone.get_current_timezone()
    last_day = timezone.localdate()
    first_day = last_day - timedelta(days=days - 1)
    start = datetime.combine(first_day, time.min, tzinfo=tz)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=tz)
    return first_day, last_day, start, end


def dashboard_stats(*, user: User, days: int) -> DashboardStats:
    """The dashboard's figures for the calls ``user`` may see over the last ``days`` days (today included),
    bucketed by day in the current time zone. Three queries (four when the period has no call)."""
    if days < 1:
        raise ValueError("days must be positive")
    first_day, last_day, start, end = _period(days)
    # The same condition as start <= coalesce(started_at, created_at) < end, written so that the started_at and
    # created_at indexes can serve it.
    in_period = Q(started_at__gte=start, started_at__lt=end) | Q(
        started_at__isnull=True, created_at__gte=start, created_at__lt=end
    )
    sessions = visible_sessions(user=user).filter(in_period).order_by()

    tz = timezone.get_current_timezone()
    by_day = {
        row["day"]: row["calls"]
        for row in sessions.annotate(day=TruncDate(_CALL_TIME, tzinfo=tz)).values("day").annotate(calls=Count("id"))
    }
    per_day = [DayCount(day=d, calls=by_day.get(d, 0)) for d in _days(first_day, last_day)]

    by_status = list(
        sessions.values("status").annotate(
            calls=Count("id"),
            answered=Count("id", filter=_ANSWERED),
            answered_ended=Count("id", filter=_ANSWERED_ENDED),
            answered_ms=Sum("duration_ms", filter=_ANSWERED),
        )
    )
    total = sum(row["calls"] for row in by_status)
    answered = sum(row["answered"] for row in by_status)
    ended = sum(row["answered_ended"] for row in by_status)
    answered_ms = sum(row["answered_ms"] or 0 for row in by_status)
    outcomes = sorted(
        (
            OutcomeCount(
                status=row["status"],
                label=_STATUS_LABELS.get(row["status"]) or str(row["status"]),
                calls=row["calls"],
                percent=_percent(row["calls"], total),
            )
            for row in by_status
        ),
        key=lambda o: (-o.calls, o.label),
    )

    campaigns = [
        CampaignStats(
            campaign_id=row["campaign_id"],
            name=row["campaign__name"] or "No campaign",
            calls=row["calls"],
            completed=row["completed"],
            completed_percent=_percent(row["completed"], row["calls"]),
            avg_duration_ms=row["answered_ms"] / row["answered_ended"] if row["answered_ended"] else None,
        )
        for row in sessions.values("campaign_id", "campaign__name").annotate(
            calls=Count("id"),
            completed=Count("id", filter=Q(status=Status.COMPLETED)),
            answered_ended=Count("id", filter=_ANSWERED_ENDED),
            answered_ms=Sum("duration_ms", filter=_ANSWERED),
        )
    ]
    campaigns.sort(key=lambda c: (c.campaign_id is None, -c.calls, c.name))

    completed = next((o.calls for o in outcomes if o.status == Status.COMPLETED), 0)
    return DashboardStats(
        days=days,
        first_day=first_day,
        last_day=last_day,
        total_calls=total,
        answered_calls=answered,
        completed_calls=completed,
        avg_answered_duration_ms=answered_ms / ended if ended else None,
        per_day=per_day,
        outcomes=outcomes,
        campaigns=campaigns,
        has_any_calls=bool(total) or visible_sessions(user=user).exists(),
    )


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


# --- Charts: geometry for server-rendered SVG ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    title: str  # the bar's own <title>: what a pointer or a screen reader gets
    css: str = ""
    # Where the bar's value is written, if it is (the outcome chart writes it after the bar).
    value_x: float = 0.0
    value_y: float = 0.0


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # SVG text-anchor
    minor: bool = False  # left out on small screens, where the labels would touch


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    y_ticks: list[Tick]  # value gridlines, y in chart coordinates, x where the label ends
    x_labels: list[Tick]
    plot_left: float
    plot_right: float


def _nice_ceiling(value: int) -> int:
    """1, 2, 5, 10, 20, 50, ...: the smallest one at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _day_label(day: date, *, weekday: bool = False) -> str:
    label = f"{day.day} {day:%b}"
    return f"{day:%a} {label}" if weekday else label


def per_day_chart(stats: DashboardStats) -> BarChart:
    width, height = 720, 220
    left, right, top, bottom = 48.0, 8.0, 12.0, 30.0
    plot_w, plot_h = width - left - right, height - top - bottom
    ceiling = _nice_ceiling(max((d.calls for d in stats.per_day), default=0))
    slot = plot_w / max(len(stats.per_day), 1)
    gap = min(4.0, slot * 0.2)
    bars = []
    for i, day in enumerate(stats.per_day):
        h = plot_h * day.calls / ceiling
        bars.append(
            Bar(
                x=round(left + i * slot + gap / 2, 2),
                y=round(top + plot_h - h, 2),
                width=round(slot - gap, 2),
                height=round(h, 2),
                value=day.calls,
                title=f"{_day_label(day.day, weekday=True)}: {day.calls} call{'s' if day.calls != 1 else ''}",
            )
        )
    # Gridlines at 0, half-way when that is a whole number (1, 2, 5, 10, ...: not for 1 and 5), and the top.
    values = (0, ceiling // 2, ceiling) if ceiling % 2 == 0 else (0, ceiling)
    y_ticks = [Tick(x=left - 6, y=round(top + plot_h - plot_h * v / ceiling, 2), text=str(v)) for v in values]
    every = max(1, round(len(stats.per_day) / 6))
    last = len(stats.per_day) - 1
    x_labels = [
        Tick(
            x=round(left + i * slot + slot / 2, 2),
            y=height - 8,
            text=_day_label(day.day),
            minor=(last - i) // every % 2 == 1,  # every other label, counting back from today's
        )
        for i, day in enumerate(stats.per_day)
        if (last - i) % every == 0
    ]
    if x_labels:  # the last label (today) ends at the plot's edge rather than past it
        x_labels[-1] = Tick(x=width - right, y=x_labels[-1].y, text=x_labels[-1].text, anchor="end")
    return BarChart(
        width=width,
        height=height,
        bars=bars,
        y_ticks=y_ticks,
        x_labels=x_labels,
        plot_left=left,
        plot_right=width - right,
    )


def outcome_chart(stats: DashboardStats) -> BarChart:
    """Horizontal bars, one per status; labels and values are drawn in the template from ``bars``."""
    row_h, width = 30, 480
    label_w, value_w = 120.0, 70.0
    plot_w = width - label_w - value_w
    most = max((o.calls for o in stats.outcomes), default=0) or 1
    bars = [
        Bar(
            x=label_w,
            y=i * row_h + 6,
            width=round(max(plot_w * o.calls / most, 2), 2),
            height=row_h - 12,
            value=o.calls,
            title=f"{o.label}: {o.calls} ({o.percent:g} %)",
            css=o.status,
            value_x=round(label_w + max(plot_w * o.calls / most, 2) + 6, 2),
            value_y=i * row_h + row_h / 2 + 4,
        )
        for i, o in enumerate(stats.outcomes)
    ]
    labels = [Tick(x=label_w - 8, y=i * row_h + row_h / 2 + 4, text=o.label) for i, o in enumerate(stats.outcomes)]
    return BarChart(
        width=width,
        height=max(len(bars), 1) * row_h,
        bars=bars,
        y_ticks=[],
        x_labels=labels,
        plot_left=label_w,
        plot_right=width - value_w,
    )


# --- The dashboard page --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DashboardPage:
    stats: DashboardStats
    per_day_chart: BarChart
    outcome_chart: BarChart
    team: Team | None
    members: list[User]


def dashboard_page(*, user: User, days: int) -> DashboardPage:
    """Everything the dashboard shows: the stats with their charts, and the "you and your team" card."""
    stats = dashboard_stats(user=user, days=days)
    team = Team.objects.select_related("manager").filter(pk=user.team_id).first() if user.team_id else None
    return DashboardPage(
        stats=stats,
        per_day_chart=per_day_chart(stats),
        outcome_chart=outcome_chart(stats),
        team=team,
        members=list(team_members(user=user)) if team else [],
    )
