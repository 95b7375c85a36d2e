"""The demo calls ``seed_demo`` adds: a lived-in CRM on ``make run``, the same after every re-run."""

from __future__ import annotations

import wave
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from calls import demo
from calls.manager_selectors import adoption_problems, live_sessions, triage_sessions
from calls.models import CallEvent, CallSession, Note, Recording, TranscriptSegment
from calls.selectors import SessionFilters, call_session_list
from crm.demo import seed_people
from crm.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The demo people's passwords are beside the point here; hashing them properly costs a second each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def team():
    return seed_people(password="demo-password").team


def counts() -> dict[str, int]:
    return {
        "sessions": CallSession.objects.count(),
        "events": CallEvent.objects.count(),
        "notes": Note.objects.count(),
        "recordings": Recording.objects.count(),
        "segments": TranscriptSegment.objects.count(),
    }


def test_it_seeds_two_weeks_of_calls_for_alice_and_bob(team):
    result = demo.seed_calls(team=team)
    assert result.calls == 24
    assert result.created == 26  # and the two orphans
    calls = CallSession.objects.filter(source=demo.DEMO_SOURCE)
    assert {user.username for user in User.objects.filter(call_sessions__in=calls)} == {"alice", "bob"}
    statuses = set(calls.values_list("status", flat=True))
    assert {"completed", "no_answer", "busy", "failed", "in_progress", "ringing"} <= statuses
    oldest = min(calls.values_list("created_at", flat=True))
    assert timezone.now() - oldest < timedelta(days=14, hours=1)
    assert timezone.now() - oldest > timedelta(days=10)
    assert Note.objects.filter(session__in=calls).count() >= 4
    # Every call has the timeline an integration would have reported, ending in its status.
    for session in calls.prefetch_related("events"):
        types = [event.type for event in session.events.all()]
        assert types[0] == "initiated"
    assert not calls.filter(status="completed", duration_ms__isnull=True).exists()


def test_it_creates_nothing_new_when_run_again(team):
    first = demo.seed_calls(team=team)
    before = counts()
    again = demo.seed_calls(team=team)
    assert again.created == 0
    assert counts() == before
    assert (again.calls, again.recordings, again.orphans_in_triage) == (first.calls, first.recordings, 2)


def test_it_makes_eight_recordings_playable_with_timed_transcripts(team, recordings_root: Path):
    result = demo.seed_calls(team=team)
    assert result.recordings == 8
    recordings = Recording.objects.filter(session__source=demo.DEMO_SOURCE).select_related("session__transcript")
    assert recordings.count() == 8
    for recording in recordings:
        assert recording.status == Recording.Status.AVAILABLE, recording.failure_reason
        assert recording.session.recording_status == CallSession.RecordingStatus.AVAILABLE
        assert recording.duration_ms is not None
        assert 15_000 < recording.duration_ms < 90_000
        assert max(recording.waveform) > 0.1  # there is sound to see
        path = recordings_root / recording.file
        with wave.open(str(path), "rb") as reader:
            assert reader.getframerate() == demo.SAMPLE_RATE
        assert (path.parent / "transcript.json").exists()
        segments = list(recording.session.transcript.segments.all())
        assert len(segments) >= 6
        assert {segment.speaker for segment in segments} == {"Agent", "Caller"}
        for segment in segments:
            assert segment.start_ms is not None
            assert segment.end_ms is not None
            assert segment.start_ms < segment.end_ms <= recording.duration_ms
        starts = [segment.start_ms or 0 for segment in segments]
        assert starts == sorted(starts)
    assert sorted(recording.channels or 0 for recording in recordings) == [1] * 7 + [2]
    dual = recordings.get(channels=2)
    assert len(dual.talk_ms) == 2
    assert all(ms > 5000 for ms in dual.talk_ms)


def test_it_makes_transcripts_searchable(team):
    demo.seed_calls(team=team)
    alice = User.objects.get(username="alice")
    found = call_session_list(user=alice, filters=SessionFilters(q="warranty"))
    assert [session.metadata["topic"] for session in found] == ["Solar quote follow-up"]


def test_it_leaves_two_adopted_recordings_for_the_managers_to_triage(team):
    demo.seed_calls(team=team)
    carol = User.objects.get(username="carol")
    queue = list(triage_sessions(user=carol))
    assert len(queue) == 2
    assert all(session.origin == CallSession.Origin.ADOPTED for session in queue)
    assert all(session.recording_status == CallSession.RecordingStatus.AVAILABLE for session in queue)
    problems = [adoption_problems(session=session) for session in queue]
    assert problems[0] == []
    assert any("'zoe' is not an active user" in problem for problem in problems[1])
    # Agents do not see unassigned recordings.
    assert not triage_sessions(user=User.objects.get(username="alice")).exists()


def test_it_shows_live_calls_one_of_them_gone_quiet(team):
    demo.seed_calls(team=team)
    live = live_sessions(user=User.objects.get(username="carol"), now=timezone.now())
    assert len(live.rows) == 3
    assert [row.stale for row in live.rows].count(True) == 1


def test_it_moves_the_live_calls_to_now_on_a_later_run(team):
    yesterday = timezone.now() - timedelta(days=1)
    demo.seed_calls(team=team, now=yesterday)
    result = demo.seed_calls(team=team)
    assert result.created == 0
    now = timezone.now()
    rows = live_sessions(user=User.objects.get(username="carol"), now=now).rows
    assert len(rows) == 3
    assert all(row.running < timedelta(hours=1) for row in rows)
    for row in rows:
        events = list(row.session.events.values_list("occurred_at", flat=True))
        assert max(events) == row.session.last_event_at
        assert min(events) >= now - timedelta(hours=1)


def test_it_synthesizes_speech_like_audio_when_espeak_is_missing(team, monkeypatch, recordings_root: Path):
    monkeypatch.setattr(demo, "espeak_path", lambda: None)
    result = demo.seed_calls(team=team)
    assert result.speech == "synthesized tones"
    assert result.recordings == 8
    recording = Recording.objects.filter(session__source=demo.DEMO_SOURCE, channels=1).first()
    assert recording is not None
    assert recording.status == Recording.Status.AVAILABLE
    # Bursts and pauses, like speech: the waveform is neither flat nor a constant tone.
    assert max(recording.waveform) > 0.2
    assert min(recording.waveform) < 0.05


def test_it_is_seeded_by_the_seed_demo_command(settings):
    settings.DEBUG = True
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo calls: 24 for alice and bob" in out.getvalue()
    assert "2 adopted recordings waiting in triage" in out.getvalue()
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "none new" in again.getvalue()
    call_command("seed_demo", "--no-calls", stdout=StringIO())
    assert CallSession.objects.count() == 26
