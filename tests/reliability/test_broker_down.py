"""Redis goes away: Callbook keeps answering, and the work it could not queue is done when Redis returns.

Two outages, each on a Redis of the test's own that is killed and comes back empty (no persistence), as a
restarted Redis without a volume does:
- the broker alone: reads, session creation, events and uploads still succeed (an upload is stored, its ingest
  recorded as pending), pages render, and an upload waits a bounded time on a Redis that hangs rather than
  refuses; the ingests that were queued in Redis when it died and the one that could not be queued are all done
  once Redis is back, by beat's ``retry_failed_ingests``: nothing lived only in Redis;
- the Redis that also holds the cache (``REDIS_URL``), as docker compose deploys it: signing in, token
  authentication and signed webhooks must not depend on the cache answering.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from calls.models import CallEvent, CallSession, Recording
from calls.signatures import SIGNATURE_HEADER, signature_header
from tests.factories import TEST_PASSWORD, UserFactory, make_integration, make_token
from tests.reliability.conftest import (
    PrivateRedis,
    Response,
    Stack,
    fetch,
    needs_network_broker,
    session_cookie,
    tone_wav,
    wait_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

# An answer that waited on the dead Redis longer than this was a hung request, whatever it said in the end.
PROMPT = 10.0
SECRET = "whsec-reliability"


def _upload(stack: Stack, key: str, session_id: str, audio: bytes) -> Response:
    return fetch(
        stack.port, "PUT", f"/api/crm/sessions/{session_id}/recording", token=key, body=audio, content_type="audio/wav"
    )


def _create(stack: Stack, key: str, external_id: str) -> Response:
    body = {"source": "load", "external_id": external_id}
    return fetch(stack.port, "POST", "/api/crm/sessions/", token=key, json_body=body)


def _queued_ingests(redis: Any, queue: str) -> list[str]:
    """The session ids of the ingest messages waiting in ``queue`` (beat's own jobs queue up beside them)."""
    headers = [json.loads(message)["headers"] for message in redis.lrange(queue, 0, -1)]
    return [h["argsrepr"] for h in headers if h["task"] == "calls.tasks.ingest_session"]


@pytest.mark.worker
@needs_network_broker
def test_it_keeps_answering_while_the_broker_is_down_and_does_the_missed_work_when_it_returns(
    stack: Stack, recordings_root: Path, private_redis: PrivateRedis
):
    private_redis.start()
    stack.env |= {
        "CELERY_BROKER_URL": private_redis.url(),
        "INGEST_PENDING_GRACE_SECONDS": "3",
        "RETRY_FAILED_INGESTS_EVERY": "1",
    }
    agent = UserFactory.create(username="broker-agent")
    _, key = make_token(agent)
    cookie = session_cookie(agent)
    # One web process: the upload during the hang then goes through the connection the first upload left in its
    # pool, the slow path (a fresh connection gives up after one socket timeout).
    stack.start_web(workers=1)
    stack.start_beat()
    # Before the outage: an upload whose ingest is queued, with no worker running yet to take it.
    first = _create(stack, key, "b1")
    first_id, first_audio = first.json()["id"], tone_wav(frequency=500)
    assert _upload(stack, key, first_id, first_audio).status == 201
    assert _queued_ingests(private_redis.client(), stack.queue) == [repr((first_id,))]

    # First a Redis that hangs instead of refusing: the upload waits on it a bounded time, not forever.
    frozen = _create(stack, key, "b0")
    frozen_id, frozen_audio = frozen.json()["id"], tone_wav(frequency=300)
    private_redis.freeze()
    frozen_upload = _upload(stack, key, frozen_id, frozen_audio)
    private_redis.freeze(False)
    assert (frozen_upload.status, frozen_upload.json()["status"]) == (201, "pending")
    assert frozen_upload.elapsed < PROMPT

    private_redis.kill()  # then a dead one, with the queued ingests

    created = _create(stack, key, "b2")
    assert created.status == 201, created.text
    second_id, second_audio = created.json()["id"], tone_wav(frequency=700)
    answers = {
        "create": created,
        "event": fetch(
            stack.port, "POST", f"/api/crm/sessions/{second_id}/events/", token=key, json_body={"type": "answered"}
        ),
        "upload": _upload(stack, key, second_id, second_audio),
        "list": fetch(stack.port, "GET", "/api/crm/sessions/", token=key),
        "detail": fetch(stack.port, "GET", f"/api/crm/sessions/{first_id}", token=key),
        "readyz": fetch(stack.port, "GET", "/readyz"),
        **{page: fetch(stack.port, "GET", page, cookie=cookie) for page in ("/", "/calls/", f"/calls/{first_id}/")},
    }
    statuses = {name: answer.status for name, answer in answers.items()}
    assert statuses == {
        "create": 201,
        "event": 201,
        "upload": 201,
        "list": 200,
        "detail": 200,
        "readyz": 503,
        "/": 200,
        "/calls/": 200,
        f"/calls/{first_id}/": 200,
    }
    slow = {name: round(answer.elapsed, 1) for name, answer in answers.items() if answer.elapsed > PROMPT}
    assert slow == {}, f"answers that waited on the dead broker: {slow}"
    assert answers["readyz"].json()["failed"] == ["broker"]
    assert answers["upload"].json()["status"] == "pending"
    assert (recordings_root / "sessions" / second_id / "recording.wav").read_bytes() == second_audio
    assert answers["detail"].json()["recording"]["status"] == "pending"

    # A worker starts while Redis is still down (it keeps trying), then Redis comes back, empty.
    worker = stack.start_worker(wait=False)
    private_redis.start()
    stack.wait_worker_ready(worker)

    expected = {
        uuid.UUID(first_id): hashlib.sha256(first_audio).hexdigest(),
        uuid.UUID(frozen_id): hashlib.sha256(frozen_audio).hexdigest(),
        uuid.UUID(second_id): hashlib.sha256(second_audio).hexdigest(),
    }

    def ingested() -> dict[uuid.UUID, str] | None:
        done = Recording.objects.filter(session_id__in=list(expected), status=Recording.Status.AVAILABLE)
        rows = dict(done.values_list("session_id", "sha256"))
        return rows if len(rows) == len(expected) else None

    assert wait_until(ingested, timeout=120, what="every missed ingest to complete", interval=0.5) == expected
    # One claim each: re-queued ingests that found the work done did nothing.
    assert set(Recording.objects.filter(session_id__in=list(expected)).values_list("attempts", flat=True)) == {1}
    assert CallSession.objects.get(pk=second_id).status == "in_progress"
    assert CallEvent.objects.filter(session_id=second_id, type="answered").count() == 1


def _sign_in(stack: Stack, username: str) -> Response:
    """The login form, as a browser fills it in: GET for the CSRF cookie and token, then POST."""
    form = fetch(stack.port, "GET", "/accounts/login/")
    assert form.status == 200, form.text[:300]
    csrf_cookie = re.search(r"csrftoken=([^;]+)", form.headers.get("set-cookie", ""))
    csrf_field = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert csrf_cookie is not None
    assert csrf_field is not None
    body = f"csrfmiddlewaretoken={csrf_field[1]}&username={username}&password={TEST_PASSWORD}".encode()
    return fetch(
        stack.port,
        "POST",
        "/accounts/login/",
        body=body,
        content_type="application/x-www-form-urlencoded",
        headers={"Cookie": f"csrftoken={csrf_cookie[1]}", "Referer": f"http://127.0.0.1:{stack.port}/accounts/login/"},
    )


def test_it_keeps_signing_in_and_authenticating_while_the_redis_holding_the_cache_is_down(
    stack: Stack, private_redis: PrivateRedis
):
    private_redis.start()
    stack.env["REDIS_URL"] = private_redis.url(2)
    agent = UserFactory.create(username="cache-agent")
    _, key = make_token(agent)
    _, integration_key = make_integration("pipecat-prod", owner=agent, signing_secret=SECRET)
    stack.start_web(workers=1)
    assert _sign_in(stack, "cache-agent").status == 302

    private_redis.kill()

    raw = json.dumps({"source": "pipecat-prod", "external_id": "c1", "type": "ringing"}).encode()
    signed = {SIGNATURE_HEADER: signature_header(secret=SECRET, body=raw)}

    def webhook() -> Response:
        return fetch(
            stack.port,
            "POST",
            "/api/crm/events/",
            token=integration_key,
            body=raw,
            content_type="application/json",
            headers=signed,
        )

    answers = {
        "sign-in": _sign_in(stack, "cache-agent"),
        "create": _create(stack, key, "c0"),
        "list": fetch(stack.port, "GET", "/api/crm/sessions/", token=key),
        # A voice agent that signs its webhooks: the replay check is kept in the cache.
        "webhook": webhook(),
        # The very same signed request again: still a replay, refused by the process that saw it (one here).
        "replay": webhook(),
    }
    statuses = {name: answer.status for name, answer in answers.items()}
    assert statuses == {"sign-in": 302, "create": 201, "list": 200, "webhook": 201, "replay": 401}, {
        name: answer.text[:200] for name, answer in answers.items()
    }
    slow = {name: round(answer.elapsed, 1) for name, answer in answers.items() if answer.elapsed > PROMPT}
    assert slow == {}, f"answers that waited on the dead cache: {slow}"
    assert CallEvent.objects.filter(session__source="pipecat-prod", session__external_id="c1").count() == 1
