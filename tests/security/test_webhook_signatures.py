"""Signed webhooks: an integration with a signing secret must sign every JSON write.

Wrong secret, another integration's secret, a tampered body, a stale or future timestamp, a malformed header and
a replay of a valid request all answer 401 with ``{"detail", "code": "invalid_signature"}`` and store nothing;
a valid signature (also among several while a secret is rotated) is accepted once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from calls.models import CallEvent, CallSession, Note, Source
from calls.signatures import SIGNATURE_HEADER, signature_compute, signature_header
from crm.models import User
from tests.factories import CallSessionFactory, make_integration

pytestmark = pytest.mark.django_db

SECRET = "whsec-" + "k" * 32


@pytest.fixture(autouse=True)
def _fresh_replay_cache(settings: Any) -> None:
    # Replays are remembered in the cache; a namespace per test keeps a signature of one test out of another's.
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"sig-{uuid.uuid4().hex}"}}


@pytest.fixture
def signing(alice: User) -> tuple[Source, APIClient]:
    source, key = make_integration("signed-agent", owner=alice, signing_secret=SECRET)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return source, client


@pytest.fixture
def session(signing: tuple[Source, APIClient], alice: User) -> CallSession:
    return CallSessionFactory.create(owner=alice, source=signing[0].name, external_id="known-call")


def now() -> int:
    return int(time.time())


def post(client: APIClient, url: str, raw: bytes, header: str | None, method: str = "post") -> Any:
    headers = {SIGNATURE_HEADER: header} if header is not None else {}
    return getattr(client, method)(url, raw, content_type="application/json", headers=headers)


def stored() -> tuple[int, int, int]:
    return CallSession.objects.count(), CallEvent.objects.count(), Note.objects.count()


Header = Callable[[bytes], str | None]

BAD_HEADERS: dict[str, Header] = {
    "missing": lambda raw: None,
    "empty": lambda raw: "",
    "wrong-secret": lambda raw: signature_header(secret="not-the-secret", body=raw),
    "tampered-body": lambda raw: signature_header(secret=SECRET, body=raw + b" "),
    "stale": lambda raw: signature_header(secret=SECRET, body=raw, timestamp=now() - 301),
    "very-stale": lambda raw: signature_header(secret=SECRET, body=raw, timestamp=0),
    # Well past five minutes: a whole second can tick between signing and checking.
    "future": lambda raw: signature_header(secret=SECRET, body=raw, timestamp=now() + 310),
    "far-future": lambda raw: f"t=99999999999,v1={signature_compute(secret=SECRET, timestamp=99999999999, body=raw)}",
    "garbage": lambda raw: "garbage",
    "no-timestamp": lambda raw: f"v1={signature_compute(secret=SECRET, timestamp=now(), body=raw)}",
    "no-digest": lambda raw: f"t={now()}",
    "empty-digest": lambda raw: f"t={now()},v1=",
    "negative-timestamp": lambda raw: f"t=-{now()},v1={signature_compute(secret=SECRET, timestamp=now(), body=raw)}",
    "float-timestamp": lambda raw: f"t={now()}.5,v1={signature_compute(secret=SECRET, timestamp=now(), body=raw)}",
    "timestamp-in-other-digits": lambda raw: f"t={'²' * 10},v1=00",
    "timestamp-of-5000-digits": lambda raw: f"t={'9' * 5000},v1=00",
    "digest-not-hex": lambda raw: f"t={now()},v1=zz{'0' * 62}",
    "digest-of-another-timestamp": lambda raw: (
        f"t={now()},v1={signature_compute(secret=SECRET, timestamp=now() - 10, body=raw)}"
    ),
    "v0-scheme": lambda raw: f"t={now()},v0={signature_compute(secret=SECRET, timestamp=now(), body=raw)}",
    "10kb-header": lambda raw: f"t={now()},v1={'a' * 10_240}",
    "many-digests": lambda raw: f"t={now()}," + ",".join(f"v1={n:064x}" for n in range(500)),
}


@pytest.mark.parametrize("label", list(BAD_HEADERS))
def test_it_refuses_a_webhook_without_a_valid_signature_and_stores_nothing(signing, label: str):
    _, client = signing
    raw = json.dumps({"external_id": f"call-{label}", "type": "ringing"}).encode()
    response = post(client, "/api/crm/events/", raw, BAD_HEADERS[label](raw))
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == "invalid_signature"
    assert body["detail"]
    assert stored() == (0, 0, 0)


@pytest.mark.parametrize("label", ["wrong-secret", "stale", "future", "garbage", "timestamp-in-other-digits"])
@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "events/", {"type": "answered"}),
        ("post", "notes/", {"body": "signed note"}),
        ("patch", "", {"end_reason": "signed"}),
    ],
)
def test_it_refuses_every_unsigned_json_write_of_a_signing_integration(signing, session, label, method, path, payload):
    _, client = signing
    before = stored()
    raw = json.dumps(payload).encode()
    response = post(client, f"/api/crm/sessions/{session.pk}/{path}", raw, BAD_HEADERS[label](raw), method=method)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "invalid_signature"
    assert stored() == before
    session.refresh_from_db()
    assert session.end_reason == ""


def test_it_accepts_a_valid_signature_once_and_refuses_its_replay(signing):
    _, client = signing
    raw = json.dumps({"external_id": "call-replayed", "type": "ringing"}).encode()
    header = signature_header(secret=SECRET, body=raw)
    assert post(client, "/api/crm/events/", raw, header).status_code == 201
    replay = post(client, "/api/crm/events/", raw, header)
    assert replay.status_code == 401
    assert replay.json() == {
        "detail": "This signed request was already received: replays are refused.",
        "code": "invalid_signature",
    }
    assert stored() == (1, 1, 0)


def test_it_refuses_a_replay_sent_to_another_endpoint(signing, session):
    """The signature covers the body, not the URL: a captured body replayed elsewhere is still a replay."""
    _, client = signing
    raw = json.dumps({"type": "answered"}).encode()
    header = signature_header(secret=SECRET, body=raw)
    assert post(client, f"/api/crm/sessions/{session.pk}/events/", raw, header).status_code == 201
    before = stored()
    assert post(client, "/api/crm/events/", raw, header).status_code == 401
    assert stored() == before


def test_it_refuses_a_valid_signature_of_another_integration(signing, alice):
    _, client = signing
    make_integration("other-signer", owner=alice, signing_secret="another-secret")
    raw = json.dumps({"external_id": "call-cross", "type": "ringing"}).encode()
    header = signature_header(secret="another-secret", body=raw)
    assert post(client, "/api/crm/events/", raw, header).status_code == 401
    assert stored() == (0, 0, 0)


def test_it_accepts_the_current_secret_among_several_signatures_during_a_rotation(signing):
    _, client = signing
    raw = json.dumps({"external_id": "call-rotated", "type": "ringing"}).encode()
    ts = now()
    old = signature_compute(secret="the-old-secret", timestamp=ts, body=raw)
    new = signature_compute(secret=SECRET, timestamp=ts, body=raw)
    assert post(client, "/api/crm/events/", raw, f"t={ts},v1={old},v1={new}").status_code == 201


def test_it_accepts_a_timestamp_within_five_minutes_either_way(signing):
    _, client = signing
    for n, skew in enumerate((-290, 290)):
        raw = json.dumps({"external_id": f"call-skew-{n}", "type": "ringing"}).encode()
        response = post(
            client, "/api/crm/events/", raw, signature_header(secret=SECRET, body=raw, timestamp=now() + skew)
        )
        assert response.status_code == 201, response.content


def test_it_asks_no_signature_of_an_integration_without_a_secret(alice):
    _, key = make_integration("plain-agent", owner=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    raw = json.dumps({"external_id": "call-plain", "type": "ringing"}).encode()
    assert post(client, "/api/crm/events/", raw, None).status_code == 201
