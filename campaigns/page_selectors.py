"""Reads of the campaign and run pages that the shared selectors do not cover: the campaigns list with each one's
latest run, a campaign's audience and run history, a run's calls page, its CSV rows and its report chart.

Every function takes rows the caller already got through ``campaigns.access``; none of them checks access.
Lists are built so that their query count does not grow with their length (subqueries, select_related).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, UUIDField
from django.utils import timezone

from campaigns.access import visible_campaigns
from campaigns.models import Campaign, Dial, DoNotCall, Run, RunContact
from campaigns.run_selectors import run_dials, run_report
from campaigns.runs import RunError, campaign_targets
from crm.csv_export import E164_RE, csv_safe
from crm.models import User

RUNS_SHOWN = 20
CALLS_PAGE_SIZE = 25

# --- Formatting ----------------------------------------------------------------------------------------------


def clock(ms: int | None) -> str:
    """A call's length as a player shows it: 0:42, 12:05, 1:02:03; empty when unknown."""
    if ms is None:
        return ""
    seconds = int(Decimal(ms) / 1000 + Decimal("0.5"))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def percent(part: int, whole: int) -> float:
    return round(part * 100 / whole, 1) if whole else 0.0


# --- The campaigns list --------------------------------------------------------------------------------------


def campaign_list(*, user: User) -> QuerySet[Campaign]:
    """The campaigns ``user`` may see, active ones first, each with its latest run's id, state and progress
    annotated (``last_run_*``): one query whatever the number of campaigns."""
    latest = Run.objects.filter(campaign=OuterRef("pk")).order_by("-created_at", "-id")
    return (
        visible_campaigns(user=user)
        .annotate(
            last_run_id=Subquery(latest.values("id")[:1]),
            last_run_state=Subquery(latest.values("state")[:1]),
            last_run_total=Subquery(latest.values("total")[:1]),
            last_run_done=Subquery(
                latest.annotate(
                    done=F("completed") + F("no_answer") + F("busy") + F("failed") + F("skipped_dnc")
                ).values("done")[:1]
            ),
            last_run_at=Subquery(latest.values("created_at")[:1]),
        )
        .order_by("status", "name", "id")
    )


def run_state_label(state: str | None) -> str:
    return Run.State(state).label if state in Run.State.values else ""


# --- A campaign ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Audience:
    contacts: int
    do_not_call: int  # flagged, or on the team's do-not-call list: runs skip them at dial time
    explicit: int  # contacts chosen one by one (0: the team's contacts, filtered)
    problem: str = ""  # why the audience cannot be worked out (a filter a run would refuse)


def campaign_audience_counts(*, campaign: Campaign) -> Audience:
    """How many contacts a run launched now would have: the launch's own rule (``campaign_targets``)."""
    explicit = campaign.contacts.count()
    try:
        audience = campaign_targets(campaign=campaign)
    except RunError as exc:
        return Audience(contacts=0, do_not_call=0, explicit=explicit, problem=exc.detail)
    listed = DoNotCall.objects.filter(team_id=campaign.team_id).values("phone")
    blocked = audience.filter(Q(do_not_call=True) | Q(phone__in=listed))
    return Audience(contacts=audience.count(), do_not_call=blocked.count(), explicit=explicit)


def campaign_active_run(*, campaign: Campaign) -> Run | None:
    return campaign.runs.filter(state__in=Run.ACTIVE_STATES).order_by("-created_at").first()


# --- A run's calls ---------------------------------------------------------------------------------------------


def run_calls_page(*, run: Run, page: str | int | None) -> Page[Dial]:
    """A page of the run's dials, newest first, with session and contact: two queries (count and rows)."""
    return Paginator(run_dials(run=run), CALLS_PAGE_SIZE).get_page(page)


# --- The CSV export --------------------------------------------------------------------------------------------

EXPORT_HEADER = (
    "contact",
    "phone",
    "company",
    "attempts",
    "final_outcome",
    "outcome_reason",
    "last_dial_at",
    "session_id",
    "duration_seconds",
    "recording_available",
)


def final_outcome(*, state: str, last_outcome: str) -> str:
    """What became of a contact in a run, in one word for the export and the report."""
    if state == RunContact.State.SKIPPED:
        return last_outcome or "skipped"
    if state == RunContact.State.DONE:
        return last_outcome or "done"
    if state == RunContact.State.DIALING:
        return "dialing"
    return "not_called" if not last_outcome else f"{last_outcome} (will retry)"


def run_export_rows(*, run: Run) -> Iterator[list[str]]:
    """The header, then one row per contact of the run in dial order: one query, read in chunks."""
    last = Dial.objects.filter(target=OuterRef("pk")).order_by("-attempt")
    rows = (
        RunContact.objects.filter(run=run)
        .order_by("position")
        .annotate(
            last_dialed_at=Subquery(last.values("dialed_at")[:1]),
            # Named explicitly: SQLite hands a foreign key to a UUID back as bare hex otherwise.
            last_session_id=Subquery(last.values("session_id")[:1], output_field=UUIDField()),
            last_duration_ms=Subquery(last.values("session__duration_ms")[:1]),
            last_recording=Subquery(last.values("session__recording_status")[:1]),
        )
        .values_list(
            "contact__name",
            "contact__phone",
            "contact__company",
            "attempts",
            "state",
            "last_outcome",
            "outcome_reason",
            "last_dialed_at",
            "last_session_id",
            "last_duration_ms",
            "last_recording",
        )
    )
    yield list(EXPORT_HEADER)
    for (
        name,
        phone,
        company,
        attempts,
        state,
        outcome,
        reason,
        dialed_at,
        session_id,
        duration,
        recording,
    ) in rows.iterator(chunk_size=2000):
        seconds = None if duration is None else format(Decimal(duration) / 1000, "f")
        cells: list[Any] = [
            name,
            phone,
            company,
            attempts,
            final_outcome(state=state, last_outcome=outcome),
            reason,
            dialed_at,
            session_id,
            seconds,
            "yes" if recording == "available" else "no",
        ]
        yield [csv_safe(cell, allow=E164_RE) for cell in cells]


def export_filename(*, run: Run) -> str:
    return f"run-{run.pk}-{timezone.localdate():%Y%m%d}.csv"


# --- The report's chart ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutcomeShare:
    key: str
    label: str
    count: int
    percent: float


@dataclass(frozen=True, slots=True)
class ChartBar:
    key: str
    label: str
    y: float
    width: float
    label_y: float
    value_x: float
    value: str
    title: str


@dataclass(frozen=True, slots=True)
class OutcomeChart:
    width: int
    height: int
    label_width: int
    bar_height: int
    bars: list[ChartBar]


def outcome_chart(shares: list[OutcomeShare]) -> OutcomeChart:
    """Horizontal bars, one per outcome, drawn as SVG in the template (no script, nothing from elsewhere)."""
    row_h, width, label_w, value_w = 32, 560, 130, 120
    plot_w = width - label_w - value_w
    most = max((share.count for share in shares), default=0) or 1
    bars = []
    for i, share in enumerate(shares):
        bar_w = round(max(plot_w * share.count / most, 2 if share.count else 0), 2)
        bars.append(
            ChartBar(
                key=share.key,
                label=share.label,
                y=i * row_h + 6,
                width=bar_w,
                label_y=i * row_h + row_h / 2 + 5,
                value_x=round(label_w + bar_w + 6, 2),
                value=f"{share.count} ({share.percent:g} %)",
                title=f"{share.label}: {share.count} ({share.percent:g} %)",
            )
        )
    return OutcomeChart(
        width=width, height=max(len(bars), 1) * row_h, label_width=label_w, bar_height=row_h - 12, bars=bars
    )


# --- The finished run's report -----------------------------------------------------------------------------------

# What became of the contacts, in the report's order: (key in run_report's "contacts", label).
REPORT_OUTCOMES = (
    ("completed", "Completed"),
    ("no_answer", "No answer"),
    ("busy", "Busy"),
    ("failed", "Failed"),
    ("dnc", "Do not call"),
    ("canceled", "Canceled"),
)


@dataclass(frozen=True, slots=True)
class RunReportView:
    shares: list[OutcomeShare]
    chart: OutcomeChart
    total: int
    dials: int
    answered: int
    answer_percent: float | None
    talk_total: str
    talk_average: str
    duration: str
    attempts: list[tuple[str, int]]
    agents: list[dict[str, Any]]


def _span(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02} min"
    return f"{minutes} min {secs:02} s" if minutes else f"{secs} s"


def run_report_view(*, run: Run) -> RunReportView:
    """``run_report`` shaped for the page: each outcome's count and share of the run's contacts, and a chart."""
    report = run_report(run=run)
    contacts: dict[str, int] = report["contacts"]
    total = report["total"]
    shares = [
        OutcomeShare(key, label, contacts.get(key, 0), percent(contacts.get(key, 0), total))
        for key, label in REPORT_OUTCOMES
    ]
    # Contacts the run never finished with (a failed run, calls still ending after a cancel).
    unfinished = total - sum(share.count for share in shares)
    if unfinished > 0:
        shares.append(OutcomeShare("unfinished", "Not finished", unfinished, percent(unfinished, total)))
    dials = report["dials"]["total"]
    answer_rate = report["answer_rate"]
    return RunReportView(
        shares=shares,
        chart=outcome_chart(shares),
        total=total,
        dials=dials,
        answered=report["answered"],
        answer_percent=None if answer_rate is None else round(answer_rate * 100, 1),
        talk_total=clock(report["talk_ms_total"]) if report["talk_ms_total"] else "",
        talk_average=clock(report["talk_ms_average"]),
        duration=_span(report["duration_seconds"]),
        attempts=list(report["attempts"].items()),
        agents=report["agents"],
    )
