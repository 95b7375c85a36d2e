"""Reading runs: progress (the JSON the API and the run page's live polling share), dials, log and report.

Access is the caller's check (``campaigns.access.get_run_for_user``). Progress comes from the counters the
scheduler keeps in the same transaction as the rows they count, so it is one row read, however large the run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.utils import timezone

from campaigns.models import Dial, Run, RunContact, RunLog

COUNTERS = (
    "total",
    "queued",
    "dialing",
    "connected",
    "completed",
    "no_answer",
    "busy",
    "failed",
    "skipped_dnc",
    "outside_window",
    "dials",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def run_eta(*, run: Run, now: datetime | None = None) -> datetime | None:
    """When the run should finish at the pace it has kept so far; None when it is not running or has no pace yet.

    A guess, not a promise: retries and calling windows make the tail of a run slower than its start.
    """
    if run.state != Run.State.RUNNING or run.started_at is None:
        return None
    finished = run.finished_contacts
    remaining = run.queued + run.dialing
    now = now or timezone.now()
    if remaining == 0:
        return now
    elapsed = (now - run.started_at).total_seconds()
    if finished == 0 or elapsed <= 0:
        return None
    return now + timedelta(seconds=remaining * elapsed / finished)


def run_progress(*, run: Run, now: datetime | None = None) -> dict[str, Any]:
    """The run's state and counters as JSON-ready values (datetimes as ISO 8601 strings)."""
    counters = {name: getattr(run, name) for name in COUNTERS}
    finished = run.finished_contacts
    # Contacts skipped because the run was canceled: the one outcome without a counter of its own.
    skipped_canceled = max(0, run.total - finished - run.queued - run.dialing)
    done = finished + skipped_canceled
    percent = 100.0 if run.total == 0 else round(100.0 * done / run.total, 1)
    eta = run_eta(run=run, now=now)
    return {
        "id": run.pk,
        "campaign": run.campaign_id,
        "state": run.state,
        "state_label": run.get_state_display(),
        "state_reason": run.state_reason,
        "active": run.is_active,
        **counters,
        "skipped_canceled": skipped_canceled,
        "finished": finished,
        "percent": percent,
        "launched_by": run.launched_by.get_username() if run.launched_by_id and run.launched_by else None,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "updated_at": _iso(run.updated_at),
        "eta": _iso(eta),
    }


def campaign_runs(*, campaign_id: int) -> QuerySet[Run]:
    """A campaign's runs, newest first."""
    return Run.objects.filter(campaign_id=campaign_id).select_related("campaign", "launched_by").order_by("-id")


def run_dials(*, run: Run) -> QuerySet[Dial]:
    """The run's dial attempts, newest first, with their session and contact (served by dial_recent_idx)."""
    return (
        Dial.objects.filter(run=run)
        .select_related("session", "session__owner", "target", "target__contact")
        .order_by("-dialed_at", "-id")
    )


def run_log(*, run: Run) -> QuerySet[RunLog]:
    """The run's log, oldest first (what the API pages through)."""
    return RunLog.objects.filter(run=run).select_related("actor").order_by("id")


def run_log_entries(*, run: Run, after_id: int | None = None, limit: int = 100) -> list[RunLog]:
    """Log entries in the order they were written: those after ``after_id`` (live polling), or else the latest
    ``limit`` of them (a page opened mid-run)."""
    limit = max(1, min(limit, 1000))
    entries = RunLog.objects.filter(run=run).select_related("actor")
    if after_id is not None:
        return list(entries.filter(id__gt=after_id).order_by("id")[:limit])
    latest = list(entries.order_by("-id")[:limit])
    latest.reverse()
    return latest


def run_report(*, run: Run) -> dict[str, Any]:
    """The finished-run report: what became of each contact, of each dial, and how long the calls took."""
    targets = RunContact.objects.filter(run=run)
    by_state = dict(targets.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    final = dict(
        targets.filter(state__in=[RunContact.State.DONE, RunContact.State.SKIPPED])
        .values_list("last_outcome")
        .annotate(n=Count("id"))
        .values_list("last_outcome", "n")
    )
    attempts = dict(
        targets.filter(attempts__gt=0).values_list("attempts").annotate(n=Count("id")).values_list("attempts", "n")
    )
    dials = Dial.objects.filter(run=run)
    dial_outcomes = dict(
        dials.values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n"),
    )
    talk = dials.filter(answered=True).aggregate(
        answered=Count("id"),
        total_ms=Sum("session__duration_ms"),
        average_ms=Avg("session__duration_ms"),
    )
    per_agent = list(
        dials.values("session__owner__username")
        .annotate(dials=Count("id"), completed=Count("id", filter=Q(outcome=Dial.Outcome.COMPLETED)))
        .order_by("session__owner__username")
    )
    outcomes = ["completed", "no_answer", "busy", "failed", "canceled", "dnc"]
    contacts = {outcome: final.get(outcome, 0) for outcome in outcomes}
    total_dials = sum(dial_outcomes.values())
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None
    return {
        "run": run.pk,
        "state": run.state,
        "total": run.total,
        "contacts": contacts,
        "contacts_waiting": by_state.get(RunContact.State.PENDING, 0),
        "contacts_dialing": by_state.get(RunContact.State.DIALING, 0),
        "dials": {
            "total": total_dials,
            "in_flight": dial_outcomes.get("", 0),
            **{outcome: dial_outcomes.get(outcome, 0) for outcome in Dial.Outcome.values},
        },
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "answered": talk["answered"] or 0,
        "answer_rate": round((talk["answered"] or 0) / total_dials, 3) if total_dials else None,
        "talk_ms_total": int(talk["total_ms"] or 0),
        "talk_ms_average": int(talk["average_ms"]) if talk["average_ms"] is not None else None,
        "agents": [
            {"agent": row["session__owner__username"], "dials": row["dials"], "completed": row["completed"]}
            for row in per_agent
        ],
        "duration_seconds": duration,
    }
