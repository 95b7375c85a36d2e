"""The calls list page and its CSV export.

``call_list_page`` runs one query for the page's rows (search snippets are computed in that same query) and
``call_export_rows`` one query, streamed with ``.iterator()``. The list pages with a KEYSET (seek) cursor on
``(sort key, id)``: no OFFSET and no COUNT(*), so the 2,000th page costs what the first does. The default order
(newest first, ``-created_at, -id``) is what the indexes ``session_owner_recent_idx``, ``session_team_recent_idx``
and the ``created_at`` index serve."""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.search import SearchHeadline, SearchQuery
from django.db import connection
from django.db.models import F, Q, QuerySet, Value
from django.db.models.expressions import OrderBy
from django.db.models.functions import Greatest, Length, Lower, StrIndex, Substr
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from calls.models import CallSession
from calls.reports.formatting import STATUS_LABELS, Row, format_duration
from calls.selectors import SessionFilters, call_session_list
from crm.csv_export import csv_safe
from crm.models import User

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
        status_label=STATUS_LABELS.get(status) or status,
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


def export_filename(*, today: date | None = None) -> str:
    return f"calls-{(today or timezone.localdate()):%Y%m%d}.csv"
