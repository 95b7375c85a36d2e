"""The dashboard: counts per day, per outcome and per campaign, and the geometry of its server-rendered SVG charts.

``dashboard_stats`` runs three grouped queries (per day, per status, per campaign), plus one ``exists()`` only when
the period is empty (to tell "no calls yet" from "none in this period")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from calls.reports.formatting import STATUS_LABELS, format_duration, percent
from calls.selectors import visible_sessions
from calls.states import Status
from crm.models import Team, User
from crm.selectors import team_members

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
        return percent(self.completed_calls, self.total_calls)

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
                label=STATUS_LABELS.get(row["status"]) or str(row["status"]),
                calls=row["calls"],
                percent=percent(row["calls"], total),
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
            completed_percent=percent(row["completed"], row["calls"]),
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
