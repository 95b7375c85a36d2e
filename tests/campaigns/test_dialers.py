"""Dialer backends: settings validation, the http backend's signed request against a local server, the
simulator's plans."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from calls.signatures import SIGNATURE_HEADER, signature_verify
from campaigns.dialers import DialerError, DialerSettingsInvalid, DialRequest, dialer_build
from campaigns.dialers.http import HttpDialer
from campaigns.dialers.simulator import SimulatorDialer, clips

SECRET = "0123456789abcdef-secret"


def request_for(to_number: str = "+12025550123", attempt: int = 1) -> DialRequest:
    session_id = uuid.uuid4()
    base = f"http://127.0.0.1:8000/api/crm/sessions/{session_id}"
    return DialRequest(
        session_id=session_id,
        dial_id=7,
        run_id=3,
        campaign_id=2,
        campaign_name="Spring renewals",
        attempt=attempt,
        from_number="+12025550100",
        to_number=to_number,
        source="voice-agent",
        max_call_seconds=900,
        contact={"id": 11, "name": "Ada", "phone": to_number},
        settings={"script_id": "renewal-v2"},
        session_url=f"{base}/",
        events_url=f"{base}/events/",
        recording_url=f"{base}/recording/",
        transcript_url=f"{base}/transcript/",
    )


class Agent:
    """A local voice agent: answers each POST with the next status of ``statuses`` (200 after them)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay = 0.0
        self.received: list[tuple[dict[str, str], bytes]] = []
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                agent.received.append((dict(self.headers), body))
                if agent.delay:
                    threading.Event().wait(agent.delay)
                status = agent.statuses.pop(0) if agent.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b'{"error": "overloaded"}' if status >= 400 else b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dial"


@pytest.fixture
def agent() -> Iterator[Agent]:
    local = Agent()
    thread = threading.Thread(target=local.server.serve_forever, daemon=True)
    thread.start()
    yield local
    local.server.shutdown()
    local.server.server_close()


def http_dialer(url: str, **extra: Any) -> HttpDialer:
    settings = {"url": url, "signing_secret": SECRET, "source": "voice-agent", "script_id": "renewal-v2", **extra}
    dialer = dialer_build(name="http", settings=settings)
    assert isinstance(dialer, HttpDialer)
    return dialer


# --- http ---------------------------------------------------------------------------------------------------


def test_the_http_dialer_posts_a_signed_dial_request_with_the_session_id(agent, monkeypatch):
    monkeypatch.setattr("campaigns.dialers.http.time.sleep", lambda seconds: None)
    request = request_for()
    http_dialer(agent.url, options={"voice": "ava"}).dial(request)

    [(headers, body)] = agent.received
    signature_verify(secret=SECRET, header=headers[SIGNATURE_HEADER], body=body)  # raises if it does not match
    payload = json.loads(body)
    assert payload["session_id"] == str(request.session_id)
    assert headers["Idempotency-Key"] == str(request.session_id)
    assert headers["Content-Type"] == "application/json"
    assert (payload["from_number"], payload["to_number"], payload["source"]) == (
        "+12025550100",
        "+12025550123",
        "voice-agent",
    )
    assert payload["campaign"] == {"id": 2, "name": "Spring renewals"}
    assert payload["contact"] == {"id": 11, "name": "Ada", "phone": "+12025550123"}
    assert payload["urls"] == {
        "session": request.session_url,
        "events": request.events_url,
        "recording": request.recording_url,
        "transcript": request.transcript_url,
    }
    assert payload["delivery"]["attempt"] == 1
    # The settings the agent gets never include the secret or the plumbing.
    public = http_dialer(agent.url, options={"voice": "ava"}).public_settings()
    assert public == {"script_id": "renewal-v2", "prompt_id": "", "options": {"voice": "ava"}}
    assert SECRET not in body.decode()


def test_the_http_dialer_retries_transient_failures_then_succeeds(agent, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("campaigns.dialers.http.time.sleep", waits.append)
    agent.statuses = [503, 429]
    http_dialer(agent.url).dial(request_for())
    assert len(agent.received) == 3
    assert waits == [0.5, 1.0]
    # Each attempt is signed afresh (a receiver refusing replays accepts the retry).
    signatures = {headers[SIGNATURE_HEADER] for headers, _ in agent.received}
    assert len(signatures) == 3


def test_the_http_dialer_gives_up_after_its_attempts_with_a_transient_error(agent, monkeypatch):
    monkeypatch.setattr("campaigns.dialers.http.time.sleep", lambda seconds: None)
    agent.statuses = [502, 502]
    with pytest.raises(DialerError) as caught:
        http_dialer(agent.url, max_attempts=2).dial(request_for())
    assert caught.value.transient
    assert caught.value.reason.startswith("The voice agent could not be reached after 2 attempt(s): HTTP 502")


def test_the_http_dialer_does_not_retry_a_refusal(agent, monkeypatch):
    monkeypatch.setattr("campaigns.dialers.http.time.sleep", lambda seconds: None)
    agent.statuses = [422]
    with pytest.raises(DialerError) as caught:
        http_dialer(agent.url).dial(request_for())
    assert not caught.value.transient
    assert caught.value.reason == 'The voice agent refused the dial: HTTP 422: {"error": "overloaded"}'
    assert len(agent.received) == 1


def test_the_http_dialer_times_out_and_retries(agent, monkeypatch):
    monkeypatch.setattr("campaigns.dialers.http.time.sleep", lambda seconds: None)
    agent.delay = 1.5
    with pytest.raises(DialerError) as caught:
        http_dialer(agent.url, timeout_seconds=1, max_attempts=2).dial(request_for())
    assert caught.value.reason.endswith("no answer within 1 s")
    assert len(agent.received) == 2


def test_the_http_dialer_reports_an_unreachable_agent():
    with pytest.raises(DialerError, match="connection failed"):
        http_dialer("http://127.0.0.1:9/dial", max_attempts=1).dial(request_for())


@pytest.mark.parametrize(
    ("raw", "errors"),
    [
        ({}, {"url", "signing_secret", "source"}),
        (
            {"url": "ftp://agent/dial", "signing_secret": "short", "source": "has space"},
            {"url", "signing_secret", "source"},
        ),
        (
            {"url": "https://a/dial", "signing_secret": SECRET, "source": "a", "timeout_seconds": 0, "max_attempts": 9},
            {"timeout_seconds", "max_attempts"},
        ),
        ({"url": "https://a/dial", "signing_secret": SECRET, "source": "a", "secret": "x"}, {"secret"}),
        ({"url": "https://a/dial", "signing_secret": SECRET, "source": "a", "options": []}, {"options"}),
    ],
)
def test_the_http_dialer_names_each_bad_setting(raw, errors):
    with pytest.raises(DialerSettingsInvalid) as caught:
        dialer_build(name="http", settings=raw)
    assert set(caught.value.errors) == errors


def test_an_unknown_dialer_is_refused():
    with pytest.raises(DialerSettingsInvalid) as caught:
        dialer_build(name="carrier-pigeon", settings={})
    assert caught.value.errors == {"dialer": "Unknown dialer 'carrier-pigeon' (known: http, simulator)."}


# --- simulator -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"odds": {"maybe": 1}}, "odds", "Unknown outcomes: maybe (known: completed, no_answer, busy, failed)."),
        ({"odds": {"busy": -1}}, "odds", "Each weight must be a number >= 0."),
        ({"odds": {"busy": 0}}, "odds", "At least one outcome needs a weight above 0."),
        ({"odds": [1, 2]}, "odds", "Must be an object of outcome: weight (completed, no_answer, busy, failed)."),
        (
            {"min_seconds": 30, "max_seconds": 10},
            "max_seconds",
            "The longest call cannot be shorter than the shortest one.",
        ),
        ({"ring_seconds": [5, 1]}, "ring_seconds", "Must satisfy 0 <= min <= max <= 120 (got [5, 1])."),
        ({"seed": True}, "seed", "Must be an integer."),
        ({"colour": "red"}, "colour", "Unknown setting (allowed: max_seconds, min_seconds, odds, ring_seconds, seed)."),
    ],
)
def test_the_simulator_explains_bad_settings(raw, field, message):
    with pytest.raises(DialerSettingsInvalid) as caught:
        dialer_build(name="simulator", settings=raw)
    assert caught.value.errors == {field: message}


def test_the_simulator_plans_reproducibly_with_a_seed_and_follows_the_odds():
    seeded = SimulatorDialer({"seed": 42, "odds": {"completed": 1, "busy": 1}, "min_seconds": 2, "max_seconds": 3})
    first = [seeded.plan(request_for(f"+1202555{n:04d}")) for n in range(40)]
    again = [seeded.plan(request_for(f"+1202555{n:04d}")) for n in range(40)]
    assert [(p.outcome, p.ring_seconds, p.talk_seconds, p.clip) for p in first] == [
        (p.outcome, p.ring_seconds, p.talk_seconds, p.clip) for p in again
    ]
    assert {p.outcome for p in first} == {"completed", "busy"}
    assert all(2 <= p.talk_seconds <= 3 and 1 <= p.ring_seconds <= 4 for p in first)
    # Another attempt at the same number is another call.
    assert [seeded.plan(request_for("+12025550000", attempt=a)).outcome for a in range(1, 30)].count("busy") > 0

    always_busy = SimulatorDialer({"odds": {"busy": 1}})
    assert {always_busy.plan(request_for()).outcome for _ in range(20)} == {"busy"}


def test_the_simulator_talks_as_long_as_its_recording_by_default():
    plan = SimulatorDialer({"odds": {"completed": 1}}).plan(request_for())
    clip = next(c for c in clips() if c.name == plan.clip)
    assert plan.talk_seconds == pytest.approx(clip.duration_ms / 1000)
    assert clip.duration_ms > 3000
    assert clip.segments
