"""PUT /api/crm/sessions/<id>/recording and /transcript: raw bodies and multipart forms, sniffed content, size
limits, repeats and conflicts, who may upload, transcript formats and the search they feed."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from rest_framework.test import APIClient

from calls.ingest import session_ingest
from calls.maintenance import recordings_apply_retention
from calls.models import CallEvent, CallSession, Recording, Transcript, TranscriptSegment
from crm.models import User
from tests.audio import convert, corrupt_wav, dual_channel_wav, duration_ms, speech_wav
from tests.factories import CallSessionFactory, make_integration

pytestmark = pytest.mark.django_db

NOT_FOUND = {"detail": "Call session not found.", "code": "session_not_found"}
NOT_FOUND_GENERIC = {"detail": "Not found.", "code": "not_found"}

VTT = b"""WEBVTT

00:00:00.000 --> 00:00:02.500
<v Agent>Hello, thanks for calling Acme.

00:00:02.500 --> 00:00:05.000
<v Caller>I would like to cancel my subscription.
"""

SRT = b"""1
00:00:01,000 --> 00:00:03,000
Agent: Good morning.

2
00:00:03,500 --> 00:00:06,000
Caller: My parcel never arrived.
"""


# --- Fixtures and helpers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_speech_to_text(settings: Any) -> None:
    settings.TRANSCRIPTION_BACKEND = "none"


@pytest.fixture
def eager(settings: Any, django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """Ingest in-process: ``with eager(): response = client.put(...)`` runs the ingest the upload queued."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upload-audio")


@pytest.fixture(scope="module")
def speech(audio_dir: Path) -> Path:
    """About two seconds of mono 16 kHz speech."""
    return speech_wav(audio_dir / "speech.wav", "Hello, this is Callbook calling about your order.")


@pytest.fixture(scope="module")
def other_speech(audio_dir: Path) -> Path:
    return speech_wav(audio_dir / "other.wav", "A different call entirely.")


@pytest.fixture(scope="module")
def stereo_flac(audio_dir: Path) -> Path:
    """A dual-channel call at 8 kHz, as FLAC."""
    wav = dual_channel_wav(audio_dir / "dual.wav", "Good morning.", "Hi, I need help.", rate=8000)
    return convert(wav, audio_dir / "dual.flac")


@pytest.fixture
def session(alice: User) -> CallSession:
    return CallSessionFactory.create(owner=alice)


def recording_url(session_id: uuid.UUID | str) -> str:
    return f"/api/crm/sessions/{session_id}/recording"


def transcript_url(session_id: uuid.UUID | str) -> str:
    return f"/api/crm/sessions/{session_id}/transcript"


def folder_files(root: Path, session_id: uuid.UUID) -> list[str]:
    """The file names in sessions/<id>/ ([] when the folder does not exist)."""
    folder = root / "sessions" / str(session_id)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def nothing_stored(root: Path, session_id: uuid.UUID) -> None:
    assert folder_files(root, session_id) == []
    assert not Recording.objects.filter(session_id=session_id).exists()
    assert not CallEvent.objects.filter(session_id=session_id, type="recording_uploaded").exists()
    refreshed = CallSession.objects.get(pk=session_id)
    assert refreshed.recording_status == CallSession.RecordingStatus.NONE


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("recording.wav", b"RIFF....WAVEfmt not really")
    return buffer.getvalue()


# --- Recording: accepted ---------------------------------------------------------------------------------


def test_it_stores_a_raw_wav_body_and_ingests_it(
    api_client_for, alice, session, speech: Path, recordings_root: Path, eager
):
    audio = speech.read_bytes()
    with eager():
        response = api_client_for(alice).put(recording_url(session.pk), audio, content_type="audio/wav")

    assert response.status_code == 201
    assert response["X-Session-ID"] == str(session.pk)
    body = response.json()
    # The answer is written before the ingest (queued on commit) runs.
    assert body["status"] == "pending"
    assert (body["format"], body["content_type"], body["size_bytes"]) == ("wav", "audio/wav", len(audio))
    assert body["stream_url"] is None

    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    assert (recordings_root / "sessions" / str(session.pk) / "recording.wav").read_bytes() == audio
    sha256 = hashlib.sha256(audio).hexdigest()
    event = CallEvent.objects.get(session=session, type="recording_uploaded")
    assert event.data == {"file": f"sessions/{session.pk}/recording.wav", "size_bytes": len(audio), "sha256": sha256}

    recording = Recording.objects.get(session=session)
    assert recording.status == Recording.Status.AVAILABLE
    assert recording.file == f"sessions/{session.pk}/recording.wav"
    assert recording.sha256 == sha256
    assert recording.size_bytes == len(audio)
    assert recording.duration_ms is not None
    assert abs(recording.duration_ms - duration_ms(speech)) <= 100
    assert (recording.channels, recording.sample_rate) == (1, 16000)
    assert (recording.format, recording.codec) == ("wav", "pcm_s16le")
    assert recording.failure_reason == ""
    assert recording.attempts == 1
    session.refresh_from_db()
    assert session.recording_status == CallSession.RecordingStatus.AVAILABLE


def test_it_stores_a_multipart_upload_and_ingests_it(
    api_client_for, alice, session, stereo_flac: Path, recordings_root: Path, eager
):
    audio = stereo_flac.read_bytes()
    upload = SimpleUploadedFile("call.flac", audio, content_type="audio/flac")
    with eager():
        response = api_client_for(alice).put(recording_url(session.pk), {"file": upload}, format="multipart")

    assert response.status_code == 201
    assert response["X-Session-ID"] == str(session.pk)
    assert response.json()["status"] == "pending"
    # The stored name comes from the sniffed content, never from the client's file name.
    assert folder_files(recordings_root, session.pk) == ["recording.flac"]
    assert CallEvent.objects.filter(session=session, type="recording_uploaded").count() == 1

    recording = Recording.objects.get(session=session)
    assert recording.status == Recording.Status.AVAILABLE
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()
    assert recording.size_bytes == len(audio)
    assert recording.duration_ms is not None
    assert abs(recording.duration_ms - duration_ms(stereo_flac)) <= 100
    assert (recording.channels, recording.sample_rate) == (2, 8000)
    assert (recording.format, recording.content_type, recording.codec) == ("flac", "audio/flac", "flac")

    detail = api_client_for(alice).get(f"/api/crm/sessions/{session.pk}").json()
    assert detail["recording_status"] == "available"
    assert detail["recording"]["stream_url"] == f"http://testserver{recording_url(session.pk)}"


def test_it_trusts_the_content_not_the_declared_type_of_a_real_wav(
    api_client_for, alice, session, speech: Path, recordings_root: Path
):
    audio = speech.read_bytes()
    response = api_client_for(alice).put(recording_url(session.pk), audio, content_type="text/plain")

    assert response.status_code == 201
    assert response.json()["format"] == "wav"
    assert response.json()["content_type"] == "audio/wav"
    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    recording = Recording.objects.get(session=session)
    assert (recording.status, recording.format, recording.content_type) == ("pending", "wav", "audio/wav")


# --- Recording: refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"Agent: hello\nCaller: hi\n" * 20, "audio/wav"),
        (zip_bytes(), "audio/wav"),
        (zip_bytes(), "application/zip"),
        # RIFF but not WAVE: an AVI header.
        (b"RIFF\x24\x00\x00\x00AVI LIST" + b"\x00" * 64, "audio/wav"),
    ],
    ids=["text", "zip-as-wav", "zip", "riff-avi"],
)
def test_it_refuses_what_is_not_audio_and_stores_nothing(
    api_client_for, alice, session, recordings_root: Path, payload: bytes, content_type: str
):
    response = api_client_for(alice).put(recording_url(session.pk), payload, content_type=content_type)

    assert response.status_code == 415
    body = response.json()
    assert body["code"] == "unsupported_media_type"
    assert "nothing was stored" in body["detail"]
    nothing_stored(recordings_root, session.pk)


def test_it_refuses_a_multipart_file_that_is_not_audio(api_client_for, alice, session, recordings_root: Path):
    upload = SimpleUploadedFile("call.wav", b"not audio at all, just text", content_type="audio/wav")
    response = api_client_for(alice).put(recording_url(session.pk), {"file": upload}, format="multipart")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    nothing_stored(recordings_root, session.pk)


def test_it_refuses_a_multipart_form_without_a_file_part(api_client_for, alice, session, recordings_root: Path):
    response = api_client_for(alice).put(recording_url(session.pk), {"audio": "x"}, format="multipart")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "A multipart upload needs its file in a part named 'file'.",
        "code": "missing_file",
    }
    nothing_stored(recordings_root, session.pk)


def test_it_refuses_an_upload_over_the_limit_and_stores_nothing(
    api_client_for, alice, session, speech: Path, recordings_root: Path, settings
):
    settings.RECORDING_MAX_UPLOAD_BYTES = 1000
    audio = speech.read_bytes()
    assert len(audio) > 1000

    response = api_client_for(alice).put(recording_url(session.pk), audio, content_type="audio/wav")

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert response.json()["detail"].startswith("The upload is larger than the limit")
    nothing_stored(recordings_root, session.pk)


def test_it_refuses_a_multipart_upload_over_the_limit(
    api_client_for, alice, session, speech: Path, recordings_root: Path, settings
):
    settings.RECORDING_MAX_UPLOAD_BYTES = 1000
    upload = SimpleUploadedFile("call.wav", speech.read_bytes(), content_type="audio/wav")
    response = api_client_for(alice).put(recording_url(session.pk), {"file": upload}, format="multipart")

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    nothing_stored(recordings_root, session.pk)


def test_it_refuses_a_body_whose_content_length_is_over_the_limit_before_reading_it(
    api_client_for, alice, session, speech: Path, recordings_root: Path, settings
):
    settings.RECORDING_MAX_UPLOAD_BYTES = 1000
    audio = speech.read_bytes()[:800]
    # The declared length alone decides: the body is never read (the test client would raise if it were
    # read past its 800 real bytes).
    response = api_client_for(alice).put(
        recording_url(session.pk), audio, content_type="audio/wav", CONTENT_LENGTH="50000000"
    )

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    nothing_stored(recordings_root, session.pk)


def test_it_accepts_an_upload_of_exactly_the_limit(api_client_for, alice, session, speech: Path, settings):
    audio = speech.read_bytes()
    settings.RECORDING_MAX_UPLOAD_BYTES = len(audio)
    response = api_client_for(alice).put(recording_url(session.pk), audio, content_type="audio/wav")

    assert response.status_code == 201
    assert response.json()["size_bytes"] == len(audio)
    assert Recording.objects.get(session=session).size_bytes == len(audio)


def test_it_names_the_real_limit_when_refusing_an_upload(api_client_for, alice, session, speech: Path, settings):
    settings.RECORDING_MAX_UPLOAD_BYTES = 1000
    response = api_client_for(alice).put(recording_url(session.pk), speech.read_bytes(), content_type="audio/wav")

    assert response.status_code == 413
    # Not rounded down to "0 MiB".
    assert response.json()["detail"] == f"The upload is larger than the limit of {filesizeformat(1000)}."
    assert "1000" in response.json()["detail"]


def test_it_refuses_an_empty_body(api_client_for, alice, session, recordings_root: Path):
    response = api_client_for(alice).put(recording_url(session.pk), b"", content_type="audio/wav")

    assert response.status_code == 400
    assert response.json() == {"detail": "The upload is empty.", "code": "empty"}
    nothing_stored(recordings_root, session.pk)


def test_it_refuses_an_empty_multipart_file(api_client_for, alice, session, recordings_root: Path):
    upload = SimpleUploadedFile("call.wav", b"", content_type="audio/wav")
    response = api_client_for(alice).put(recording_url(session.pk), {"file": upload}, format="multipart")

    assert response.status_code == 400
    assert response.json() == {"detail": "The upload is empty.", "code": "empty"}
    nothing_stored(recordings_root, session.pk)


# --- Recording: repeats and conflicts --------------------------------------------------------------------


def test_it_answers_200_to_the_same_file_twice_and_keeps_one_recording(
    api_client_for, alice, session, speech: Path, recordings_root: Path, eager
):
    audio = speech.read_bytes()
    client = api_client_for(alice)
    with eager():
        first = client.put(recording_url(session.pk), audio, content_type="audio/wav")
    with eager() as callbacks:
        second = client.put(recording_url(session.pk), audio, content_type="audio/wav")

    assert first.status_code == 201
    assert second.status_code == 200
    assert second["X-Session-ID"] == str(session.pk)
    assert second.json()["status"] == "available"
    assert second.json()["sha256"] == hashlib.sha256(audio).hexdigest()
    assert callbacks == []  # nothing queued again
    assert Recording.objects.filter(session=session).count() == 1
    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    assert CallEvent.objects.filter(session=session, type="recording_uploaded").count() == 1


def test_it_answers_200_to_a_retry_of_the_same_file_before_its_ingest_ran(
    api_client_for, alice, session, speech: Path, recordings_root: Path
):
    audio = speech.read_bytes()
    client = api_client_for(alice)
    first = client.put(recording_url(session.pk), audio, content_type="audio/wav")
    second = client.put(recording_url(session.pk), audio, content_type="audio/wav")

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["status"] == "pending"
    assert second.json()["sha256"] == hashlib.sha256(audio).hexdigest()
    assert Recording.objects.filter(session=session).count() == 1
    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    assert CallEvent.objects.filter(session=session, type="recording_uploaded").count() == 1


def test_it_refuses_a_different_file_once_the_first_is_available(
    api_client_for, alice, session, speech: Path, other_speech: Path, recordings_root: Path, eager
):
    audio = speech.read_bytes()
    client = api_client_for(alice)
    with eager():
        client.put(recording_url(session.pk), audio, content_type="audio/wav")
    before = Recording.objects.get(session=session)

    with eager():
        response = client.put(recording_url(session.pk), other_speech.read_bytes(), content_type="audio/wav")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This session already has a different recording; recordings are never overwritten.",
        "code": "recording_exists",
    }
    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    assert (recordings_root / "sessions" / str(session.pk) / "recording.wav").read_bytes() == audio
    after = Recording.objects.get(session=session)
    assert (after.file, after.sha256, after.status, after.updated_at) == (
        before.file,
        before.sha256,
        Recording.Status.AVAILABLE,
        before.updated_at,
    )
    assert CallEvent.objects.filter(session=session, type="recording_uploaded").count() == 1


def test_it_replaces_a_failed_recording_with_a_new_upload(
    api_client_for, alice, session, speech: Path, recordings_root: Path, eager
):
    broken = corrupt_wav(recordings_root / "broken.wav").read_bytes()
    client = api_client_for(alice)
    with eager():
        client.put(recording_url(session.pk), broken, content_type="audio/wav")
    failed = Recording.objects.get(session=session)
    assert failed.status == Recording.Status.FAILED
    assert "truncated" in failed.failure_reason

    audio = speech.read_bytes()
    with eager():
        response = client.put(recording_url(session.pk), audio, content_type="audio/wav")

    assert response.status_code == 201
    recording = Recording.objects.get(session=session)
    assert recording.pk == failed.pk
    assert recording.status == Recording.Status.AVAILABLE
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()
    assert recording.failure_reason == ""
    assert recording.file != failed.file
    assert (recordings_root / recording.file).read_bytes() == audio
    assert CallEvent.objects.filter(session=session, type="recording_uploaded").count() == 2


def test_it_refuses_a_different_file_while_the_first_is_being_processed(
    api_client_for, alice, session, speech: Path, other_speech: Path, recordings_root: Path
):
    client = api_client_for(alice)
    client.put(recording_url(session.pk), speech.read_bytes(), content_type="audio/wav")
    Recording.objects.filter(session=session).update(status=Recording.Status.PROCESSING)

    different = client.put(recording_url(session.pk), other_speech.read_bytes(), content_type="audio/wav")
    same = client.put(recording_url(session.pk), speech.read_bytes(), content_type="audio/wav")

    assert different.status_code == 409
    assert different.json() == {
        "detail": "This session's recording is being processed right now; try again in a minute.",
        "code": "recording_processing",
    }
    assert same.status_code == 200
    assert same.json()["status"] == "processing"
    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    assert (recordings_root / "sessions" / str(session.pk) / "recording.wav").read_bytes() == speech.read_bytes()
    assert CallEvent.objects.filter(session=session, type="recording_uploaded").count() == 1


def test_it_stores_the_same_file_again_after_retention_deleted_it(
    api_client_for, alice, session, speech: Path, recordings_root: Path, eager
):
    audio = speech.read_bytes()
    client = api_client_for(alice)
    with eager():
        client.put(recording_url(session.pk), audio, content_type="audio/wav")
    CallSession.objects.filter(pk=session.pk).update(created_at=session.created_at - timedelta(days=60))
    assert recordings_apply_retention(days=30) == 1
    assert folder_files(recordings_root, session.pk) == []

    with eager():
        response = client.put(recording_url(session.pk), audio, content_type="audio/wav")

    assert response.status_code == 201
    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    recording = Recording.objects.get(session=session)
    assert (recording.status, recording.sha256) == (Recording.Status.AVAILABLE, hashlib.sha256(audio).hexdigest())
    assert CallSession.objects.get(pk=session.pk).recording_status == CallSession.RecordingStatus.AVAILABLE


def test_it_stores_the_same_file_again_when_the_first_copy_vanished_from_storage(
    api_client_for, alice, session, speech: Path, recordings_root: Path, eager
):
    """A client re-sends the bytes after their ingest failed because the stored file was gone."""
    audio = speech.read_bytes()
    client = api_client_for(alice)
    client.put(recording_url(session.pk), audio, content_type="audio/wav")
    (recordings_root / "sessions" / str(session.pk) / "recording.wav").unlink()
    session_ingest(session_id=session.pk)
    failed = Recording.objects.get(session=session)
    assert failed.status == Recording.Status.FAILED
    assert "no longer in storage" in failed.failure_reason

    with eager():
        response = client.put(recording_url(session.pk), audio, content_type="audio/wav")

    assert response.status_code in (200, 201)
    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    assert Recording.objects.get(session=session).status == Recording.Status.AVAILABLE


# --- Recording: who may upload ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [("alice", 201), ("carol", 201), ("admin_user", 201), ("bob", 404), ("charlie", 404), ("dave", 404)],
)
def test_it_lets_only_those_who_see_the_session_upload(
    request: pytest.FixtureRequest,
    api_client_for,
    session,
    speech: Path,
    recordings_root: Path,
    who: str,
    expected: int,
):
    user = request.getfixturevalue(who)
    audio = speech.read_bytes()
    response = api_client_for(user).put(recording_url(session.pk), audio, content_type="audio/wav")

    assert response.status_code == expected
    if expected == 404:
        assert response.json() == NOT_FOUND
        assert "X-Session-ID" not in response
        nothing_stored(recordings_root, session.pk)
    else:
        assert response["X-Session-ID"] == str(session.pk)
        assert response.json()["size_bytes"] == len(audio)
        assert folder_files(recordings_root, session.pk) == ["recording.wav"]
        assert Recording.objects.get(session=session).status == Recording.Status.PENDING


def test_it_answers_404_for_a_session_that_does_not_exist_or_a_malformed_id(
    api_client_for, admin_user, speech: Path, recordings_root: Path
):
    client = api_client_for(admin_user)
    for session_id in (str(uuid.uuid4()), "not-a-uuid", str(uuid.uuid4()).upper() + "x"):
        response = client.put(recording_url(session_id), speech.read_bytes(), content_type="audio/wav")
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
    # A path that climbs out of the folder matches no route at all.
    escape = client.put("/api/crm/sessions/..%2F..%2Fetc/recording", speech.read_bytes(), content_type="audio/wav")
    assert escape.status_code == 404
    assert escape.json() == NOT_FOUND_GENERIC
    assert not (recordings_root / "sessions").exists()
    assert not Recording.objects.exists()


def test_it_answers_404_for_an_archived_session(api_client_for, admin_user, alice, speech: Path, recordings_root: Path):
    archived = CallSessionFactory.create(owner=alice, archived_at=timezone.now())
    for client in (api_client_for(alice), api_client_for(admin_user)):
        recording = client.put(recording_url(archived.pk), speech.read_bytes(), content_type="audio/wav")
        transcript = client.put(transcript_url(archived.pk), VTT, content_type="text/vtt")
        assert (recording.status_code, recording.json()) == (404, NOT_FOUND)
        assert (transcript.status_code, transcript.json()) == (404, NOT_FOUND)
    nothing_stored(recordings_root, archived.pk)
    assert not Transcript.objects.exists()


def test_it_lets_an_integration_upload_to_its_own_sessions_only(
    integration_client: APIClient, alice, speech: Path, recordings_root: Path
):
    own = CallSessionFactory.create(owner=alice, source="pipecat-prod")
    foreign = CallSessionFactory.create(owner=alice, source="twilio")
    audio = speech.read_bytes()

    ok = integration_client.put(recording_url(own.pk), audio, content_type="audio/wav")
    refused = integration_client.put(recording_url(foreign.pk), audio, content_type="audio/wav")

    assert ok.status_code == 201
    assert ok["X-Session-ID"] == str(own.pk)
    assert folder_files(recordings_root, own.pk) == ["recording.wav"]
    assert Recording.objects.get(session=own).size_bytes == len(audio)
    assert refused.status_code == 404
    assert refused.json() == NOT_FOUND
    nothing_stored(recordings_root, foreign.pk)


def test_it_lets_a_signing_integration_upload_audio_without_a_signature(alice, speech: Path, recordings_root: Path):
    _, key = make_integration("signed", owner=alice, signing_secret="s")
    session = CallSessionFactory.create(owner=alice, source="signed")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    audio = speech.read_bytes()

    upload = client.put(recording_url(session.pk), audio, content_type="audio/wav")
    # Its JSON writes still need the signature.
    event = client.post(f"/api/crm/sessions/{session.pk}/events", {"type": "ringing"}, format="json")

    assert upload.status_code == 201
    assert upload.json()["size_bytes"] == len(audio)
    assert folder_files(recordings_root, session.pk) == ["recording.wav"]
    assert Recording.objects.filter(session=session).count() == 1
    assert event.status_code == 401
    assert event.json()["code"] == "invalid_signature"
    assert not CallEvent.objects.filter(session=session, type="ringing").exists()


# --- Transcripts -----------------------------------------------------------------------------------------


def test_it_parses_an_uploaded_webvtt_transcript_with_voices(api_client_for, alice, session, recordings_root: Path):
    response = api_client_for(alice).put(transcript_url(session.pk), VTT, content_type="text/vtt")

    assert response.status_code == 200
    assert response["X-Session-ID"] == str(session.pk)
    body = response.json()
    assert body["source"] == "provided"
    assert body["encoding"] == "utf-8"
    assert body["had_replacements"] is False
    assert body["text"] == "Agent: Hello, thanks for calling Acme.\nCaller: I would like to cancel my subscription."
    assert body["segments"] == [
        {"position": 0, "speaker": "Agent", "start_ms": 0, "end_ms": 2500, "text": "Hello, thanks for calling Acme."},
        {
            "position": 1,
            "speaker": "Caller",
            "start_ms": 2500,
            "end_ms": 5000,
            "text": "I would like to cancel my subscription.",
        },
    ]
    assert folder_files(recordings_root, session.pk) == ["transcript.vtt"]
    assert (recordings_root / "sessions" / str(session.pk) / "transcript.vtt").read_bytes() == VTT
    transcript = Transcript.objects.get(session=session)
    assert transcript.file == f"sessions/{session.pk}/transcript.vtt"
    assert transcript.checksum == hashlib.sha256(VTT).hexdigest()
    event = CallEvent.objects.get(session=session, type="transcript_uploaded")
    assert event.data == {"file": transcript.file, "segments": 2, "encoding": "utf-8"}


def test_it_parses_an_srt_transcript_named_by_the_type_parameter(api_client_for, alice, session, recordings_root):
    # `?type=`, not `?format=`: DRF reserves `format` to choose a renderer.
    response = api_client_for(alice).put(f"{transcript_url(session.pk)}?type=srt", SRT, content_type="text/plain")

    assert response.status_code == 200
    assert folder_files(recordings_root, session.pk) == ["transcript.srt"]
    assert [(s["speaker"], s["start_ms"], s["end_ms"], s["text"]) for s in response.json()["segments"]] == [
        ("Agent", 1000, 3000, "Good morning."),
        ("Caller", 3500, 6000, "My parcel never arrived."),
    ]


def test_it_parses_an_srt_transcript_from_its_file_name(api_client_for, alice, session, recordings_root: Path):
    upload = SimpleUploadedFile("call.srt", SRT, content_type="application/octet-stream")
    response = api_client_for(alice).put(transcript_url(session.pk), {"file": upload}, format="multipart")

    assert response.status_code == 200
    assert [(s["speaker"], s["start_ms"], s["end_ms"], s["text"]) for s in response.json()["segments"]] == [
        ("Agent", 1000, 3000, "Good morning."),
        ("Caller", 3500, 6000, "My parcel never arrived."),
    ]
    assert folder_files(recordings_root, session.pk) == ["transcript.srt"]


def test_it_parses_an_srt_transcript_from_its_content_type(api_client_for, alice, session):
    response = api_client_for(alice).put(transcript_url(session.pk), SRT, content_type="application/x-subrip")

    assert response.status_code == 200
    assert [s["speaker"] for s in response.json()["segments"]] == ["Agent", "Caller"]
    assert Transcript.objects.get(session=session).file.endswith("/transcript.srt")


def test_it_parses_json_segments(api_client_for, alice, session):
    payload = {
        "language": "en",
        "segments": [
            {"speaker": "agent", "start_ms": 0, "end_ms": 1200, "text": "Welcome to Acme support."},
            {"speaker": "caller", "start": 1.5, "end": 3.25, "text": "My router keeps rebooting."},
        ],
    }
    response = api_client_for(alice).put(
        transcript_url(session.pk), json.dumps(payload).encode(), content_type="application/json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["language"] == "en"
    assert body["source"] == "provided"
    assert body["segments"] == [
        {"position": 0, "speaker": "agent", "start_ms": 0, "end_ms": 1200, "text": "Welcome to Acme support."},
        {"position": 1, "speaker": "caller", "start_ms": 1500, "end_ms": 3250, "text": "My router keeps rebooting."},
    ]
    assert Transcript.objects.get(session=session).file.endswith("/transcript.json")


def test_it_reads_a_cp1252_transcript(api_client_for, alice, session):
    raw = "Agent: Bonjour, ici le service après-vente.\nCaller: Très bien, merci.\n".encode("cp1252")
    response = api_client_for(alice).put(transcript_url(session.pk), raw, content_type="text/plain")

    assert response.status_code == 200
    body = response.json()
    assert body["encoding"] == "cp1252"
    assert body["had_replacements"] is False
    assert [(s["speaker"], s["text"]) for s in body["segments"]] == [
        ("Agent", "Bonjour, ici le service après-vente."),
        ("Caller", "Très bien, merci."),
    ]
    assert Transcript.objects.get(session=session).encoding == "cp1252"


def test_it_replaces_an_earlier_transcript_instead_of_appending(api_client_for, alice, session):
    client = api_client_for(alice)
    client.put(transcript_url(session.pk), VTT, content_type="text/vtt")
    response = client.put(transcript_url(session.pk), b"Agent: Second version only.\n", content_type="text/plain")

    assert response.status_code == 200
    assert [(s["position"], s["speaker"], s["text"]) for s in response.json()["segments"]] == [
        (0, "Agent", "Second version only.")
    ]
    transcript = Transcript.objects.get(session=session)
    assert transcript.text == "Agent: Second version only."
    assert list(TranscriptSegment.objects.filter(transcript=transcript).values_list("text", flat=True)) == [
        "Second version only."
    ]
    assert TranscriptSegment.objects.count() == 1
    assert Transcript.objects.count() == 1
    assert CallEvent.objects.filter(session=session, type="transcript_uploaded").count() == 2
    detail = client.get(f"/api/crm/sessions/{session.pk}").json()
    assert [s["text"] for s in detail["transcript"]["segments"]] == ["Second version only."]


def test_it_uses_the_latest_upload_when_the_same_name_is_uploaded_twice(
    api_client_for, alice, session, recordings_root: Path, speech: Path, eager
):
    client = api_client_for(alice)
    client.put(transcript_url(session.pk), b"Agent: first words\n", content_type="text/plain")
    client.put(transcript_url(session.pk), b"Agent: second words\n", content_type="text/plain")
    # A later ingest (the recording arrives) re-reads the folder: the newest upload stays the transcript.
    with eager():
        client.put(recording_url(session.pk), speech.read_bytes(), content_type="audio/wav")

    transcript = Transcript.objects.get(session=session)
    assert transcript.text == "Agent: second words"
    assert (recordings_root / transcript.file).read_bytes() == b"Agent: second words\n"
    assert Recording.objects.get(session=session).status == Recording.Status.AVAILABLE


@pytest.mark.parametrize(
    ("raw", "content_type", "code", "status"),
    [
        (b'{"segments": [', "application/json", "invalid_transcript", 400),
        (b'{"nothing": "here"}', "application/json", "invalid_transcript", 400),
        (b"%PDF-1.7 not a transcript", "text/plain", "invalid_transcript", 400),
        (b"", "text/plain", "empty", 400),
        (b"  \n\n  ", "text/plain", "empty", 400),
    ],
    ids=["broken-json", "json-without-text", "pdf", "empty", "blank"],
)
def test_it_refuses_a_transcript_it_cannot_read_and_stores_nothing(
    api_client_for, alice, session, recordings_root: Path, raw: bytes, content_type: str, code: str, status: int
):
    response = api_client_for(alice).put(transcript_url(session.pk), raw, content_type=content_type)

    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    if code == "invalid_transcript":
        assert body["detail"].startswith("The transcript could not be read: ")
    assert folder_files(recordings_root, session.pk) == []
    assert not Transcript.objects.exists()
    assert not CallEvent.objects.filter(session=session).exists()


def test_it_refuses_an_oversize_transcript(api_client_for, alice, session, recordings_root: Path, settings):
    settings.TRANSCRIPT_MAX_UPLOAD_BYTES = 100
    raw = b"Agent: " + b"la " * 100
    response = api_client_for(alice).put(transcript_url(session.pk), raw, content_type="text/plain")

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert folder_files(recordings_root, session.pk) == []
    assert not Transcript.objects.exists()


def test_it_keeps_the_previous_transcript_when_a_replacement_is_refused(api_client_for, alice, session):
    client = api_client_for(alice)
    client.put(transcript_url(session.pk), VTT, content_type="text/vtt")
    refused = client.put(transcript_url(session.pk), b"[1, 2", content_type="application/json")

    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_transcript"
    transcript = Transcript.objects.get(session=session)
    assert transcript.segments.count() == 2
    assert transcript.text.startswith("Agent: Hello")


@pytest.mark.parametrize("who", ["bob", "charlie", "dave"])
def test_it_answers_404_to_a_transcript_upload_on_someone_elses_session(
    request: pytest.FixtureRequest, api_client_for, session, recordings_root: Path, who: str
):
    response = api_client_for(request.getfixturevalue(who)).put(
        transcript_url(session.pk), VTT, content_type="text/vtt"
    )

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert folder_files(recordings_root, session.pk) == []
    assert not Transcript.objects.exists()


def test_it_finds_a_session_by_a_word_of_its_uploaded_transcript(api_client_for, alice, carol, session):
    other = CallSessionFactory.create(owner=alice)
    client = api_client_for(alice)
    client.put(transcript_url(session.pk), VTT, content_type="text/vtt")
    client.put(transcript_url(other.pk), b"Agent: nothing about that here\n", content_type="text/plain")

    found = client.get("/api/crm/sessions/", {"q": "subscription"})
    nothing = client.get("/api/crm/sessions/", {"q": "zeppelin"})
    by_manager = api_client_for(carol).get("/api/crm/sessions/", {"q": "subscription"})

    assert found.status_code == 200
    assert [row["id"] for row in found.json()["results"]] == [str(session.pk)]
    assert nothing.json()["results"] == []
    assert [row["id"] for row in by_manager.json()["results"]] == [str(session.pk)]


def test_it_finds_a_session_by_a_word_of_a_replacement_transcript_only(api_client_for, alice, session):
    client = api_client_for(alice)
    client.put(transcript_url(session.pk), VTT, content_type="text/vtt")
    client.put(transcript_url(session.pk), b"Caller: I want a refund.\n", content_type="text/plain")

    assert [r["id"] for r in client.get("/api/crm/sessions/", {"q": "refund"}).json()["results"]] == [str(session.pk)]
    assert client.get("/api/crm/sessions/", {"q": "subscription"}).json()["results"] == []


def test_it_does_not_let_search_reveal_sessions_of_others(api_client_for, alice, charlie, session):
    api_client_for(alice).put(transcript_url(session.pk), VTT, content_type="text/vtt")

    response = api_client_for(charlie).get("/api/crm/sessions/", {"q": "subscription"})

    assert response.status_code == 200
    assert response.json()["results"] == []
