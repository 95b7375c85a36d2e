"""Handing committed dials to the dialer backend, outside any transaction, and recovering lost hand-offs."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from calls import states
from calls.services import EventInput, call_event_record
from campaigns.dialers import Dialer, DialerError, DialRequest
from campaigns.models import Dial, Run, RunLog
from campaigns.scheduler.outcomes import check_breaker, settle
from campaigns.scheduler.state import (
    COUNTER_FIELDS,
    MAX_DISPATCH_ATTEMPTS,
    Tick,
)

logger = logging.getLogger(__name__)


def recover_handoffs(tick: Tick, dialer: Dialer | None) -> None:
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
            settle(tick, dial, session)
            continue
        claimed = Dial.objects.filter(
            pk=dial.pk, sent_at__isnull=True, dispatch_claimed_at=dial.dispatch_claimed_at
        ).update(dispatch_claimed_at=now, dispatch_attempts=F("dispatch_attempts") + 1)
        if not claimed:
            continue
        dial.dispatch_attempts += 1
        tick.result.redispatched += 1
        tick.handoffs.append(request_for(tick, dial, dialer))
        contact = dial.target.contact
        tick.log(
            "redispatched",
            f"{contact.name} ({contact.phone}): the hand-off of this call to the voice agent did not complete "
            f"(worker restart?); handing it over again under the same session id.",
            level=RunLog.Level.WARNING,
            dial=dial.pk,
            session=str(dial.session_id),
        )


def _public_url(path: str) -> str:
    return str(settings.CALLBOOK_PUBLIC_URL).rstrip("/") + path


def request_for(tick: Tick, dial: Dial, dialer: Dialer | None) -> DialRequest:
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


def hand_off(tick: Tick, dialer: Dialer | None) -> None:
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
        fail_handoffs(tick, failures)


def fail_handoffs(tick: Tick, failures: list[tuple[DialRequest, str]]) -> None:
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
        again = Tick(run=run, campaign=run.campaign, now=tick.now, result=tick.result)
        failed_ids = [request.dial_id for request, _ in failures]
        for dial in Dial.objects.filter(pk__in=failed_ids, finished_at__isnull=True).select_related(
            "session", "target", "target__contact"
        ):
            settle(again, dial, dial.session)
        check_breaker(again)
        RunLog.objects.bulk_create(again.logs)
        run.save(update_fields=COUNTER_FIELDS)
        tick.result.state = run.state
