"""Every process killed with SIGKILL under load, and started again: nothing acknowledged is lost.

Four API clients create sessions, post their events (with provider event ids) and upload their recordings,
against gunicorn and a Celery worker. Mid-way, the web server and the worker are killed with SIGKILL (no graceful
shutdown; whatever a process held in memory is gone) while the clients keep going, and started again. One ingest
is mid-way at the kill (its recording is a named pipe the worker's only pool process blocks on), and the ingests
of the uploads are queued behind it.

Afterwards, for everything the server acknowledged (a 200 or 201 that reached the client):
- every session is served, by id, with its external id;
- every event is stored, exactly once;
- every uploaded recording ends ``available`` with the uploaded bytes' sha256, and the interrupted ingest too.
What was in flight at the kill and never answered may or may not be stored: the client could not know, and
retries it (idempotently) in real life.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from calls.models import CallEvent, CallSession, Recording
from tests.factories import UserFactory, make_token
from tests.reliability.conftest import (
    Stack,
    blocked_recording,
    fetch,
    publish_ingest,
    recording_status,
    tone_wav,
    wait_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CLIENTS = 4
EVENTS = ("initiated", "ringing", "answered", "completed")


@dataclass
class Acknowledged:
    """What the server answered 200/201 for: that much is promised to the client."""

    sessions: dict[str, str] = field(default_factory=dict)  # session id -> external id
    events: set[tuple[str, str]] = field(default_factory=set)  # (session id, event id)
    recordings: dict[str, str] = field(default_factory=dict)  # session id -> sha256 of the uploaded bytes
    completed: set[str] = field(default_factory=set)  # sessions whose "completed" event was acknowledged
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client(port: int, key: str, number: int, acked: Acknowledged, stop: threading.Event) -> None:
    """One voice agent: a call after another, each created, reported event by event, and its audio uploaded."""
    call = 0
    while not stop.is_set():
        call += 1
        external_id = f"restart-{number}-{call}"
        try:
            created = fetch(
                port, "POST", "/api/crm/sessions/", token=key, json_body={"source": "load", "external_id": external_id}
            )
            if created.status not in (200, 201):
                continue
            session_id = created.json()["id"]
            with acked.lock:
                acked.sessions[session_id] = external_id
            for position, event_type in enumerate(EVENTS):
                event_id = f"{external_id}-e{position}"
                answer = fetch(
                    port,
                    "POST",
                    f"/api/crm/sessions/{session_id}/events/",
                    token=key,
                    json_body={"type": event_type, "event_id": event_id},
                )
                if answer.status not in (200, 201):
                    break
                with acked.lock:
                    acked.events.add((session_id, event_id))
                    if event_type == "completed":
                        acked.completed.add(session_id)
            audio = tone_wav(frequency=200 + (number * 1000 + call) % 3000)
            uploaded = fetch(
                port,
                "PUT",
                f"/api/crm/sessions/{session_id}/recording",
                token=key,
                body=audio,
                content_type="audio/wav",
            )
            if uploaded.status in (200, 201):
                with acked.lock:
                    acked.recordings[session_id] = hashlib.sha256(audio).hexdigest()
        except OSError:
            # The server is down (refused, reset mid-answer): nothing was promised. Try the next call.
            stop.wait(0.05)


def test_it_loses_nothing_it_acknowledged_when_every_process_is_killed_under_load(stack: Stack, recordings_root: Path):
    # Production's periods, shortened: beat re-queues, every second, ingests pending for 5 s or claimed for 15 s
    # (their messages were lost with the worker that had taken them, or are held unacknowledged by Redis). The
    # lease stays well above what one ingest takes on a busy machine, or a live claim would be taken over.
    stack.env |= {
        "INGEST_CLAIM_LEASE_SECONDS": "15",
        "INGEST_PENDING_GRACE_SECONDS": "5",
        "RETRY_FAILED_INGESTS_EVERY": "1",
    }
    agent = UserFactory.create(username="restart-agent")
    _, key = make_token(agent)
    web = stack.start_web()
    # One pool process, blocked on the pipe below: every upload's ingest is still waiting in the broker at the
    # kill (for Redis, the blocked one is delivered and unacknowledged; the others are queued).
    worker = stack.start_worker(pool="prefork", concurrency=1)
    blocked = blocked_recording(recordings_root, owner=agent)
    publish_ingest(blocked.session_id, queue=stack.queue)
    wait_until(lambda: recording_status(blocked.session_id) == "processing", timeout=60, what="the blocked claim")

    acked = Acknowledged()
    stop = threading.Event()
    clients = [
        threading.Thread(target=_client, args=(stack.port, key, n, acked, stop), daemon=True) for n in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    try:
        wait_until(lambda: len(acked.recordings) >= 8, timeout=120, what="8 acknowledged uploads", interval=0.05)
        before_kill = len(acked.sessions)
        stack.processes.kill(web)
        stack.processes.kill(worker)
        blocked.unblock()
        stack.start_web()
        stack.start_worker(pool="prefork", concurrency=2)
        # Only now: before the kill, its retry job would have handed the blocked claim (older than its lease)
        # to the worker's other process, which would have blocked on the pipe too.
        stack.start_beat()
        wait_until(lambda: len(acked.sessions) >= before_kill + 8, timeout=120, what="8 sessions after the restart")
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=60)

    served = {}
    for session_id in acked.sessions:
        answer = fetch(stack.port, "GET", f"/api/crm/sessions/{session_id}", token=key)
        assert answer.status == 200, (session_id, answer.status, answer.text[:300])
        served[session_id] = answer.json()["external_id"]
    assert served == acked.sessions

    stored = list(
        CallEvent.objects.filter(session_id__in=list(acked.sessions))
        .exclude(event_id="")
        .values_list("session_id", "event_id")
    )
    stored_pairs = [(str(session_id), event_id) for session_id, event_id in stored]
    assert acked.events <= set(stored_pairs), "an acknowledged event is missing"
    assert len(stored_pairs) == len(set(stored_pairs)), "an event was stored twice"
    statuses = dict(CallSession.objects.filter(pk__in=list(acked.completed)).values_list("pk", "status"))
    assert {str(pk) for pk, status in statuses.items() if status == "completed"} == acked.completed

    expected = {uuid.UUID(session_id): sha for session_id, sha in acked.recordings.items()}
    expected[blocked.session_id] = hashlib.sha256(blocked.audio).hexdigest()

    def all_ingested() -> dict[uuid.UUID, str] | None:
        rows = dict(
            Recording.objects.filter(session_id__in=list(expected), status=Recording.Status.AVAILABLE).values_list(
                "session_id", "sha256"
            )
        )
        return rows if len(rows) == len(expected) else None

    ingested = wait_until(
        all_ingested,
        timeout=180,
        what="every acknowledged recording to be ingested",
        interval=0.5,
    )
    assert ingested == expected
    # The interrupted ingest: the killed claim, then the one that completed it; nothing ingested twice.
    assert Recording.objects.get(session_id=blocked.session_id).attempts == 2
    assert not CallEvent.objects.filter(session_id__in=list(expected), type="recording_failed").exists()
