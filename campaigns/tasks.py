"""Celery tasks of the campaigns app. Each takes ids, calls one service and is safe to run twice."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import requests
from celery import shared_task
from django.db import OperationalError
from django.db.models import Q
from django.utils import timezone

from campaigns import scheduler
from campaigns.dialers import simulator
from campaigns.models import Dial, Run

logger = logging.getLogger(__name__)

# Transient: the database blinked. The tick is idempotent, so running it again is always safe.
TRANSIENT_ERRORS = (OperationalError, ConnectionError, TimeoutError)


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=1, retry_backoff_max=30, max_retries=10)
def run_tick(run_id: int) -> dict[str, Any]:
    """One scheduler tick of a run; queues its own follow-up while the run needs one."""
    result = scheduler.run_tick(run_id=run_id)
    if result.next_tick_in is not None:
        try:
            run_tick.apply_async((run_id,), countdown=result.next_tick_in)
        except Exception as exc:  # broker errors have no common base class; beat's safety net picks the run up
            logger.warning("could not queue the next tick of run %s (beat will): %s", run_id, exc)
    return {
        "run": run_id,
        "state": result.state,
        "dialed": result.dialed,
        "reconciled": result.reconciled,
        "next_tick_in": result.next_tick_in,
    }


def tick_enqueue(*, run_id: int) -> bool:
    """Queue a tick now. If the broker is down the run's rows are unchanged and beat's safety net ticks it."""
    try:
        run_tick.delay(run_id)
    except Exception as exc:  # kombu, redis-py and amqp errors share no base class
        logger.warning("could not queue a tick of run %s (beat will): %s", run_id, exc)
        return False
    return True


def tick_on_session_end(*, session_id: uuid.UUID) -> None:
    """A campaign call ended: tick its run now rather than at the next scheduled tick (calls/services.py hook).

    Only an accelerator: ticks reconcile every dial from its session's status whatever happens here.
    """
    try:
        run_id = (
            Dial.objects.filter(session_id=session_id, finished_at__isnull=True)
            .values_list("run_id", flat=True)
            .first()
        )
    except OperationalError as exc:  # the event is stored; the run's next tick reconciles the dial anyway
        logger.warning("could not look up the run of session %s: %s", session_id, exc)
        return
    if run_id is not None:
        tick_enqueue(run_id=run_id)


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30, max_retries=3)
def tick_active_runs() -> int:
    """Beat's safety net: tick every run whose chain of ticks looks dead (a lost message, a killed worker).

    Running runs, and paused or canceled runs with calls still in flight (they are reconciled).
    """
    stale = timezone.now() - timedelta(seconds=5)
    runs = Run.objects.filter(
        Q(state=Run.State.RUNNING) | Q(state__in=[Run.State.PAUSED, Run.State.CANCELED], dialing__gt=0)
    ).filter(Q(next_tick_at__isnull=True) | Q(next_tick_at__lt=stale))
    queued = 0
    for run_id in runs.values_list("pk", flat=True):
        queued += tick_enqueue(run_id=run_id)
    return queued


SIMULATOR_TRANSIENT_ERRORS = (OperationalError, ConnectionError, TimeoutError, requests.RequestException)


@shared_task(
    acks_late=True,
    autoretry_for=SIMULATOR_TRANSIENT_ERRORS,
    retry_backoff=1,
    retry_backoff_max=10,
    retry_jitter=True,
    max_retries=6,
)
def simulate_call(plan: dict[str, Any], step: str) -> str:
    """The simulator's stand-in voice agent plays one call from ``step`` (see campaigns/dialers/simulator.py);
    a long wait (ringing, talking) is a follow-up task with a countdown, so a worker is never held by it."""
    call = simulator.CallPlan(**plan)
    try:
        following = simulator.simulate_call(plan=call, step=step)
    except simulator.SimulatorHttpError as exc:
        # Callbook refused (the session is gone, not the simulator's to report...): nothing a retry would change.
        logger.warning("simulated call %s stopped: %s", call.session_id, exc)
        return "refused"
    if following is None:
        return "done"
    simulate_call.apply_async((plan, following[0]), countdown=following[1])
    return f"next: {following[0]} in {following[1]:g} s"
