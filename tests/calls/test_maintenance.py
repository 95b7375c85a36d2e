"""The beat jobs of calls/maintenance.py, called as services (and once each through their Celery task):
orphans_sweep, sessions_expire_stale, ingests_retry, recordings_apply_retention; and what happens to an upload
or an adoption while the broker is down."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
import wave
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown

from calls import adoption, maintenance, services, storage, tasks
from calls.maintenance import (
    ingests_retry,
    orphans_sweep,
    recordings_apply_retention,
    sessions_expire_stale,
)
from calls.models import CallEvent, CallSession, Recording, StorageFolder, Transcript
from calls.services import EventInput, call_event_record
from crm.celery import app
from crm.models import User
from tests.audio import corrupt_wav
from tests.factories import CallSessionFactory, RecordingFactory

pytestmark = pytest.mark.django_db


# --- Fixtures and helpers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_speech_to_text(settings: Any) -> None:
    settings.TRANSCRIPTION_BACKEND = "none"


@pytest.fixture
def eager(settings: Any, django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """Run what is queued in-process: ``with eager(): orphans_sweep()``."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The session ids whose ingest is queued, instead of queueing them."""
    calls: list[uuid.UUID] = []

    def enqueue(*, session_id: uuid.UUID) -> bool:
        calls.append(session_id)
        return True

    monkeypatch.setattr(tasks, "ingest_enqueue", enqueue)
    return calls


def wav_bytes(seconds: float = 0.5, rate: int = 8000, *, tone: bool = False) -> bytes:
    """A small valid mono 16-bit WAV (silence, or a square wave to tell files apart)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frame = b"\x00\x10" if tone else b"\x00\x00"
        out.writeframes(frame * int(seconds * rate))
    return buffer.getvalue()


def write_folder(
    root: Path,
    session_id: uuid.UUID | None = None,
    *,
    audio: bytes | None = None,
    transcript: bytes | None = None,
    meta: dict[str, Any] | None = None,
    name: str | None = None,
) -> tuple[uuid.UUID, Path]:
    """Writes ``sessions/<id>/`` the way a media server would."""
    sid = session_id or uuid.uuid4()
    folder = root / "sessions" / (name or str(sid))
    folder.mkdir(parents=True, exist_ok=True)
    if audio is not None:
        (folder / "recording.wav").write_bytes(audio)
    if transcript is not None:
        (folder / "transcript.txt").write_bytes(transcript)
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta))
    return sid, folder


def bump(folder: Path, seconds: int = 60) -> None:
    """Move the folder's mtime forward, as a write into it would."""
    stat = folder.stat()
    os.utime(folder, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


def signature(folder: Path) -> str:
    return str(folder.stat().st_mtime_ns)


def counts() -> tuple[int, int, int, int, int]:
    return (
        CallSession.objects.count(),
        Recording.objects.count(),
        CallEvent.objects.count(),
        Transcript.objects.count(),
        StorageFolder.objects.count(),
    )


def list_ids(client: Any, **params: str) -> list[str]:
    response = client.get("/api/crm/sessions/", params)
    assert response.status_code == 200
    return [row["id"] for row in response.json()["results"]]


def forbid_opening_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    def opened(**kwargs: Any) -> Any:
        raise AssertionError(f"a folder was opened: {kwargs!r}")

    for module in (maintenance, adoption, storage):
        monkeypatch.setattr(module, "inspect_session_folder", opened)


# --- orphans_sweep: adoption -------------------------------------------------------------------------------


def test_it_adopts_a_complete_orphan_and_makes_it_searchable_in_one_sweep(
    alice, bob, api_client_for, recordings_root: Path, eager
):
    audio = wav_bytes()
    sid, folder = write_folder(
        recordings_root,
        audio=audio,
        transcript=b"Agent: Your refund has been approved.\nCaller: Wonderful news.\n",
        meta={"owner": "alice", "from": "+14155550100", "external_id": "media-42"},
    )

    with eager():
        report = orphans_sweep()

    assert (report.folders, report.adopted, report.attached, report.unchanged) == (1, [sid], [], 0)
    assert (report.without_audio, report.not_session_ids) == (0, [])
    session = CallSession.objects.get(pk=sid)
    assert session.origin == CallSession.Origin.ADOPTED
    assert session.owner == alice
    assert session.team is not None
    assert session.team.name == "Sales"
    assert (session.from_number, session.external_id, session.source) == ("+14155550100", "media-42", "storage")
    assert session.recording_status == CallSession.RecordingStatus.AVAILABLE
    recording = Recording.objects.get(session=session)
    assert recording.status == Recording.Status.AVAILABLE
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()
    assert recording.duration_ms == 500
    transcript = Transcript.objects.get(session=session)
    assert transcript.source == Transcript.Source.PROVIDED
    assert transcript.text == "Agent: Your refund has been approved.\nCaller: Wonderful news."
    assert [e.data["by"] for e in CallEvent.objects.filter(session=session, type="adopted")] == ["sweep"]
    ledger = StorageFolder.objects.get(session_id=sid)
    assert (ledger.state, ledger.checked_signature) == (StorageFolder.State.ADOPTED, signature(folder))

    # No page was visited: the list alone finds it by a word of its transcript.
    assert list_ids(api_client_for(alice), q="refund") == [str(sid)]
    assert list_ids(api_client_for(bob), q="refund") == []


def test_it_adopts_a_folder_without_meta_unassigned_for_managers_to_triage(
    alice, carol, dave, api_client_for, recordings_root: Path, eager
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes())

    with eager():
        report = orphans_sweep()

    assert report.adopted == [sid]
    session = CallSession.objects.get(pk=sid)
    assert (session.owner, session.team, session.origin) == (None, None, CallSession.Origin.ADOPTED)
    assert session.recording_status == CallSession.RecordingStatus.AVAILABLE
    assert list_ids(api_client_for(carol)) == [str(sid)]
    assert list_ids(api_client_for(dave)) == [str(sid)]
    assert list_ids(api_client_for(alice)) == []
    assert api_client_for(carol).get(f"/api/crm/sessions/{sid}").json()["owner"] is None
    assert api_client_for(alice).get(f"/api/crm/sessions/{sid}").status_code == 404


def test_it_waits_for_the_audio_of_a_folder_that_only_has_a_transcript(recordings_root: Path, eager):
    sid, folder = write_folder(recordings_root, transcript=b"Agent: hello there\n")

    first = orphans_sweep()
    second = orphans_sweep()

    for report in (first, second):
        assert (report.folders, report.without_audio, report.adopted, report.unchanged) == (1, 1, [], 0)
    assert counts() == (0, 0, 0, 0, 0)

    (folder / "recording.wav").write_bytes(wav_bytes())
    with eager():
        third = orphans_sweep()

    assert (third.adopted, third.without_audio) == ([sid], 0)
    session = CallSession.objects.get(pk=sid)
    assert session.recording_status == CallSession.RecordingStatus.AVAILABLE
    assert Transcript.objects.get(session=session).text == "Agent: hello there"


def test_it_never_adopts_a_folder_not_named_by_a_session_id(recordings_root: Path, eager):
    write_folder(recordings_root, audio=wav_bytes(), name="not-a-session-id!")
    write_folder(recordings_root, audio=wav_bytes(), name="12345")

    with eager():
        first = orphans_sweep()
        second = orphans_sweep()

    for report in (first, second):
        assert sorted(report.not_session_ids) == ["12345", "not-a-session-id!"]
        assert (report.folders, report.adopted, report.unchanged, report.without_audio) == (2, [], 0, 0)
    assert counts() == (0, 0, 0, 0, 0)


def test_it_does_not_misreport_a_folder_named_by_an_uppercase_id(recordings_root: Path, eager):
    sid = uuid.uuid4()
    write_folder(recordings_root, audio=wav_bytes(), name=str(sid).upper())

    with eager():
        report = orphans_sweep()

    assert report.without_audio == 0
    assert report.adopted == [sid] or report.not_session_ids == [str(sid).upper()]


def test_it_attaches_audio_that_arrives_for_an_existing_session(alice, api_client_for, recordings_root: Path, eager):
    created = api_client_for(alice).post("/api/crm/sessions/", {"source": "twilio", "external_id": "CA1"})
    sid = uuid.UUID(created.json()["id"])
    audio = wav_bytes()
    _, folder = write_folder(recordings_root, sid, audio=audio)

    with eager():
        report = orphans_sweep()

    assert (report.attached, report.adopted, report.folders) == ([sid], [], 1)
    session = CallSession.objects.get(pk=sid)
    assert session.origin == CallSession.Origin.API
    assert session.owner == alice
    assert session.recording_status == CallSession.RecordingStatus.AVAILABLE
    recording = Recording.objects.get(session=session)
    assert recording.file == f"sessions/{sid}/recording.wav"
    assert (recording.status, recording.sha256) == (Recording.Status.AVAILABLE, hashlib.sha256(audio).hexdigest())
    ledger = StorageFolder.objects.get(session_id=sid)
    assert (ledger.state, ledger.checked_signature) == (StorageFolder.State.HAS_SESSION, signature(folder))
    assert CallSession.objects.count() == 1


def test_it_looks_again_at_an_existing_session_whose_folder_has_no_audio_yet(alice, recordings_root: Path, queued):
    session = CallSessionFactory.create(owner=alice)
    _, folder = write_folder(recordings_root, session.pk, transcript=b"Agent: early transcript\n")

    first = orphans_sweep()
    (folder / "recording.wav").write_bytes(wav_bytes())
    second = orphans_sweep()

    assert (first.without_audio, first.attached) == (1, [])
    assert (second.without_audio, second.attached) == (0, [session.pk])
    assert queued == [session.pk]
    assert Recording.objects.get(session=session).status == Recording.Status.PENDING


# --- orphans_sweep: the ledger -----------------------------------------------------------------------------


@pytest.fixture
def swept_store(alice, recordings_root: Path, eager) -> dict[str, uuid.UUID]:
    """Three folders dealt with by one sweep: an adopted orphan, a late recording attached to an existing
    session, and a session whose recording was uploaded (row and file both present)."""
    orphan, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"owner": "alice"})
    late = CallSessionFactory.create(owner=alice)
    write_folder(recordings_root, late.pk, audio=wav_bytes(tone=True))
    uploaded = CallSessionFactory.create(owner=alice, recording_status=CallSession.RecordingStatus.AVAILABLE)
    write_folder(recordings_root, uploaded.pk, audio=wav_bytes(seconds=0.3))
    RecordingFactory.create(session=uploaded, sha256="x" * 64)
    with eager():
        report = orphans_sweep()
    assert (report.folders, report.adopted, report.attached) == (3, [orphan], [late.pk])
    return {"orphan": orphan, "late": late.pk, "uploaded": uploaded.pk}


def test_it_skips_every_unchanged_folder_without_opening_it(
    swept_store, monkeypatch: pytest.MonkeyPatch, queued, eager
):
    before = counts()
    ledger_before = sorted(StorageFolder.objects.values_list("session_id", "state", "checked_signature"))
    assert [state for _, state, _ in ledger_before].count(StorageFolder.State.HAS_SESSION) == 2
    forbid_opening_folders(monkeypatch)

    with eager():
        report = orphans_sweep()

    assert report.unchanged == report.folders == 3
    assert (report.adopted, report.attached, report.without_audio, report.not_session_ids) == ([], [], 0, [])
    assert counts() == before
    assert sorted(StorageFolder.objects.values_list("session_id", "state", "checked_signature")) == ledger_before
    assert queued == []


def test_it_looks_again_at_a_folder_that_changed(
    swept_store, alice, api_client_for, recordings_root: Path, eager, monkeypatch: pytest.MonkeyPatch
):
    orphan = swept_store["orphan"]
    folder = recordings_root / "sessions" / str(orphan)
    (folder / "transcript.txt").write_bytes(b"Caller: the invoice number is wrong\n")
    bump(folder)
    opened: list[uuid.UUID] = []
    real_inspect = storage.inspect_session_folder

    def spy(**kwargs: Any) -> Any:
        opened.append(kwargs["session_id"])
        return real_inspect(**kwargs)

    # The sweep's own look into folders; the ingest it queues reads through calls.ingest's reference.
    monkeypatch.setattr(maintenance, "inspect_session_folder", spy)
    monkeypatch.setattr(adoption, "inspect_session_folder", spy)

    with eager():
        report = orphans_sweep()

    assert (report.folders, report.unchanged, report.adopted, report.attached) == (3, 2, [], [])
    # It has a row and a recording now: the sweep only queues its ingest, which picks up the new transcript.
    assert opened == []
    assert Transcript.objects.get(session_id=orphan).text == "Caller: the invoice number is wrong"
    assert list_ids(api_client_for(alice), q="invoice") == [str(orphan)]
    # It is now a folder with a session row, with the signature it was seen with.
    ledger = StorageFolder.objects.get(session_id=orphan)
    assert (ledger.state, ledger.checked_signature) == (StorageFolder.State.HAS_SESSION, signature(folder))
    assert CallSession.objects.count() == 3
    assert Recording.objects.get(session_id=orphan).attempts == 1


def test_it_records_the_changed_folder_as_has_session_after_looking_again(swept_store, recordings_root: Path, queued):
    late = swept_store["late"]
    folder = recordings_root / "sessions" / str(late)
    bump(folder)

    report = orphans_sweep()
    again = orphans_sweep()

    assert (report.unchanged, queued) == (2, [late])
    assert again.unchanged == 3
    assert queued == [late]
    ledger = StorageFolder.objects.get(session_id=late)
    assert (ledger.state, ledger.checked_signature) == (StorageFolder.State.HAS_SESSION, signature(folder))


def test_it_reports_without_writing_anything_on_a_dry_run(alice, recordings_root: Path, queued):
    orphan, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"owner": "alice"})
    waiting, _ = write_folder(recordings_root, transcript=b"Agent: hi\n")
    late = CallSessionFactory.create(owner=alice)
    write_folder(recordings_root, late.pk, audio=wav_bytes())
    write_folder(recordings_root, audio=wav_bytes(), name="stray")

    report = orphans_sweep(dry_run=True)

    assert report.folders == 4
    assert report.adopted == [orphan]
    assert report.attached == [late.pk]
    assert report.without_audio == 1
    assert report.not_session_ids == ["stray"]
    assert report.summary() == (
        "4 folders: 1 adopted, 1 recordings attached to existing sessions, 0 unchanged since the last sweep, "
        "1 without audio yet, 1 not named by a session id"
    )
    assert counts() == (1, 0, 0, 0, 0)
    assert queued == []
    assert CallSession.objects.get().recording_status == CallSession.RecordingStatus.NONE
    # A dry run leaves no trace in the ledger: the real sweep still does the work.
    assert orphans_sweep(dry_run=True).unchanged == 0
    real = orphans_sweep()
    assert (real.adopted, real.attached) == ([orphan], [late.pk])
    assert not CallSession.objects.filter(pk=waiting).exists()


def test_it_fails_a_corrupt_recording_without_stopping_its_neighbours(recordings_root: Path, eager):
    good_one, _ = write_folder(recordings_root, audio=wav_bytes())
    good_two, _ = write_folder(recordings_root, audio=wav_bytes(tone=True))
    broken, folder = write_folder(recordings_root)
    corrupt_wav(folder / "recording.wav")

    with eager():
        report = orphans_sweep()

    assert sorted(report.adopted) == sorted([good_one, good_two, broken])
    statuses = dict(Recording.objects.values_list("session_id", "status"))
    assert statuses == {good_one: "available", good_two: "available", broken: "failed"}
    failed = Recording.objects.get(session_id=broken)
    assert failed.failure_reason.startswith("The WAV file is truncated")
    assert CallSession.objects.get(pk=broken).recording_status == CallSession.RecordingStatus.FAILED
    event = CallEvent.objects.get(session_id=broken, type="recording_failed")
    assert event.data["reason"] == failed.failure_reason
    assert StorageFolder.objects.filter(state=StorageFolder.State.ADOPTED).count() == 3


def test_it_runs_the_sweep_as_its_celery_task(recordings_root: Path, eager):
    sid, _ = write_folder(recordings_root, audio=wav_bytes())

    with eager():
        result = tasks.sweep_orphans.apply()

    assert result.successful()
    assert result.get() == (
        "1 folders: 1 adopted, 0 recordings attached to existing sessions, 0 unchanged since the last sweep, "
        "0 without audio yet, 0 not named by a session id"
    )
    assert Recording.objects.get(session_id=sid).status == Recording.Status.AVAILABLE


def test_it_sweeps_an_empty_store(recordings_root: Path):
    report = orphans_sweep()

    assert (report.folders, report.adopted, report.unchanged) == (0, [], 0)
    assert counts() == (0, 0, 0, 0, 0)


# --- sessions_expire_stale ---------------------------------------------------------------------------------


def _session(owner: User, status: str, *, quiet_for: timedelta | None, **fields: Any) -> CallSession:
    last = timezone.now() - quiet_for if quiet_for is not None else None
    return CallSessionFactory.create(owner=owner, status=status, last_event_at=last, **fields)


def test_it_abandons_a_live_session_that_went_quiet(alice):
    session = _session(alice, "ringing", quiet_for=timedelta(hours=2))

    expired = sessions_expire_stale(older_than=timedelta(minutes=30))

    assert expired == 1
    session.refresh_from_db()
    assert session.status == CallSession.Status.ABANDONED
    assert session.ended_at is not None
    event = CallEvent.objects.get(session=session)
    assert event.type == "abandoned"
    assert (event.status_before, event.status_after) == ("ringing", "abandoned")
    assert event.data == {"reason": "no event for 30 minutes", "by": "expire_stale_sessions"}
    assert session.end_reason == "no event for 30 minutes"


def test_it_leaves_recent_finished_and_archived_sessions_alone(alice):
    recent = _session(alice, "in_progress", quiet_for=timedelta(minutes=5))
    completed = _session(alice, "completed", quiet_for=timedelta(hours=2))
    archived = _session(alice, "ringing", quiet_for=timedelta(hours=2), archived_at=timezone.now())
    untouched = {s.pk: (s.status, s.updated_at) for s in (recent, completed, archived)}

    assert sessions_expire_stale(older_than=timedelta(minutes=30)) == 0

    assert {s.pk: (s.status, s.updated_at) for s in CallSession.objects.all()} == untouched
    assert not CallEvent.objects.exists()


def test_it_abandons_a_session_that_never_had_an_event_by_its_age(alice):
    old = _session(alice, "queued", quiet_for=None)
    young = _session(alice, "queued", quiet_for=None)
    CallSession.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=3))

    assert sessions_expire_stale(older_than=timedelta(minutes=30)) == 1

    assert dict(CallSession.objects.values_list("pk", "status")) == {old.pk: "abandoned", young.pk: "queued"}


def test_it_expires_once_however_often_it_runs_and_deletes_nothing(alice):
    stale = [_session(alice, status, quiet_for=timedelta(hours=2)) for status in ("queued", "initiated", "ringing")]
    live = _session(alice, "in_progress", quiet_for=timedelta(hours=2))

    first = sessions_expire_stale(older_than=timedelta(minutes=30))
    second = sessions_expire_stale(older_than=timedelta(minutes=30))

    assert (first, second) == (4, 0)
    assert CallSession.objects.count() == 4
    assert CallEvent.objects.filter(type="abandoned").count() == 4
    assert set(CallSession.objects.values_list("status", flat=True)) == {"abandoned"}
    assert {e.session_id for e in CallEvent.objects.all()} == {s.pk for s in [*stale, live]}


def test_it_does_not_abandon_a_session_whose_event_arrives_while_the_job_runs(alice, monkeypatch):
    session = _session(alice, "ringing", quiet_for=timedelta(hours=2))
    real_abandon = services.call_session_abandon_if_quiet

    def event_arrives_first(**kwargs: Any) -> bool:
        # The call is answered after the job picked it as quiet, before it takes the row lock.
        call_event_record(session_id=kwargs["session_id"], event=EventInput(type="answered"))
        return real_abandon(**kwargs)

    monkeypatch.setattr(maintenance, "call_session_abandon_if_quiet", event_arrives_first)

    sessions_expire_stale(older_than=timedelta(minutes=30))

    session.refresh_from_db()
    assert session.status == CallSession.Status.IN_PROGRESS
    assert not CallEvent.objects.filter(session=session, type="abandoned").exists()


def test_it_uses_the_configured_quiet_time_by_default(alice, settings):
    settings.SESSION_STALE_AFTER_MINUTES = 60
    over = _session(alice, "ringing", quiet_for=timedelta(minutes=90))
    under = _session(alice, "ringing", quiet_for=timedelta(minutes=45))

    result = tasks.expire_stale_sessions.apply()

    assert result.get() == 1
    assert dict(CallSession.objects.values_list("pk", "status")) == {over.pk: "abandoned", under.pk: "ringing"}
    assert CallEvent.objects.get().data["reason"] == "no event for 60 minutes"


# --- ingests_retry -----------------------------------------------------------------------------------------


def _recording(owner: User, status: str, *, age: timedelta, attempts: int = 0) -> Recording:
    recording = RecordingFactory.create(session__owner=owner, status=status, attempts=attempts)
    Recording.objects.filter(pk=recording.pk).update(updated_at=timezone.now() - age)
    recording.refresh_from_db()
    return recording


def test_it_queues_again_what_did_not_finish(alice, queued, settings):
    settings.INGEST_MAX_ATTEMPTS = 5
    waiting = _recording(alice, "pending", age=timedelta(minutes=10))
    retryable = _recording(alice, "failed", age=timedelta(minutes=1), attempts=2)
    exhausted = _recording(alice, "failed", age=timedelta(hours=1), attempts=5)
    fresh = _recording(alice, "pending", age=timedelta(minutes=1))
    dead_claim = _recording(alice, "processing", age=timedelta(minutes=20))
    live_claim = _recording(alice, "processing", age=timedelta(minutes=5))
    done = _recording(alice, "available", age=timedelta(days=1))

    assert ingests_retry() == 3

    assert sorted(queued) == sorted([waiting.session_id, retryable.session_id, dead_claim.session_id])
    statuses = dict(Recording.objects.values_list("pk", "status"))
    assert statuses == {
        waiting.pk: "pending",
        retryable.pk: "pending",
        exhausted.pk: "failed",
        fresh.pk: "pending",
        dead_claim.pk: "processing",
        live_claim.pk: "processing",
        done.pk: "available",
    }
    exhausted_after = Recording.objects.get(pk=exhausted.pk)
    assert (exhausted_after.updated_at, exhausted_after.attempts) == (exhausted.updated_at, 5)


def test_it_does_not_queue_a_fresh_pending_recording_twice(alice, queued):
    fresh = _recording(alice, "pending", age=timedelta(minutes=1))

    assert ingests_retry() == 0
    assert ingests_retry() == 0

    assert queued == []
    assert Recording.objects.get(pk=fresh.pk).status == Recording.Status.PENDING


def test_it_completes_a_retried_failure_when_ingest_runs(alice, recordings_root: Path, eager):
    recording = _recording(alice, "failed", age=timedelta(minutes=30), attempts=1)
    audio = wav_bytes()
    write_folder(recordings_root, recording.session_id, audio=audio)  # the file has arrived meanwhile

    with eager():
        result = tasks.retry_failed_ingests.apply()

    assert result.get() == 1
    recording.refresh_from_db()
    assert (recording.status, recording.attempts) == (Recording.Status.AVAILABLE, 2)
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()
    assert recording.failure_reason == ""


def test_it_stops_retrying_at_the_attempt_cap(alice, recordings_root: Path, eager, settings):
    settings.INGEST_MAX_ATTEMPTS = 2
    recording = _recording(alice, "failed", age=timedelta(minutes=30), attempts=1)
    folder = recordings_root / "sessions" / str(recording.session_id)
    folder.mkdir(parents=True)
    corrupt_wav(folder / "recording.wav")

    with eager():
        first = ingests_retry()
    with eager():
        second = ingests_retry()

    assert (first, second) == (1, 0)
    recording.refresh_from_db()
    assert (recording.status, recording.attempts) == (Recording.Status.FAILED, 2)
    assert CallEvent.objects.filter(session_id=recording.session_id, type="recording_failed").count() == 1


# --- recordings_apply_retention ----------------------------------------------------------------------------


def _stored_recording(owner: User, root: Path, *, days_old: int, status: str = "available") -> Recording:
    session = CallSessionFactory.create(owner=owner, recording_status=status)
    CallSession.objects.filter(pk=session.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    write_folder(root, session.pk, audio=wav_bytes(), transcript=b"Agent: kept\n")
    return RecordingFactory.create(session=session, status=status, sha256="a" * 64, duration_ms=500, size_bytes=8044)


def test_it_keeps_every_recording_when_no_retention_is_configured(alice, recordings_root: Path, settings):
    settings.RECORDING_RETENTION_DAYS = 0
    ancient = _stored_recording(alice, recordings_root, days_old=3650)

    assert recordings_apply_retention() == 0
    assert tasks.apply_recording_retention.apply().get() == 0

    assert (recordings_root / ancient.file).exists()
    assert Recording.objects.get(pk=ancient.pk).status == Recording.Status.AVAILABLE
    assert not CallEvent.objects.exists()


def test_it_deletes_old_recording_files_and_keeps_their_rows(alice, api_client_for, recordings_root: Path, settings):
    settings.RECORDING_RETENTION_DAYS = 30
    old = _stored_recording(alice, recordings_root, days_old=40)
    old_failed = _stored_recording(alice, recordings_root, days_old=40, status="failed")
    old_pending = _stored_recording(alice, recordings_root, days_old=40, status="pending")
    recent = _stored_recording(alice, recordings_root, days_old=10)

    assert recordings_apply_retention() == 2

    for deleted in (old, old_failed):
        assert not (recordings_root / deleted.file).exists()
        # The rest of the folder (the transcript) stays.
        assert (recordings_root / "sessions" / str(deleted.session_id) / "transcript.txt").exists()
        row = Recording.objects.get(pk=deleted.pk)
        assert row.status == Recording.Status.DELETED
        assert (row.sha256, row.duration_ms, row.size_bytes, row.file) == ("a" * 64, 500, 8044, deleted.file)
        session = CallSession.objects.get(pk=deleted.session_id)
        assert session.recording_status == CallSession.RecordingStatus.ABSENT
        event = CallEvent.objects.get(session=session, type="recording_deleted")
        assert event.data == {"file": deleted.file, "policy": "retention of 30 days"}
    for kept in (old_pending, recent):
        assert (recordings_root / kept.file).exists()
        assert Recording.objects.get(pk=kept.pk).status == kept.status
        assert not CallEvent.objects.filter(session_id=kept.session_id).exists()
    assert CallSession.objects.count() == 4
    assert Recording.objects.count() == 4

    stream = api_client_for(alice).get(f"/api/crm/sessions/{old.session_id}/recording")
    assert stream.status_code == 404
    assert stream.json()["code"] == "recording_not_found"
    # A second run finds nothing more to delete and writes no second event.
    assert recordings_apply_retention() == 0
    assert CallEvent.objects.filter(type="recording_deleted").count() == 2


def test_it_applies_retention_given_as_an_argument(alice, recordings_root: Path, settings):
    settings.RECORDING_RETENTION_DAYS = 0
    old = _stored_recording(alice, recordings_root, days_old=8)

    assert recordings_apply_retention(days=7) == 1

    assert not (recordings_root / old.file).exists()
    assert CallEvent.objects.get(type="recording_deleted").data["policy"] == "retention of 7 days"


def test_it_runs_retention_as_its_celery_task(alice, recordings_root: Path, settings):
    settings.RECORDING_RETENTION_DAYS = 30
    old = _stored_recording(alice, recordings_root, days_old=31)

    assert tasks.apply_recording_retention.apply().get() == 1
    assert Recording.objects.get(pk=old.pk).status == Recording.Status.DELETED


# --- Broker down -------------------------------------------------------------------------------------------


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[str]:
    """Publishing a task fails as it does when Redis is unreachable; answers the ids it refused."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    refused: list[str] = []

    def delay(session_id: str) -> Any:
        refused.append(session_id)
        raise BrokerDown("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.ingest_session, "delay", delay)
    return refused


def test_it_keeps_uploads_and_adoptions_pending_while_the_broker_is_down_and_retries_later(
    alice,
    api_client_for,
    recordings_root: Path,
    broker_down,
    django_capture_on_commit_callbacks,
    settings,
    monkeypatch: pytest.MonkeyPatch,
):
    session = CallSessionFactory.create(owner=alice)
    audio = wav_bytes()
    orphan, _ = write_folder(recordings_root, audio=wav_bytes(tone=True), meta={"owner": "alice"})

    with django_capture_on_commit_callbacks(execute=True):
        upload = api_client_for(alice).put(f"/api/crm/sessions/{session.pk}/recording", audio, content_type="audio/wav")
    with django_capture_on_commit_callbacks(execute=True):
        report = orphans_sweep()

    assert upload.status_code == 201
    assert upload.json()["status"] == "pending"
    assert report.adopted == [orphan]
    # The upload queued its ingest, and the sweep queued it again (its folder had not been swept before).
    assert sorted(broker_down) == sorted([str(session.pk), str(session.pk), str(orphan)])
    assert set(Recording.objects.values_list("status", flat=True)) == {"pending"}
    assert set(CallSession.objects.values_list("recording_status", flat=True)) == {"pending"}

    # The broker is back; the periodic retry finds what waited longer than its grace period.
    monkeypatch.undo()
    settings.CELERY_TASK_ALWAYS_EAGER = True
    Recording.objects.update(updated_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert ingests_retry() == 2

    assert set(Recording.objects.values_list("status", flat=True)) == {"available"}
    assert Recording.objects.get(session=session).sha256 == hashlib.sha256(audio).hexdigest()
    assert set(CallSession.objects.values_list("recording_status", flat=True)) == {"available"}


def test_it_accepts_an_upload_when_redis_itself_is_unreachable(
    alice,
    api_client_for,
    recordings_root: Path,
    settings,
    django_capture_on_commit_callbacks,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    # A real publish to a Redis nobody listens on (port 1): the publish retry policy gives up quickly.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    # A Redis deployment's settings: no embedded filesystem transport (CELERY_BROKER_TRANSPORT) in front of the URL.
    monkeypatch.setitem(app.conf, "broker_transport", None)
    # Celery reads CELERY_BROKER_URL from the environment before its own setting (CI's PostgreSQL pass sets it).
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    # Forget the connection and producer pools of the configured broker, so the next publish dials Redis.
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    session = CallSessionFactory.create(owner=alice)
    audio = wav_bytes()

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(alice).put(
            f"/api/crm/sessions/{session.pk}/recording", audio, content_type="audio/wav"
        )

    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert (recordings_root / "sessions" / str(session.pk) / "recording.wav").read_bytes() == audio
    assert Recording.objects.get(session=session).status == Recording.Status.PENDING
    assert any(f"could not queue ingest of {session.pk}" in r.getMessage() for r in caplog.records)

    monkeypatch.undo()
    settings.CELERY_TASK_ALWAYS_EAGER = True
    Recording.objects.update(updated_at=timezone.now() - timedelta(minutes=10))
    assert ingests_retry() == 1
    assert Recording.objects.get(session=session).status == Recording.Status.AVAILABLE


def test_it_answers_a_transcript_upload_while_the_broker_is_down(alice, api_client_for, broker_down):
    session = CallSessionFactory.create(owner=alice)

    response = api_client_for(alice).put(
        f"/api/crm/sessions/{session.pk}/transcript", b"Agent: still works\n", content_type="text/plain"
    )

    assert response.status_code == 200
    assert response.json()["text"] == "Agent: still works"
    assert broker_down == []
