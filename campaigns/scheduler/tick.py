"""The tick itself: one locked transaction per run, then the hand-off (see the package's docstring)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from campaigns.dialers import Dialer
from campaigns.models import Campaign, Dial, Run, RunContact, RunLog
from campaigns.runs import RunError, campaign_dialer, run_transition
from campaigns.scheduler.dialing import dial_due
from campaigns.scheduler.handoff import hand_off, recover_handoffs
from campaigns.scheduler.outcomes import check_breaker, finish_if_done, reconcile
from campaigns.scheduler.state import (
    COUNTER_FIELDS,
    IDLE_TICK_MAX_SECONDS,
    Tick,
    TickResult,
)
from crm.metrics import DIALS, SESSIONS_CREATED


def run_tick(*, run_id: int, now: dt.datetime | None = None, dialer: Dialer | None = None) -> TickResult:
    """One scheduler step for ``run_id``; safe to run any number of times, concurrently or after a crash.

    ``now`` is injectable so that tests can drive a run along a simulated timeline; ``dialer`` replaces the
    campaign's backend (tests, the benchmark).
    """
    now = now or timezone.now()
    result = TickResult(run_id=run_id)
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("campaign", "campaign__team").filter(pk=run_id).first()
        if run is None:
            result.state = "missing"
            return result
        tick = Tick(run=run, campaign=run.campaign, now=now, result=result)
        _repair_orphan_claims(tick)
        reconcile(tick)
        if tick.result.reconciled:
            check_breaker(tick)
        if run.state == Run.State.RUNNING:
            backend = dialer
            if backend is None:
                try:
                    backend = campaign_dialer(campaign=tick.campaign)
                except RunError as exc:
                    run_transition(
                        run=run,
                        to=Run.State.PAUSED,
                        reason=f"Paused: {exc.detail}",
                        kind="dialer_invalid",
                        actor=None,
                        at=now,
                        level=RunLog.Level.ERROR,
                        pending_logs=tick.logs,
                    )
            if backend is not None:
                tick.backend = backend
                recover_handoffs(tick, backend)
                dial_due(tick, backend)
        elif run.state == Run.State.PAUSED:
            # A paused run still owes its committed dials their hand-off: they are calls already under way.
            tick.backend = dialer or _backend_or_none(tick.campaign)
            recover_handoffs(tick, tick.backend)
        elif run.state == Run.State.CANCELED:
            recover_handoffs(tick, None)  # never handed over now: they end as canceled
        finish_if_done(tick)
        _schedule_follow_up(tick)
        RunLog.objects.bulk_create(tick.logs)
        run.save(update_fields=COUNTER_FIELDS)
        result.state = run.state
        if result.dialed:
            dialed = result.dialed
            transaction.on_commit(lambda: SESSIONS_CREATED.labels(origin="campaign").inc(dialed))
            transaction.on_commit(lambda: DIALS.labels(outcome="started").inc(dialed))
    if tick.handoffs:
        hand_off(tick, tick.backend)
    return result


def _backend_or_none(campaign: Campaign) -> Dialer | None:
    try:
        return campaign_dialer(campaign=campaign)
    except RunError:
        return None


def _repair_orphan_claims(tick: Tick) -> None:
    open_targets = Dial.objects.filter(run=tick.run, finished_at__isnull=True).values("target_id")
    orphans = list(
        RunContact.objects.filter(run=tick.run, state=RunContact.State.DIALING)
        .exclude(pk__in=open_targets)
        .select_related("contact")
    )
    for target in orphans:
        # No dial row means no session and no request ever left for this claim: give the attempt back.
        updated = RunContact.objects.filter(pk=target.pk, state=RunContact.State.DIALING).update(
            state=RunContact.State.PENDING,
            attempts=F("attempts") - 1 if target.attempts > 0 else F("attempts"),
            next_attempt_at=None,
            updated_at=tick.now,
        )
        if updated:
            tick.run.dialing = max(0, tick.run.dialing - 1)
            tick.run.queued += 1
            tick.log(
                "claim_repaired",
                f"{target.contact.name} was marked as being dialed but no call was made for it: back in the queue.",
                level=RunLog.Level.WARNING,
                contact=target.contact_id,
            )


def _schedule_follow_up(tick: Tick) -> None:
    """Decide the next tick. At most one follow-up is outstanding per run (see Run.next_tick_at)."""
    run = tick.run
    interval = settings.CAMPAIGN_TICK_INTERVAL_SECONDS
    if run.state == Run.State.RUNNING:
        busy = run.dialing > 0 or tick.result.dialed > 0
        if busy:
            delay = interval
        else:
            next_due = RunContact.objects.filter(run=run, state=RunContact.State.PENDING).aggregate(
                at=Min("next_attempt_at", default=None)
            )["at"]
            has_now = RunContact.objects.filter(
                run=run, state=RunContact.State.PENDING, next_attempt_at__isnull=True
            ).exists()
            if has_now or next_due is None:
                delay = interval
            else:
                delay = min(max((next_due - tick.now).total_seconds(), interval), IDLE_TICK_MAX_SECONDS)
    elif run.state in (Run.State.PAUSED, Run.State.CANCELED) and run.dialing > 0:
        delay = interval  # calls in flight are still reconciled
    else:
        run.next_tick_at = None
        return
    real_now = timezone.now()
    if run.next_tick_at is not None and run.next_tick_at > real_now:
        return  # a follow-up is already on its way
    run.next_tick_at = real_now + dt.timedelta(seconds=delay)
    tick.result.next_tick_in = delay
