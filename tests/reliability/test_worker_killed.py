"""A worker killed while it ingests a recording: the ingest is delivered again and completes, once.

The ingest under test is held mid-way by a recording whose file is a named pipe (``blocked_recording``): the
worker has claimed the recording (status ``processing``, ``attempts`` 1) and sits in ``open()``. It is then
killed with SIGKILL, the real bytes are put in place, and the ingest must end ``available`` with ``attempts``
2: the killed claim and the one that completed. No third claim means nothing was ingested twice.

Three ways the work comes back, each tested:
- a pool process dies (OOM killer, segfault in a decoder): the worker's main process sees it and, with
  ``task_reject_on_worker_lost``, puts the message back at once; the redelivered task finds the dead process's
  claim still inside its lease and retries itself when the lease runs out, instead of giving up;
- the whole worker dies (machine lost) on Redis: the message stays in Redis's unacknowledged set and is
  restored, once its visibility timeout has passed, by the next worker that starts (``CELERY_VISIBILITY_TIMEOUT``);
- the message itself is gone (the filesystem broker deletes a message when a worker reads it; Redis keeps it
  for an hour by default): beat's ``retry_failed_ingests`` re-queues a claim older than its lease.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from calls.models import Recording
from tests.factories import UserFactory
from tests.reliability.conftest import (
    PrivateRedis,
    Stack,
    blocked_recording,
    needs_network_broker,
    publish_ingest,
    recording_status,
    wait_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LEASE = 4  # seconds a claim is trusted (INGEST_CLAIM_LEASE_SECONDS) where nothing else re-queues; production: 900


def _completed_once(session_id: uuid.UUID) -> Recording:
    recording = wait_until(
        lambda: Recording.objects.filter(session_id=session_id, status=Recording.Status.AVAILABLE).first(),
        timeout=90,
        what=f"the ingest of {session_id} to complete (status now {recording_status(session_id)!r})",
        interval=0.2,
    )
    # The killed claim and the one that completed; a third would mean the recording was ingested twice.
    assert recording.attempts == 2
    assert recording.failure_reason == ""
    assert recording.duration_ms == 500
    assert recording.ingested_at is not None
    assert not recording.session.events.filter(type="recording_failed").exists()
    return recording


def test_it_redelivers_the_ingest_of_a_killed_pool_process_and_completes_it_once(stack: Stack, recordings_root: Path):
    # Longer than the ~10 s the worker waits before it declares a pool process lost (worker_lost_wait), so that
    # the redelivered task does find the dead process's claim still inside its lease.
    stack.env["INGEST_CLAIM_LEASE_SECONDS"] = "20"
    worker = stack.start_worker(pool="prefork", concurrency=1)
    blocked = blocked_recording(recordings_root, owner=UserFactory.create())

    task_id = publish_ingest(blocked.session_id, queue=stack.queue)
    wait_until(lambda: recording_status(blocked.session_id) == "processing", timeout=60, what="the claim")
    [pool_process] = worker.children()
    os.kill(pool_process, signal.SIGKILL)
    blocked.unblock()

    _completed_once(blocked.session_id)
    log = worker.tail(1_000_000)
    assert "WorkerLostError" in log
    # The redelivered task found the dead process's claim inside its lease and retried when it ran out.
    assert f"ingest_session[{task_id}] retry: Retry in" in log
    assert log.count(f"ingest_session[{task_id}] succeeded") == 1


@needs_network_broker
def test_it_redelivers_the_ingest_of_a_killed_worker_after_the_visibility_timeout(
    stack: Stack, recordings_root: Path, private_redis: PrivateRedis
):
    # A Redis of its own: a short visibility timeout makes a worker restore *every* overdue message of its Redis
    # database, other suites' long tasks included.
    visibility_timeout = 5
    private_redis.start()
    stack.env |= {
        "CELERY_BROKER_URL": private_redis.url(),
        "CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout),
        "INGEST_CLAIM_LEASE_SECONDS": str(LEASE),
    }
    worker = stack.start_worker()
    blocked = blocked_recording(recordings_root, owner=UserFactory.create())

    publish_ingest(blocked.session_id, queue=stack.queue, broker_url=private_redis.url())
    wait_until(lambda: recording_status(blocked.session_id) == "processing", timeout=60, what="the claim")
    stack.processes.kill(worker)
    blocked.unblock()

    redis = private_redis.client()
    # kombu keeps a delivered, unacknowledged message in the "unacked" hash, scored by delivery time.
    [(_, delivered_at)] = redis.zrange("unacked_index", 0, -1, withscores=True)
    assert redis.hlen("unacked") == 1
    # A starting worker restores the messages whose visibility timeout has passed (a running one sweeps every
    # ~100 s): waiting out the timeout is the behaviour under test, not a guess at timing.
    time.sleep(max(0.0, delivered_at + visibility_timeout + 0.5 - time.time()))
    stack.start_worker()

    _completed_once(blocked.session_id)
    assert redis.hlen("unacked") == 0


def test_it_requeues_from_the_database_an_ingest_whose_message_died_with_its_worker(
    stack: Stack, recordings_root: Path
):
    # Beat re-queues every second whatever is claimed for longer than the lease: it must exceed what the ingest
    # that takes over needs on a busy machine, or that live claim would be taken over in turn.
    stack.env |= {"INGEST_CLAIM_LEASE_SECONDS": "10", "RETRY_FAILED_INGESTS_EVERY": "1"}
    worker = stack.start_worker()
    blocked = blocked_recording(recordings_root, owner=UserFactory.create())

    publish_ingest(blocked.session_id, queue=stack.queue)
    wait_until(lambda: recording_status(blocked.session_id) == "processing", timeout=60, what="the claim")
    stack.processes.kill(worker)
    blocked.unblock()
    # Filesystem broker: the message was deleted when the worker read it. Redis: it is held unacknowledged for
    # the visibility timeout (an hour). Either way, only the database still knows about this ingest.
    stack.start_worker()
    stack.start_beat()

    _completed_once(blocked.session_id)
