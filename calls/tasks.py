"""Celery tasks of the calls app. Each takes ids (or nothing), calls one service and is safe to run twice."""

from __future__ import annotations

import logging
import uuid

from celery import Task, shared_task
from django.db import OperationalError

from calls import ingest, maintenance
from calls.models import Recording

logger = logging.getLogger(__name__)

# Transient: the database, the storage or the speech-to-text server blinked. Anything else is a property of
# the file and is recorded as its failure reason instead of retried.
TRANSIENT_ERRORS = (OperationalError, ConnectionError, TimeoutError, ingest.StorageUnavailable)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def ingest_session(self: Task[[str], str], session_id: str) -> str:
    """Ingest the recording and transcript of one session; returns the recording's resulting status."""
    parsed = uuid.UUID(session_id)
    status = ingest.session_ingest(session_id=parsed)
    if status == Recording.Status.PROCESSING:
        wait = ingest.claim_expires_in(session_id=parsed)
        if wait is not None:
            # Another delivery holds the claim. Alive, it finishes and this retry finds the work done; dead (this
            # is its message, redelivered after its process was killed), the retry takes the claim over once
            # the lease has run out. Returning now would leave the recording "processing" until
            # retry_failed_ingests noticed.
            raise self.retry(countdown=wait + 1)
    return status


def ingest_enqueue(*, session_id: uuid.UUID) -> bool:
    """Queue an ingest. If the broker is down the recording stays ``pending`` in the database, where
    retry_failed_ingests finds it: nothing is lost, and the request that triggered it still succeeds."""
    try:
        ingest_session.delay(str(session_id))
    except Exception as exc:  # broker errors come from kombu, redis-py or amqp, with no common base class
        logger.warning("could not queue ingest of %s (will be retried from the database): %s", session_id, exc)
        return False
    return True


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30, max_retries=3)
def sweep_orphans() -> str:
    return maintenance.orphans_sweep().summary()


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30, max_retries=3)
def expire_stale_sessions() -> int:
    return maintenance.sessions_expire_stale()


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30, max_retries=3)
def retry_failed_ingests() -> int:
    return maintenance.ingests_retry()


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30, max_retries=3)
def apply_recording_retention() -> int:
    return maintenance.recordings_apply_retention()
