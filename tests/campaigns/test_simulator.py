"""The simulator as a voice agent: it plays calls over Callbook's real HTTP API (a live server here)."""

from __future__ import annotations

import logging

import pytest

from calls.ingest import session_ingest
from calls.models import CallEvent, CallSession, Recording, Transcript
from campaigns.dialers import simulator
from campaigns.dialers.simulator import CallPlan, SimulatorDialer, clips, simulate_call
from campaigns.scheduler import run_tick
from crm.models import ApiToken
from tests.campaigns.run_helpers import campaign_with_contacts, launch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def callbook(live_server, settings):
    """The simulator reaches Callbook at the live server; each test mints its own token."""
    settings.CALLBOOK_PUBLIC_URL = live_server.url
    simulator._forget_token()
    yield live_server
    simulator._forget_token()


def dialed_session(manager, **dialer_settings) -> tuple[CallSession, SimulatorDialer]:
    campaign = campaign_with_contacts(manager, 1, dialer_settings={"ring_seconds": 0, **dialer_settings})
    run = launch(campaign)
    dialer = SimulatorDialer(campaign.dialer_settings)
    dialer.dial = lambda request: None  # type: ignore[method-assign]  # the test plays the call itself
    run_tick(run_id=run.pk, dialer=dialer)
    return CallSession.objects.get(campaign=campaign), dialer


def test_it_plays_an_answered_call_with_events_recording_and_transcript(callbook, carol, caplog):
    session, _ = dialed_session(carol, odds={"completed": 1}, min_seconds=0.2, max_seconds=0.2)
    clip = clips()[0]
    plan = CallPlan(session_id=str(session.pk), outcome="completed", ring_seconds=0, talk_seconds=0.2, clip=clip.name)

    with caplog.at_level(logging.DEBUG):
        assert simulate_call(plan=plan, step="ring") is None

    session.refresh_from_db()
    assert session.status == "completed"
    assert session.answered_at is not None
    events = list(
        CallEvent.objects.filter(session=session).exclude(event_id="").order_by("id").values_list("type", "event_id")
    )
    assert events == [
        ("ringing", f"sim-{session.pk}-ringing"),
        ("answered", f"sim-{session.pk}-answered"),
        ("completed", f"sim-{session.pk}-completed"),
    ]
    recording = Recording.objects.get(session=session)
    transcript = Transcript.objects.get(session=session)
    assert [s.text for s in transcript.segments.all()] == [segment["text"] for segment in clip.segments]
    assert [s.speaker for s in transcript.segments.all()][:2] == ["Agent", "Customer"]
    # The committed clip is real, playable audio.
    assert session_ingest(session_id=session.pk) == "available"
    recording.refresh_from_db()
    assert (recording.format, recording.channels) == ("opus", 1)
    assert recording.duration_ms is not None
    assert abs(recording.duration_ms - clip.duration_ms) < 100
    # Authenticated as the simulator integration, with a short-lived token that never reaches a log.
    [token] = ApiToken.objects.filter(user__integration__name="simulator", revoked_at__isnull=True)
    assert token.expires_at is not None
    assert token.prefix not in caplog.text


def test_it_reports_a_call_handed_over_twice_once(callbook, carol):
    session, _ = dialed_session(carol)
    plan = CallPlan(session_id=str(session.pk), outcome="busy", ring_seconds=0, talk_seconds=0, clip=clips()[1].name)
    simulate_call(plan=plan, step="ring")
    simulate_call(plan=plan, step="ring")

    session.refresh_from_db()
    assert (session.status, session.end_reason) == ("busy", "Line busy")
    # ringing and busy, each stored once
    assert list(CallEvent.objects.filter(session=session).values_list("type", flat=True)) == ["ringing", "busy"]
    assert not Recording.objects.filter(session=session).exists()


def test_it_hands_long_waits_back_to_be_queued_with_a_countdown(callbook, carol):
    session, _ = dialed_session(carol)
    plan = CallPlan(session_id=str(session.pk), outcome="completed", ring_seconds=3, talk_seconds=30, clip="x")
    assert simulate_call(plan=plan, step="ring") == ("answer", 3)
    assert simulate_call(plan=plan, step="answer") == ("hangup", 30)
    session.refresh_from_db()
    assert session.status == "in_progress"


def test_it_stops_without_retrying_when_callbook_refuses(callbook, carol):
    plan = CallPlan(
        session_id="6f1d5b1e-0000-4000-8000-000000000000", outcome="busy", ring_seconds=0, talk_seconds=0, clip="x"
    )
    with pytest.raises(simulator.SimulatorHttpError, match="HTTP 404"):
        simulate_call(plan=plan, step="ring")
