"""Step 3 of a tick: dial due contacts within the campaign's limits, its window and the do-not-call list."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import F, Q

from calls import states
from calls.models import CallSession
from campaigns.dialers import Dialer
from campaigns.models import Dial, DoNotCall, RunContact
from campaigns.scheduler.handoff import request_for
from campaigns.scheduler.state import (
    RATE_WINDOW,
    SCAN_BATCH,
    SCAN_LIMIT,
    Tick,
)
from campaigns.scheduler.windows import contact_zone, window_is_open, window_next_opening
from crm.models import User


def dial_due(tick: Tick, dialer: Dialer) -> None:
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
    tick.handoffs.extend(request_for(tick, dial, dialer) for dial in dials)


def _claim(tick: Tick, target: RunContact, *, agents: list[User], source: str) -> Dial | None:
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


def _skip_dnc(tick: Tick, target: RunContact, *, listed: bool) -> None:
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


def _postpone(tick: Tick, target: RunContact, local: dt.datetime) -> None:
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
