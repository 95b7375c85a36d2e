"""The scheduler's tick: everything a run does happens in ``run_tick``, one tick at a time per run.

A run's state is only in the database. A tick locks the Run row (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite
serialises writers anyway) and, in one transaction:

0. puts back to pending any contact marked dialing that has no dial in flight (cannot happen with the claim
   below, which commits claim, session and dial together; kept as a guard against hand edits);
1. reconciles the dials in flight from their sessions' statuses (a session that reached a terminal status, or a
   dial past ``campaign.max_call_seconds``, which counts as failed), updates the counters and schedules retries;
   dials whose hand-off to the dialer never completed (a worker killed after the commit) are handed off again,
   with the same session id;
2. evaluates the circuit breaker and pauses the run when it trips;
3. dials due contacts while calls in flight < ``max_concurrent_calls`` and dials of the last 60 s <
   ``max_calls_per_minute``: do-not-call numbers are skipped, contacts outside their calling window are postponed
   to its next opening; each contact is claimed with a conditional UPDATE (pending -> dialing), and its
   CallSession and Dial row are created in the same transaction, before any request leaves;
4. completes the run when no contact is waiting or being dialed.

After the commit it hands the new dials to the dialer backend (network I/O never happens under the lock) and
says when the next tick is due; the Celery task (campaigns/tasks.py) queues it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from calls import states
from calls.models import CallSession
from calls.services import EventInput, call_event_record
from campaigns.dialers import Dialer, DialerError, DialRequest
from campaigns.models import Campaign, Contact, Dial, DoNotCall, Run, RunContact, RunLog
from campaigns.runs import RunError, campaign_dialer, run_log_entry, run_transition
from crm.metrics import DIALS, SESSIONS_CREATED
from crm.models import User

logger = logging.getLogger(__name__)

RATE_WINDOW = dt.timedelta(seconds=60)
# Hand-offs that fail this many times fail the dial (and the contact's retry rules apply).
MAX_DISPATCH_ATTEMPTS = 3
# Longest a waiting run sleeps between ticks when nothing is due: beat's safety net is the backstop anyway.
IDLE_TICK_MAX_SECONDS = 60.0
# Candidates read per query while looking for contacts to dial; a tick examines at most SCAN_LIMIT of them
# (skipped and postponed contacts included), so one tick stays short however the list is made up.
SCAN_BATCH = 200
SCAN_LIMIT = 2000

COUNTER_FIELDS = [
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
    "agent_cursor",
    "next_tick_at",
    "updated_at",
]

# What a terminal session status means for the dial.
OUTCOME_FOR_STATUS: dict[str, str] = {
    states.Status.COMPLETED: Dial.Outcome.COMPLETED,
    states.Status.NO_ANSWER: Dial.Outcome.NO_ANSWER,
    states.Status.BUSY: Dial.Outcome.BUSY,
    states.Status.FAILED: Dial.Outcome.FAILED,
    states.Status.CANCELED: Dial.Outcome.CANCELED,
    states.Status.ABANDONED: Dial.Outcome.FAILED,
}
OUTCOME_LABELS = {
    Dial.Outcome.COMPLETED: "completed",
    Dial.Outcome.NO_ANSWER: "no answer",
    Dial.Outcome.BUSY: "busy",
    Dial.Outcome.FAILED: "failed",
    Dial.Outcome.CANCELED: "canceled",
}


@dataclass
class TickResult:
    run_id: int
    state: str = ""
    reconciled: int = 0
    dialed: int = 0
    skipped_dnc: int = 0
    postponed: int = 0
    retries: int = 0
    redispatched: int = 0
    dispatch_failed: int = 0
    breaker_tripped: bool = False
    completed: bool = False
    # Seconds until the follow-up tick the caller must queue; None: no follow-up (or one is already scheduled).
    next_tick_in: float | None = None
    session_ids: list[uuid.UUID] = field(default_factory=list)


# --- Calling windows ---------------------------------------------------------------------------------------


def contact_zone(*, contact: Contact, campaign: Campaign) -> ZoneInfo:
    """The contact's timezone, else the campaign's default, else UTC (a bad name never stops a run)."""
    for name in (contact.timezone, campaign.default_timezone, "UTC"):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _day_allowed(campaign: Campaign, day: dt.date) -> bool:
    days = campaign.window_days or []
    return not days or day.isoweekday() in days


def window_is_open(*, campaign: Campaign, local: dt.datetime) -> bool:
    """Whether ``local`` (aware, in the contact's zone) is inside the campaign's calling window.

    A window that crosses midnight (end < start) belongs to the day it opens: Friday 22:00-02:00 includes
    Saturday 01:00, and ``window_days`` names Friday.
    """
    start, end, now = campaign.window_start, campaign.window_end, local.time()
    if start < end:
        return _day_allowed(campaign, local.date()) and start <= now < end
    if now >= start:
        return _day_allowed(campaign, local.date())
    return now < end and _day_allowed(campaign, local.date() - dt.timedelta(days=1))


def window_next_opening(*, campaign: Campaign, local: dt.datetime) -> dt.datetime:
    """The next time (aware, in ``local``'s zone) the window opens after ``local``."""
    zone = local.tzinfo
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if not _day_allowed(campaign, day):
            continue
        opening = dt.datetime.combine(day, campaign.window_start, tzinfo=zone)
        if opening > local:
            return opening
    # Only reachable with window_days naming no real weekday; the campaign form refuses that.
    return local + dt.timedelta(days=1)


# --- The tick ----------------------------------------------------------------------------------------------


@dataclass
class _Tick:
    run: Run
    campaign: Campaign
    now: dt.datetime
    result: TickResult
    logs: list[RunLog] = field(default_factory=list)
    handoffs: list[DialRequest] = field(default_factory=list)
    backend: Dialer | None = None

    def log(self, kind: str, message: str, *, level: str = RunLog.Level.INFO, **data: Any) -> None:
        self.logs.append(run_log_entry(run=self.run, kind=kind, message=message, at=self.now, level=level, data=data))


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
        tick = _Tick(run=run, campaign=run.campaign, now=now, result=result)
        _repair_orphan_claims(tick)
        _reconcile(tick)
        if tick.result.reconciled:
            _check_breaker(tick)
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
                _recover_handoffs(tick, backend)
                _dial_due(tick, backend)
        elif run.state == Run.State.PAUSED:
            # A paused run still owes its committed dials their hand-off: they are calls already under way.
            tick.backend = dialer or _backend_or_none(tick.campaign)
            _recover_handoffs(tick, tick.backend)
        elif run.state == Run.State.CANCELED:
            _recover_handoffs(tick, None)  # never handed over now: they end as canceled
        _finish_if_done(tick)
        _schedule_follow_up(tick)
        RunLog.objects.bulk_create(tick.logs)
        run.save(update_fields=COUNTER_FIELDS)
        result.state = run.state
        if result.dialed:
            dialed = result.dialed
            transaction.on_commit(lambda: SESSIONS_CREATED.labels(origin="campaign").inc(dialed))
            transaction.on_commit(lambda: DIALS.labels(outcome="started").inc(dialed))
    if tick.handoffs:
        _hand_off(tick, tick.backend)
    return result


def _backend_or_none(campaign: Campaign) -> Dialer | None:
    try:
        return campaign_dialer(campaign=campaign)
    except RunError:
        return None


def _repair_orphan_claims(tick: _Tick) -> None:
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


def _reconcile(tick: _Tick) -> None:
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
        _settle(tick, dial, session)


def _settle(tick: _Tick, dial: Dial, session: CallSession) -> None:
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


def _check_breaker(tick: _Tick) -> None:
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


def _recover_handoffs(tick: _Tick, dialer: Dialer | None) -> None:
    """Dials committed but never accepted by the dialer (a worker died between commit and hand-off)."""
    run, now = tick.run, tick.now
    cutoff = now - dt.timedelta(seconds=settings.CAMPAIGN_DISPATCH_GRACE_SECONDS)
    stuck = list(
        Dial.objects.filter(run=run, finished_at__isnull=True, sent_at__isnull=True, dispatch_claimed_at__lt=cutoff)
        .select_related("session", "target", "target__contact")
        .order_by("id")
    )
    for dial in stuck:
        if dial.session.status != states.Status.QUEUED or dial.session.last_event_at is not None:
            # The voice agent reported on it: the hand-off did happen, only its acknowledgement was lost.
            Dial.objects.filter(pk=dial.pk, sent_at__isnull=True).update(sent_at=dial.dispatch_claimed_at)
            continue
        give_up = run.state == Run.State.CANCELED or dial.dispatch_attempts >= MAX_DISPATCH_ATTEMPTS or dialer is None
        if give_up:
            reason = (
                "The run was canceled before the call was handed to the voice agent"
                if run.state == Run.State.CANCELED
                else f"The call could not be handed to the voice agent after {dial.dispatch_attempts} attempt(s)"
            )
            session = call_event_record(
                session_id=dial.session_id,
                event=EventInput(
                    type=states.EventType.CANCELED if run.state == Run.State.CANCELED else states.EventType.FAILED,
                    event_id=f"callbook-handoff-{dial.pk}",
                    occurred_at=now,
                    data={"reason": reason, "by": "campaign scheduler"},
                ),
            ).session
            _settle(tick, dial, session)
            continue
        claimed = Dial.objects.filter(
            pk=dial.pk, sent_at__isnull=True, dispatch_claimed_at=dial.dispatch_claimed_at
        ).update(dispatch_claimed_at=now, dispatch_attempts=F("dispatch_attempts") + 1)
        if not claimed:
            continue
        dial.dispatch_attempts += 1
        tick.result.redispatched += 1
        tick.handoffs.append(_request_for(tick, dial, dialer))
        contact = dial.target.contact
        tick.log(
            "redispatched",
            f"{contact.name} ({contact.phone}): the hand-off of this call to the voice agent did not complete "
            f"(worker restart?); handing it over again under the same session id.",
            level=RunLog.Level.WARNING,
            dial=dial.pk,
            session=str(dial.session_id),
        )


def _dial_due(tick: _Tick, dialer: Dialer) -> None:
    run, campaign, now = tick.run, tick.campaign, tick.now
    in_flight = Dial.objects.filter(run=run, finished_at__isnull=True).count()
    recent = Dial.objects.filter(run=run, dialed_at__gt=now - RATE_WINDOW).count()
    budget = min(
        campaign.max_concurrent_calls - in_flight,
        campaign.max_calls_per_minute - recent,
        settings.CAMPAIGN_MAX_DIALS_PER_TICK,
    )
    if budget <= 0:
        return
    agents = list(User.objects.filter(campaigns_assigned=campaign, is_active=True).order_by("pk"))
    source = dialer.source_name()
    dials: list[Dial] = []
    examined = 0
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    while len(dials) < budget and examined < SCAN_LIMIT:
        batch = list(
            RunContact.objects.filter(run=run, state=RunContact.State.PENDING)
            .filter(due)
            .select_related("contact")
            .order_by("position")[: min(SCAN_BATCH, (budget - len(dials)) * 4 + 10)]
        )
        if not batch:
            break
        examined += len(batch)
        phones = {target.contact.phone for target in batch}
        blocked = set(
            DoNotCall.objects.filter(team_id=campaign.team_id, phone__in=phones).values_list("phone", flat=True)
        )
        for target in batch:
            if len(dials) >= budget:
                break
            contact = target.contact
            if contact.do_not_call or contact.phone in blocked:
                _skip_dnc(tick, target, listed=contact.phone in blocked)
                continue
            local = now.astimezone(contact_zone(contact=contact, campaign=campaign))
            if not window_is_open(campaign=campaign, local=local):
                _postpone(tick, target, local)
                continue
            dial = _claim(tick, target, agents=agents, source=source)
            if dial is not None:
                dials.append(dial)
    if not dials:
        return
    # The sessions exist (in this transaction, committed with the claims) before any request leaves.
    CallSession.objects.bulk_create([dial.session for dial in dials])
    Dial.objects.bulk_create(dials)
    tick.result.dialed += len(dials)
    tick.result.session_ids.extend(dial.session.pk for dial in dials)
    tick.handoffs.extend(_request_for(tick, dial, dialer) for dial in dials)


def _claim(tick: _Tick, target: RunContact, *, agents: list[User], source: str) -> Dial | None:
    """Claim ``target`` (pending -> dialing) and build its session and dial rows; None if another tick has it."""
    run, campaign, now = tick.run, tick.campaign, tick.now
    claimed = RunContact.objects.filter(pk=target.pk, state=RunContact.State.PENDING).update(
        state=RunContact.State.DIALING,
        attempts=F("attempts") + 1,
        next_attempt_at=None,
        waiting_for_window=False,
        updated_at=now,
    )
    if not claimed:
        return None  # the conditional update is the only claim that counts
    target.attempts += 1
    run.queued = max(0, run.queued - 1)
    run.dialing += 1
    run.dials += 1
    if target.waiting_for_window:
        run.outside_window = max(0, run.outside_window - 1)
    owner = agents[run.agent_cursor % len(agents)] if agents else campaign.manager
    run.agent_cursor += 1
    contact = target.contact
    session = CallSession(
        source=source,
        owner=owner,
        team_id=campaign.team_id,
        campaign=campaign,
        contact=contact,
        direction=CallSession.Direction.OUTBOUND,
        status=states.Status.QUEUED,
        origin=CallSession.Origin.CAMPAIGN,
        from_number=campaign.caller_id,
        to_number=contact.phone,
        metadata={"run": run.pk, "attempt": target.attempts},
    )
    tick.log(
        "dialed",
        f"Dialing {contact.name} ({contact.phone}), attempt {target.attempts}, for "
        f"{owner.get_username() if owner else 'nobody'}.",
        contact=contact.pk,
        session=str(session.pk),
        attempt=target.attempts,
    )
    return Dial(
        run=run,
        target=target,
        session=session,
        attempt=target.attempts,
        dialed_at=now,
        dispatch_attempts=1,
        dispatch_claimed_at=now,
    )


def _skip_dnc(tick: _Tick, target: RunContact, *, listed: bool) -> None:
    why = "the team's do-not-call list" if listed else "its do-not-call flag"
    skipped = RunContact.objects.filter(pk=target.pk, state=RunContact.State.PENDING).update(
        state=RunContact.State.SKIPPED,
        last_outcome="dnc",
        outcome_reason=f"Do not call: on {why}",
        waiting_for_window=False,
        next_attempt_at=None,
        updated_at=tick.now,
    )
    if not skipped:
        return
    tick.run.skipped_dnc += 1
    tick.run.queued = max(0, tick.run.queued - 1)
    if target.waiting_for_window:
        tick.run.outside_window = max(0, tick.run.outside_window - 1)
    tick.result.skipped_dnc += 1
    contact = target.contact
    tick.log("skipped_dnc", f"Skipped {contact.name} ({contact.phone}): on {why}.", contact=contact.pk)


def _postpone(tick: _Tick, target: RunContact, local: dt.datetime) -> None:
    opening = window_next_opening(campaign=tick.campaign, local=local)
    opening_utc = opening.astimezone(dt.UTC)
    updated = RunContact.objects.filter(pk=target.pk, state=RunContact.State.PENDING).update(
        next_attempt_at=opening_utc, waiting_for_window=True, updated_at=tick.now
    )
    if not updated:
        return
    if not target.waiting_for_window:
        tick.run.outside_window += 1
    tick.result.postponed += 1
    contact = target.contact
    zone = str(local.tzinfo)
    tick.log(
        "outside_window",
        f"{contact.name} ({contact.phone}) is outside the calling window (local time {local:%a %H:%M} {zone}): "
        f"postponed until {opening:%a %Y-%m-%d %H:%M} {zone}.",
        contact=contact.pk,
        until=opening_utc.isoformat(),
        timezone=zone,
    )


def _finish_if_done(tick: _Tick) -> None:
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


def _schedule_follow_up(tick: _Tick) -> None:
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


# --- Hand-off ----------------------------------------------------------------------------------------------


def _public_url(path: str) -> str:
    return str(settings.CALLBOOK_PUBLIC_URL).rstrip("/") + path


def _request_for(tick: _Tick, dial: Dial, dialer: Dialer | None) -> DialRequest:
    contact = dial.target.contact
    session_id = dial.session.pk
    base = f"/api/crm/sessions/{session_id}"
    return DialRequest(
        session_id=session_id,
        dial_id=dial.pk,
        run_id=tick.run.pk,
        campaign_id=tick.campaign.pk,
        campaign_name=tick.campaign.name,
        attempt=dial.attempt,
        from_number=tick.campaign.caller_id,
        to_number=contact.phone,
        source=dial.session.source,
        max_call_seconds=tick.campaign.max_call_seconds,
        contact={
            "id": contact.pk,
            "name": contact.name,
            "company": contact.company,
            "email": contact.email,
            "phone": contact.phone,
            "timezone": contact.timezone,
            "custom_fields": contact.custom_fields,
        },
        settings=dialer.public_settings() if dialer is not None else {},
        session_url=_public_url(f"{base}/"),
        events_url=_public_url(f"{base}/events/"),
        recording_url=_public_url(f"{base}/recording/"),
        transcript_url=_public_url(f"{base}/transcript/"),
    )


def _hand_off(tick: _Tick, dialer: Dialer | None) -> None:
    """Give each committed dial to the backend, outside any transaction. A refusal fails that dial only."""
    sent: list[int] = []
    failures: list[tuple[DialRequest, str]] = []
    for request in tick.handoffs:
        if dialer is None:
            failures.append((request, "The campaign's dialer settings are invalid"))
            continue
        try:
            dialer.dial(request)
        except DialerError as exc:
            failures.append((request, exc.reason))
            logger.warning("dial %s (session %s) was refused: %s", request.dial_id, request.session_id, exc.reason)
        except Exception as exc:  # a backend bug must fail one dial, not leave the tick half done
            logger.exception("dialer %s crashed on dial %s", type(dialer).__name__, request.dial_id)
            failures.append((request, f"Dialer error: {type(exc).__name__}"))
        else:
            sent.append(request.dial_id)
    if sent:
        Dial.objects.filter(pk__in=sent, sent_at__isnull=True).update(sent_at=timezone.now())
    if failures:
        _fail_handoffs(tick, failures)


def _fail_handoffs(tick: _Tick, failures: list[tuple[DialRequest, str]]) -> None:
    """Record each refused hand-off as the session's failure, then settle those dials under the run lock."""
    for request, reason in failures:
        call_event_record(
            session_id=request.session_id,
            event=EventInput(
                type=states.EventType.FAILED,
                event_id=f"callbook-dialer-{request.dial_id}",
                data={"reason": f"Dialer: {reason}"[:255], "by": "campaign scheduler"},
            ),
        )
    tick.result.dispatch_failed += len(failures)
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("campaign").get(pk=tick.run.pk)
        again = _Tick(run=run, campaign=run.campaign, now=tick.now, result=tick.result)
        failed_ids = [request.dial_id for request, _ in failures]
        for dial in Dial.objects.filter(pk__in=failed_ids, finished_at__isnull=True).select_related(
            "session", "target", "target__contact"
        ):
            _settle(again, dial, dial.session)
        _check_breaker(again)
        RunLog.objects.bulk_create(again.logs)
        run.save(update_fields=COUNTER_FIELDS)
        tick.result.state = run.state
