"""The operator commands of the calls app: ingest, adopt_orphans, expire_sessions."""

from __future__ import annotations

import hashlib
import io
import uuid
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from calls import tasks
from calls.models import CallEvent, CallSession, Recording, StorageFolder, Transcript
from crm.models import User
from tests.audio import corrupt_wav
from tests.factories import CallSessionFactory, RecordingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_speech_to_text(settings: Any) -> None:
    settings.TRANSCRIPTION_BACKEND = "none"


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """Ingests queued by the commands (they must not be needed: the commands work in-process)."""
    calls: list[uuid.UUID] = []

    def enqueue(*, session_id: uuid.UUID) -> bool:
        calls.append(session_id)
        return True

    monkeypatch.setattr(tasks, "ingest_enqueue", enqueue)
    return calls


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def folder_of(root: Path, session_id: uuid.UUID) -> Path:
    folder = root / "sessions" / str(session_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pending_recording(owner: User, root: Path, *, audio: bytes | None = None, corrupt: bool = False) -> Recording:
    """A session whose recording file is in storage and whose ingest has not run."""
    session = CallSessionFactory.create(owner=owner, recording_status=CallSession.RecordingStatus.PENDING)
    folder = folder_of(root, session.pk)
    if corrupt:
        corrupt_wav(folder / "recording.wav")
    else:
        (folder / "recording.wav").write_bytes(audio if audio is not None else wav_bytes())
    return RecordingFactory.create(session=session, status=Recording.Status.PENDING, format="", content_type="")


# --- ingest ------------------------------------------------------------------------------------------------


def test_it_ingests_one_session_and_prints_a_summary(alice, recordings_root: Path, queued):
    audio = wav_bytes(seconds=1.5)
    recording = pending_recording(alice, recordings_root, audio=audio)
    (recordings_root / "sessions" / str(recording.session_id) / "transcript.txt").write_bytes(b"Agent: hi there\n")

    out, err = run("ingest", "--session", str(recording.session_id))

    assert out == "Ingested 1 session(s): 1 available.\n"
    assert err == ""
    recording.refresh_from_db()
    assert recording.status == Recording.Status.AVAILABLE
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()
    assert (recording.duration_ms, recording.channels, recording.sample_rate) == (1500, 1, 8000)
    assert CallSession.objects.get(pk=recording.session_id).recording_status == "available"
    assert Transcript.objects.get(session_id=recording.session_id).text == "Agent: hi there"
    assert queued == []


def test_it_retries_a_failed_session_named_on_the_command_line(alice, recordings_root: Path):
    recording = pending_recording(alice, recordings_root)
    Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.FAILED, failure_reason="was missing")

    out, _ = run("ingest", "--session", str(recording.session_id))

    assert out == "Ingested 1 session(s): 1 available.\n"
    recording.refresh_from_db()
    assert (recording.status, recording.failure_reason) == (Recording.Status.AVAILABLE, "")


def test_it_reports_an_already_ingested_session_as_it_is(alice, recordings_root: Path):
    recording = pending_recording(alice, recordings_root)
    run("ingest", "--session", str(recording.session_id))

    out, _ = run("ingest", "--session", str(recording.session_id))

    assert out == "Ingested 1 session(s): 1 available.\n"
    assert Recording.objects.get(pk=recording.pk).attempts == 1


@pytest.mark.parametrize(
    ("session_arg", "message"),
    [
        ("not-a-session", "'not-a-session' is not a session id (expected 8-4-4-4-12 hexadecimal)."),
        ("../../etc/passwd", "'../../etc/passwd' is not a session id (expected 8-4-4-4-12 hexadecimal)."),
    ],
)
def test_it_refuses_a_malformed_session_id(session_arg: str, message: str, recordings_root: Path):
    with pytest.raises(CommandError) as raised:
        run("ingest", "--session", session_arg)

    assert str(raised.value) == message
    assert not (recordings_root / "sessions").exists()


def test_it_needs_either_a_session_or_pending():
    with pytest.raises(CommandError) as neither:
        run("ingest")
    with pytest.raises(CommandError) as both:
        run("ingest", "--session", str(uuid.uuid4()), "--pending")

    assert "one of the arguments --session --pending is required" in str(neither.value)
    assert "not allowed with argument" in str(both.value)


def test_it_refuses_a_session_without_a_recording(alice, recordings_root: Path):
    unknown = uuid.uuid4()
    bare = CallSessionFactory.create(owner=alice)

    with pytest.raises(CommandError) as missing:
        run("ingest", "--session", str(unknown))
    with pytest.raises(CommandError) as no_recording:
        run("ingest", "--session", str(bare.pk))

    assert str(missing.value) == f"Session {unknown} has no recording to ingest."
    assert str(no_recording.value) == f"Session {bare.pk} has no recording to ingest."


def test_it_ingests_every_pending_recording_and_counts_the_outcomes(alice, recordings_root: Path, queued):
    good = [pending_recording(alice, recordings_root) for _ in range(2)]
    broken = pending_recording(alice, recordings_root, corrupt=True)
    earlier_failure = pending_recording(alice, recordings_root)
    Recording.objects.filter(pk=earlier_failure.pk).update(status=Recording.Status.FAILED, failure_reason="old")
    done = pending_recording(alice, recordings_root)
    run("ingest", "--session", str(done.session_id))

    out, err = run("ingest", "--pending")

    assert out == "Ingested 3 session(s): 2 available, 1 failed.\n"
    reason = Recording.objects.get(pk=broken.pk).failure_reason
    assert reason.startswith("The WAV file is truncated")
    assert err == f"{broken.session_id}: failed: {reason}\n"
    statuses = dict(Recording.objects.values_list("pk", "status"))
    assert statuses == {
        good[0].pk: "available",
        good[1].pk: "available",
        broken.pk: "failed",
        earlier_failure.pk: "failed",
        done.pk: "available",
    }
    assert Recording.objects.get(pk=earlier_failure.pk).failure_reason == "old"
    assert CallEvent.objects.filter(type="recording_failed").count() == 1
    assert queued == []


def test_it_retries_failed_recordings_with_failed(alice, recordings_root: Path):
    failed = pending_recording(alice, recordings_root)
    Recording.objects.filter(pk=failed.pk).update(status=Recording.Status.FAILED, failure_reason="storage blinked")
    still_broken = pending_recording(alice, recordings_root, corrupt=True)
    Recording.objects.filter(pk=still_broken.pk).update(status=Recording.Status.FAILED, failure_reason="truncated")

    out, err = run("ingest", "--pending", "--failed")

    assert out == "Ingested 2 session(s): 1 available, 1 failed.\n"
    assert err.startswith(f"{still_broken.session_id}: failed: The WAV file is truncated")
    assert Recording.objects.get(pk=failed.pk).status == Recording.Status.AVAILABLE
    assert Recording.objects.get(pk=failed.pk).failure_reason == ""
    assert Recording.objects.get(pk=still_broken.pk).status == Recording.Status.FAILED


def test_it_says_so_when_nothing_is_pending(recordings_root: Path):
    out, err = run("ingest", "--pending")

    assert out == "Ingested 0 session(s): nothing to do.\n"
    assert err == ""


# --- adopt_orphans -----------------------------------------------------------------------------------------


def test_it_reports_what_it_would_adopt_on_a_dry_run_and_writes_nothing(alice, recordings_root: Path, queued):
    orphan = uuid.uuid4()
    (folder_of(recordings_root, orphan) / "recording.wav").write_bytes(wav_bytes())
    stray = recordings_root / "sessions" / "scratch"
    stray.mkdir()

    out, err = run("adopt_orphans", "--dry-run")

    assert out == (
        f"Would adopt {orphan}\n"
        "Dry run: 2 folders: 1 adopted, 0 recordings attached to existing sessions, 0 unchanged since the last "
        "sweep, 0 without audio yet, 1 not named by a session id.\n"
    )
    assert err == "Skipped sessions/scratch/: not a session id\n"
    assert not CallSession.objects.exists()
    assert not Recording.objects.exists()
    assert not StorageFolder.objects.exists()
    assert queued == []


def test_it_adopts_orphans_and_prints_each(alice, recordings_root: Path, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    orphans = sorted(uuid.uuid4() for _ in range(2))
    for orphan in orphans:
        (folder_of(recordings_root, orphan) / "recording.wav").write_bytes(wav_bytes())
    (folder_of(recordings_root, orphans[0]) / "meta.json").write_text('{"owner": "alice"}')

    with django_capture_on_commit_callbacks(execute=True):
        out, err = run("adopt_orphans")

    lines = out.splitlines()
    assert sorted(lines[:2]) == [f"Adopted {orphan}" for orphan in orphans]
    assert lines[2] == (
        "2 folders: 2 adopted, 0 recordings attached to existing sessions, 0 unchanged since the last sweep, "
        "0 without audio yet, 0 not named by a session id."
    )
    assert err == ""
    owners = dict(CallSession.objects.values_list("pk", "owner__username"))
    assert owners == {orphans[0]: "alice", orphans[1]: None}
    assert set(Recording.objects.values_list("status", flat=True)) == {"available"}

    again, _ = run("adopt_orphans")
    assert again == (
        "2 folders: 0 adopted, 0 recordings attached to existing sessions, 2 unchanged since the last sweep, "
        "0 without audio yet, 0 not named by a session id.\n"
    )


# --- expire_sessions ---------------------------------------------------------------------------------------


def test_it_expires_quiet_sessions_and_prints_how_many(alice):
    quiet = CallSessionFactory.create(owner=alice, status="ringing", last_event_at=timezone.now() - timedelta(hours=1))
    recent = CallSessionFactory.create(
        owner=alice, status="ringing", last_event_at=timezone.now() - timedelta(minutes=10)
    )

    out, err = run("expire_sessions", "--minutes", "30")

    assert out == "Marked 1 session(s) abandoned after 30 minutes without an event.\n"
    assert err == ""
    assert dict(CallSession.objects.values_list("pk", "status")) == {quiet.pk: "abandoned", recent.pk: "ringing"}
    assert CallEvent.objects.get().data["reason"] == "no event for 30 minutes"

    again, _ = run("expire_sessions", "--minutes", "30")
    assert again == "Marked 0 session(s) abandoned after 30 minutes without an event.\n"


@pytest.mark.parametrize("minutes", ["0", "-5"])
def test_it_refuses_a_quiet_time_under_a_minute(alice, minutes: str):
    session = CallSessionFactory.create(owner=alice, status="ringing", last_event_at=timezone.now())

    with pytest.raises(CommandError) as raised:
        run("expire_sessions", "--minutes", minutes)

    assert str(raised.value) == "--minutes must be at least 1."
    assert CallSession.objects.get(pk=session.pk).status == "ringing"
    assert not CallEvent.objects.exists()
