"""Step 1, 2 and 4 of a tick: settle the calls that ended, the circuit breaker, completion."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Q

from calls import states
from calls.models import CallSession
from calls.services import EventInput, call_event_record
from campaigns.models import Dial, Run, RunContact, RunLog
from campaigns.runs import run_transition
from campaigns.scheduler.state import (
    OUTCOME_FOR_STATUS,
    OUTCOME_LABELS,
    Tick,
)
from crm.metrics import DIALS, RUN_BREAKER_TRIPS


def reconcile(tick: Tick) -> None:
    """Settle the dials in flight whose session ended or that ran past max_call_seconds."""
    run, campaign, now = tick.run, tick.campaign, tick.now
    deadline = now - dt.timedelta(seconds=campaign.max_call_seconds)
    # Only the dials there is something to decide about: a call still going is not even loaded.
    settled = Q(session__status__in=sorted(states.TERMINAL)) | Q(dialed_at__lte=deadline)
    in_flight = list(
        Dial.objects.filter(run=run, finished_at__isnull=True)
        .filter(settled)
        .select_related("session", "target", "target__contact")
        .order_by("id")
    )
    for dial in in_flight:
        session = dial.session
        if session.status not in states.TERMINAL:
            if dial.dialed_at > deadline:
                continue
            reason = f"No final status from the voice agent within {campaign.max_call_seconds} s"
            # The session ends with the dial, so the calls list and the run agree; a late report is still kept
            # in the session's timeline but no longer moves its status.
            session = call_event_record(
                session_id=session.pk,
                event=EventInput(
                    type=states.EventType.FAILED,
                    event_id=f"callbook-timeout-{dial.pk}",
                    occurred_at=now,
                    data={"reason": reason, "by": "campaign scheduler"},
                ),
            ).session
        settle(tick, dial, session)


def settle(tick: Tick, dial: Dial, session: CallSession) -> None:
    run, campaign, now = tick.run, tick.campaign, tick.now
    outcome = OUTCOME_FOR_STATUS.get(session.status, Dial.Outcome.FAILED)
    reason = session.end_reason if session.end_reason and session.end_reason != session.status else ""
    if session.status == states.Status.ABANDONED:
        reason = reason or "The call went silent and was abandoned"
    dial.outcome = outcome
    dial.outcome_reason = reason[:255]
    dial.answered = session.answered_at is not None
    dial.finished_at = now
    dial.save(update_fields=["outcome", "outcome_reason", "answered", "finished_at"])
    tick.result.reconciled += 1
    transaction.on_commit(lambda: DIALS.labels(outcome=outcome).inc())

    target = dial.target
    run.dialing = max(0, run.dialing - 1)
    if dial.answered:
        run.connected += 1
    target.last_outcome = outcome
    target.outcome_reason = reason[:255]
    contact = target.contact
    label = OUTCOME_LABELS[Dial.Outcome(outcome)]
    because = f" ({reason})" if reason else ""
    data: dict[str, Any] = {"contact": contact.pk, "dial": dial.pk, "session": str(session.pk), "outcome": outcome}
    if outcome == Dial.Outcome.COMPLETED:
        target.state = RunContact.State.DONE
        run.completed += 1
        tick.log("call_completed", f"{contact.name} ({contact.phone}): completed.", **data)
    else:
        rule = outcome if outcome in (Dial.Outcome.NO_ANSWER, Dial.Outcome.BUSY) else Dial.Outcome.FAILED
        delay = getattr(campaign, f"retry_{rule}_delay")
        max_attempts = getattr(campaign, f"retry_{rule}_max_attempts")
        if run.state in (Run.State.RUNNING, Run.State.PAUSED) and target.attempts < max_attempts:
            target.state = RunContact.State.PENDING
            target.next_attempt_at = now + dt.timedelta(seconds=delay)
            run.queued += 1
            tick.result.retries += 1
            tick.log(
                "retry_scheduled",
                f"{contact.name} ({contact.phone}): {label}{because} on attempt {target.attempts} of "
                f"{max_attempts}; retry scheduled for {target.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC.",
                retry_at=target.next_attempt_at.isoformat(),
                **data,
            )
        else:
            target.state = RunContact.State.DONE
            setattr(run, rule, getattr(run, rule) + 1)
            why = "the run was canceled" if run.state == Run.State.CANCELED else f"{target.attempts} attempt(s) made"
            tick.log(
                "call_ended",
                f"{contact.name} ({contact.phone}): {label}{because}; no retry ({why}).",
                level=RunLog.Level.WARNING if rule == Dial.Outcome.FAILED else RunLog.Level.INFO,
                **data,
            )
    target.updated_at = now
    target.save(update_fields=["state", "last_outcome", "outcome_reason", "next_attempt_at", "updated_at"])


def check_breaker(tick: Tick) -> None:
    run, campaign = tick.run, tick.campaign
    if run.state != Run.State.RUNNING or campaign.breaker_window <= 0:
        return
    finished = Dial.objects.filter(run=run, finished_at__isnull=False)
    if run.breaker_reset_at is not None:
        finished = finished.filter(finished_at__gt=run.breaker_reset_at)
    outcomes = list(
        finished.order_by("-finished_at", "-id").values_list("outcome", flat=True)[: campaign.breaker_window]
    )
    if len(outcomes) < max(1, campaign.breaker_min_dials):
        return
    failures = sum(1 for outcome in outcomes if outcome == Dial.Outcome.FAILED)
    share = failures / len(outcomes)
    if share < campaign.breaker_failure_rate:
        return
    tick.result.breaker_tripped = True
    transaction.on_commit(RUN_BREAKER_TRIPS.inc)
    run_transition(
        run=run,
        to=Run.State.PAUSED,
        reason=f"Circuit breaker: {failures} of the last {len(outcomes)} finished calls failed ({share:.0%}, "
        f"threshold {campaign.breaker_failure_rate:.0%}). Check the voice agent, then resume the run.",
        kind="breaker_tripped",
        actor=None,
        at=tick.now,
        pending_logs=tick.logs,
        level=RunLog.Level.WARNING,
        data={"failures": failures, "window": len(outcomes), "share": round(share, 3)},
    )


def finish_if_done(tick: Tick) -> None:
    run = tick.run
    if run.state == Run.State.CANCELED and run.finished_at is None and run.dialing == 0:
        run.finished_at = tick.now
        run.save(update_fields=["finished_at"])
        tick.log("finished", "The last call of the canceled run has ended.")
        return
    if run.state != Run.State.RUNNING:
        return
    if RunContact.objects.filter(run=run, state__in=[RunContact.State.PENDING, RunContact.State.DIALING]).exists():
        return
    tick.result.completed = True
    run_transition(
        run=run,
        to=Run.State.COMPLETED,
        reason=f"Completed: {run.completed} completed, {run.no_answer} no answer, {run.busy} busy, "
        f"{run.failed} failed, {run.skipped_dnc} skipped (do not call), in {run.dials} dial(s).",
        kind="completed",
        actor=None,
        at=tick.now,
        pending_logs=tick.logs,
    )
