"""The recordings storage on S3: the behaviours the local-folder tests prove, run against a real S3-compatible
server (moto's standalone server on 127.0.0.1) through ``storages.backends.s3.S3Storage`` with the OPTIONS
crm/settings.py builds, ``callbook`` prefix included.

Lazy adoption, malformed ids, uploads, playback through signed URLs, the orphan sweep (also over more than
1,000 folders), readiness, a corrupt recording and an unreachable endpoint; each test gets a bucket of its own.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import tracemalloc
import uuid
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.endpoint import Endpoint
from django.test import Client
from storages.backends.s3 import S3Storage

from calls import adoption, maintenance, tasks
from calls.ingest import CHUNK, local_recording, session_ingest
from calls.maintenance import list_session_folders, orphans_sweep
from calls.models import CallEvent, CallSession, Recording, StorageFolder, Transcript
from calls.storage import inspect_session_folder, recordings_storage
from calls.streaming import CACHE_CONTROL
from crm.models import User
from tests.audio import corrupt_wav, duration_ms, speech_wav
from tests.factories import CallSessionFactory, RecordingFactory
from tests.s3 import (  # noqa: F401  # moto_server_fixture, s3_recordings_fixture: the fixtures, by name
    ACCESS_KEY,
    PREFIX,
    REGION,
    S3Recordings,
    free_port,
    http_open,
    moto_server_fixture,
    s3_recordings_fixture,
    use_s3_recordings,
)

pytestmark = pytest.mark.django_db

NOT_FOUND_SESSION = {"detail": "Call session not found.", "code": "session_not_found"}
NOT_FOUND_GENERIC = {"detail": "Not found.", "code": "not_found"}

VTT = b"""WEBVTT

00:00:00.000 --> 00:00:02.500
<v Agent>Hello, thanks for calling Acme.

00:00:02.500 --> 00:00:05.000
<v Caller>I would like to cancel my subscription.
"""

VTT_SEGMENTS = [
    {"position": 0, "speaker": "Agent", "start_ms": 0, "end_ms": 2500, "text": "Hello, thanks for calling Acme."},
    {
        "position": 1,
        "speaker": "Caller",
        "start_ms": 2500,
        "end_ms": 5000,
        "text": "I would like to cancel my subscription.",
    },
]


# --- Fixtures and helpers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_speech_to_text(settings: Any) -> None:
    settings.TRANSCRIPTION_BACKEND = "none"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """The cast's passwords are hashed once per test; nothing here is about them, so hash them cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def eager(settings: Any, django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """Run what is queued in-process: ``with eager(): client.get(...)`` runs the ingest the request queued."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About three seconds of mono 16 kHz speech (espeak-ng)."""
    return speech_wav(tmp_path_factory.mktemp("s3-audio") / "speech.wav", "Hello, thanks for calling Acme.")


def wav_bytes(seconds: float = 0.5, rate: int = 8000, *, tone: bool = False) -> bytes:
    """A small valid mono 16-bit WAV (silence, or a square wave to tell files apart)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((b"\x00\x10" if tone else b"\x00\x00") * int(seconds * rate))
    return buffer.getvalue()


def put_folder(
    s3: S3Recordings,
    session_id: uuid.UUID | None = None,
    *,
    audio: bytes | None = None,
    meta: dict[str, Any] | None = None,
    transcript: bytes | None = None,
    transcript_name: str = "transcript.vtt",
    name: str | None = None,
) -> uuid.UUID:
    """Writes ``sessions/<id>/`` into the bucket the way a media server would (no folder objects: S3 has none)."""
    sid = session_id or uuid.uuid4()
    folder = f"sessions/{name or sid}"
    if audio is not None:
        s3.put(f"{folder}/recording.wav", audio)
    if meta is not None:
        s3.put(f"{folder}/meta.json", json.dumps(meta).encode())
    if transcript is not None:
        s3.put(f"{folder}/{transcript_name}", transcript)
    return sid


def url(session_id: uuid.UUID | str) -> str:
    return f"/api/crm/sessions/{session_id}"


def recording_url(session_id: uuid.UUID | str) -> str:
    return f"/api/crm/sessions/{session_id}/recording"


def counts() -> tuple[int, int, int, int]:
    return CallSession.objects.count(), Recording.objects.count(), CallEvent.objects.count(), Transcript.objects.count()


def signed_url_query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


@pytest.fixture
def s3_forbidden(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way to S3 fails loudly and is recorded: the storage's methods, and any request botocore sends."""
    attempts: list[str] = []

    def forbid(what: str) -> Callable[..., Any]:
        def forbidden(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise AssertionError(f"S3 was reached: {what}")

        return forbidden

    for name in ("listdir", "exists", "size", "open", "_open", "save", "_save", "url", "delete"):
        monkeypatch.setattr(S3Storage, name, forbid(f"S3Storage.{name}"))
    monkeypatch.setattr(Endpoint, "make_request", forbid("botocore request"))
    return attempts


# --- Lazy adoption -----------------------------------------------------------------------------------------


def test_it_adopts_an_orphaned_s3_folder_on_first_look_and_ingests_it(
    alice, api_client_for, s3_recordings: S3Recordings, speech: Path, eager
):
    audio = speech.read_bytes()
    sid = put_folder(
        s3_recordings,
        audio=audio,
        meta={"owner": "alice", "from": "+14155550100", "external_id": "media-42"},
        transcript=VTT,
    )
    client = api_client_for(alice)

    with eager() as callbacks:
        response = client.get(url(sid))

    assert len(callbacks) == 1
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(sid)
    assert body["adopted"] is True
    assert (body["origin"], body["status"], body["auto_created"]) == ("adopted", "completed", True)
    assert (body["owner"], body["team"], body["source"]) == ("alice", "Sales", "storage")
    assert (body["external_id"], body["from_number"]) == ("media-42", "+14155550100")
    # The answer is written before the ingest (queued on commit) runs.
    assert (body["recording_status"], body["recording"]["status"]) == ("pending", "pending")
    assert [(e["type"], e["data"]["by"], e["data"]["files"]) for e in body["events"]] == [
        ("adopted", "alice", ["meta.json", "recording.wav", "transcript.vtt"])
    ]

    # The ingest ran in-process when the adoption committed: downloaded from S3, hashed, probed, parsed.
    recording = Recording.objects.get(session_id=sid)
    assert recording.file == f"sessions/{sid}/recording.wav"
    assert recording.status == Recording.Status.AVAILABLE
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()
    assert recording.size_bytes == len(audio)
    assert recording.duration_ms is not None
    assert abs(recording.duration_ms - duration_ms(speech)) <= 100
    assert (recording.format, recording.content_type, recording.codec) == ("wav", "audio/wav", "pcm_s16le")
    assert (recording.channels, recording.sample_rate, recording.failure_reason) == (1, 16000, "")
    session = CallSession.objects.get(pk=sid)
    assert session.recording_status == CallSession.RecordingStatus.AVAILABLE
    assert session.owner == alice
    transcript = Transcript.objects.get(session_id=sid)
    assert (transcript.source, transcript.file) == (Transcript.Source.PROVIDED, f"sessions/{sid}/transcript.vtt")
    assert transcript.checksum == hashlib.sha256(VTT).hexdigest()
    segments = transcript.segments.order_by("position")
    assert list(segments.values("position", "speaker", "start_ms", "end_ms", "text")) == VTT_SEGMENTS

    # The next look finds the row; the app wrote nothing into the bucket.
    again = client.get(url(sid)).json()
    assert again["adopted"] is False
    assert again["recording"]["status"] == "available"
    assert again["recording"]["sha256"] == recording.sha256
    assert again["recording"]["stream_url"] == f"http://testserver{recording_url(sid)}"
    assert again["transcript"]["segments"] == VTT_SEGMENTS
    assert s3_recordings.keys() == [
        f"sessions/{sid}/meta.json",
        f"sessions/{sid}/recording.wav",
        f"sessions/{sid}/transcript.vtt",
    ]
    assert counts() == (1, 1, 1, 1)


def test_it_does_not_adopt_for_an_agent_an_s3_folder_meta_does_not_assign_to_them(
    alice, bob, api_client_for, s3_recordings: S3Recordings
):
    sid = put_folder(s3_recordings, audio=wav_bytes(), meta={"owner": "alice"})

    response = api_client_for(bob).get(url(sid))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_SESSION
    assert counts() == (0, 0, 0, 0)


def test_it_answers_404_for_a_well_formed_id_with_no_s3_folder(alice, api_client_for, s3_recordings: S3Recordings):
    sid = uuid.uuid4()
    # Keys that merely start with the id are another folder: the listing is of "sessions/<id>/", slash included.
    put_folder(s3_recordings, audio=wav_bytes(), meta={"owner": "alice"}, name=f"{sid}-retry")
    s3_recordings.put(f"sessions/{sid}.wav", wav_bytes())
    # The empty "folder" object the S3 console creates is no file of the folder.
    s3_recordings.put(f"sessions/{sid}/", b"")

    response = api_client_for(alice).get(url(sid))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_SESSION
    assert counts() == (0, 0, 0, 0)


# --- Malformed ids never reach S3 --------------------------------------------------------------------------

SAMPLE = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"

# (path, answer): ids that reach the view get the session 404; paths that decode to several segments match no
# route and get the generic JSON 404.
MALFORMED = {
    "traversal-encoded": ("/api/crm/sessions/..%2F..%2Fx", NOT_FOUND_GENERIC),
    "traversal-to-bucket-root": (f"/api/crm/sessions/{SAMPLE}%2F..%2F..%2F..", NOT_FOUND_GENERIC),
    "not-a-uuid": ("/api/crm/sessions/not-a-uuid", NOT_FOUND_SESSION),
    "dotdot-encoded": ("/api/crm/sessions/%2e%2e", NOT_FOUND_SESSION),
    "prefix-wildcard": ("/api/crm/sessions/3f2b8c1e-", NOT_FOUND_SESSION),
    "uuid-then-nul": (f"/api/crm/sessions/{SAMPLE}%00", NOT_FOUND_SESSION),
    "recording-of-not-a-uuid": ("/api/crm/sessions/not-a-uuid/recording", NOT_FOUND_SESSION),
}


@pytest.mark.parametrize(("path", "expected"), list(MALFORMED.values()), ids=list(MALFORMED))
def test_it_answers_404_for_a_malformed_id_without_reaching_s3(
    path: str, expected: dict[str, str], admin_user, api_client_for, s3_recordings: S3Recordings, s3_forbidden
):
    client = api_client_for(admin_user)

    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == expected
    assert s3_forbidden == []
    assert counts() == (0, 0, 0, 0)


def test_it_reaches_s3_for_a_well_formed_id_so_the_tests_above_prove_something(
    admin_user, api_client_for, s3_recordings: S3Recordings, s3_forbidden
):
    with pytest.raises(AssertionError, match="S3 was reached"):
        api_client_for(admin_user).get(url(SAMPLE))

    assert s3_forbidden == ["S3Storage.listdir"]


def test_it_refuses_an_upload_to_a_malformed_id_without_reaching_s3(
    admin_user, api_client_for, s3_recordings: S3Recordings, s3_forbidden
):
    response = api_client_for(admin_user).put(recording_url("not-a-uuid"), wav_bytes(), content_type="audio/wav")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_SESSION
    assert s3_forbidden == []
    assert counts() == (0, 0, 0, 0)


# --- Uploads -----------------------------------------------------------------------------------------------


def test_it_stores_an_upload_under_the_prefix_and_ingests_it(
    alice, api_client_for, s3_recordings: S3Recordings, speech: Path, eager
):
    session = CallSessionFactory.create(owner=alice)
    audio = speech.read_bytes()

    with eager():
        response = api_client_for(alice).put(recording_url(session.pk), audio, content_type="audio/wav")

    assert response.status_code == 201
    assert response["X-Session-ID"] == str(session.pk)
    body = response.json()
    assert body["status"] == "pending"
    assert (body["format"], body["content_type"], body["size_bytes"]) == ("wav", "audio/wav", len(audio))
    sha256 = hashlib.sha256(audio).hexdigest()
    assert body["sha256"] == sha256

    # In the bucket, under the storage's prefix; the row keeps the key without it.
    key = f"sessions/{session.pk}/recording.wav"
    head = s3_recordings.client.head_object(Bucket=s3_recordings.bucket, Key=f"{PREFIX}/{key}")
    assert head["ContentLength"] == len(audio)
    assert s3_recordings.get(key) == audio
    assert s3_recordings.keys() == [key]
    event = CallEvent.objects.get(session=session, type="recording_uploaded")
    assert event.data == {"file": key, "size_bytes": len(audio), "sha256": sha256}

    recording = Recording.objects.get(session=session)
    assert (recording.file, recording.status, recording.sha256) == (key, Recording.Status.AVAILABLE, sha256)
    assert recording.size_bytes == len(audio)
    assert recording.duration_ms is not None
    assert abs(recording.duration_ms - duration_ms(speech)) <= 100
    assert (recording.channels, recording.sample_rate, recording.codec) == (1, 16000, "pcm_s16le")
    assert recording.attempts == 1
    session.refresh_from_db()
    assert session.recording_status == CallSession.RecordingStatus.AVAILABLE


def test_it_refuses_a_non_audio_upload_and_writes_no_object(alice, api_client_for, s3_recordings: S3Recordings):
    session = CallSessionFactory.create(owner=alice)

    response = api_client_for(alice).put(
        recording_url(session.pk), b"Agent: hello\nCaller: hi\n" * 20, content_type="audio/wav"
    )

    assert response.status_code == 415
    body = response.json()
    assert body["code"] == "unsupported_media_type"
    assert "nothing was stored" in body["detail"]
    assert s3_recordings.keys() == []
    assert not Recording.objects.filter(session=session).exists()
    assert not CallEvent.objects.filter(session=session, type="recording_uploaded").exists()
    session.refresh_from_db()
    assert session.recording_status == CallSession.RecordingStatus.NONE


# --- Playback: a signed URL S3 serves itself ---------------------------------------------------------------


def test_it_redirects_playback_to_a_signed_url_that_serves_the_bytes_and_ranges(
    alice, api_client_for, s3_recordings: S3Recordings
):
    audio = wav_bytes(seconds=1.0, tone=True)
    session = CallSessionFactory.create(owner=alice)
    key = f"sessions/{session.pk}/recording.wav"
    s3_recordings.put(key, audio)
    RecordingFactory.create(session=session, file=key, sha256=hashlib.sha256(audio).hexdigest(), size_bytes=len(audio))
    client = api_client_for(alice)

    response = client.get(recording_url(session.pk))

    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}" == s3_recordings.endpoint_url
    assert location.path == f"/{s3_recordings.bucket}/{PREFIX}/{key}"
    query = signed_url_query(response["Location"])
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]
    assert query["X-Amz-Signature"][0]
    assert query["X-Amz-Credential"][0].startswith(f"{ACCESS_KEY}/")
    assert query["X-Amz-Credential"][0].endswith(f"/{REGION}/s3/aws4_request")
    assert query["response-content-type"] == ["audio/wav"]
    assert query["response-content-disposition"] == [f'inline; filename="{session.pk}.wav"']
    assert query["response-cache-control"] == [CACHE_CONTROL]

    with http_open(response["Location"]) as whole:
        assert whole.status == 200
        assert whole.read() == audio
        assert whole.headers["Content-Type"] == "audio/wav"
        assert whole.headers["Content-Disposition"] == f'inline; filename="{session.pk}.wav"'

    # A player seeking asks S3 for a range: the app is not involved.
    with http_open(response["Location"], headers={"Range": "bytes=0-99"}) as part:
        assert part.status == 206
        assert part.headers["Content-Range"] == f"bytes 0-99/{len(audio)}"
        assert part.read() == audio[:100]

    # A Range sent to the app gets the same redirect (the range is for S3 to answer).
    ranged = client.get(recording_url(session.pk), HTTP_RANGE="bytes=100-199")
    assert ranged.status_code == 302
    assert urlsplit(ranged["Location"]).path == location.path


def test_it_answers_404_for_playback_of_a_recording_that_is_not_available_without_signing(
    alice, api_client_for, s3_recordings: S3Recordings
):
    session = CallSessionFactory.create(owner=alice)
    RecordingFactory.create(session=session, status=Recording.Status.PENDING)

    response = api_client_for(alice).get(recording_url(session.pk))

    assert response.status_code == 404
    assert response.json() == {"detail": "This call session has no playable recording.", "code": "recording_not_found"}
    assert "Location" not in response


# --- The orphan sweep --------------------------------------------------------------------------------------


def test_it_sweeps_s3_folders_adopting_the_audio_ones_and_reporting_the_others(
    alice, s3_recordings: S3Recordings, monkeypatch: pytest.MonkeyPatch, eager
):
    with_meta = [put_folder(s3_recordings, audio=wav_bytes(), meta={"owner": "alice"}) for _ in range(10)]
    audio_only = [put_folder(s3_recordings, audio=wav_bytes(tone=True)) for _ in range(8)]
    transcript_only = [
        put_folder(s3_recordings, transcript=b"Agent: hello there\n", transcript_name="transcript.txt")
        for _ in range(6)
    ]
    put_folder(s3_recordings, audio=wav_bytes(), name="not-a-session-id!")
    s3_recordings.put("sessions/", b"")  # a console-made "folder" object: not a session folder
    adoptable = sorted(with_meta + audio_only)

    with eager():
        report = orphans_sweep()

    assert (report.folders, report.unchanged, report.attached) == (25, 0, [])
    assert sorted(report.adopted) == adoptable
    assert (report.without_audio, report.not_session_ids) == (6, ["not-a-session-id!"])
    sessions = {s.pk: s for s in CallSession.objects.select_related("owner")}
    assert sorted(sessions) == adoptable
    assert {sid for sid, s in sessions.items() if s.owner == alice} == set(with_meta)
    assert {sid for sid, s in sessions.items() if s.owner is None and s.team is None} == set(audio_only)
    assert all(s.origin == CallSession.Origin.ADOPTED for s in sessions.values())
    statuses = dict(Recording.objects.values_list("session_id", "status"))
    assert statuses == dict.fromkeys(adoptable, Recording.Status.AVAILABLE)
    assert Recording.objects.get(session_id=audio_only[0]).sha256 == hashlib.sha256(wav_bytes(tone=True)).hexdigest()
    # S3 folders have no mtime: the ledger signs them with "" and skips them once they are dealt with.
    ledger = sorted(StorageFolder.objects.values_list("session_id", "state", "checked_signature"))
    assert ledger == [(sid, StorageFolder.State.ADOPTED, "") for sid in adoptable]
    before = counts()

    # Second sweep, nothing changed: no folder that was dealt with is opened, nothing is queued.
    looked_at: list[uuid.UUID] = []
    real_inspect = inspect_session_folder

    def spy(**kwargs: Any) -> Any:
        looked_at.append(kwargs["session_id"])
        if kwargs["session_id"] not in transcript_only:
            raise AssertionError(f"a folder that was dealt with was opened: {kwargs!r}")
        return real_inspect(**kwargs)

    def no_queueing(**kwargs: Any) -> bool:
        raise AssertionError(f"an ingest was queued: {kwargs!r}")

    def opened(**kwargs: Any) -> Any:
        raise AssertionError(f"a folder was opened: {kwargs!r}")

    monkeypatch.setattr(maintenance, "inspect_session_folder", opened)
    monkeypatch.setattr(adoption, "inspect_session_folder", spy)
    monkeypatch.setattr(tasks, "ingest_enqueue", no_queueing)

    with eager():
        again = orphans_sweep()

    assert (again.folders, again.unchanged, again.adopted, again.attached) == (25, 18, [], [])
    assert (again.without_audio, again.not_session_ids) == (6, ["not-a-session-id!"])
    # Only the folders still waiting for their audio are looked at again (by design: they were not dealt with).
    assert sorted(looked_at) == sorted(transcript_only)
    assert counts() == before
    assert sorted(StorageFolder.objects.values_list("session_id", "state", "checked_signature")) == ledger


def test_it_lists_and_sweeps_more_than_a_thousand_s3_folders(
    s3_recordings: S3Recordings, monkeypatch: pytest.MonkeyPatch
):
    ids = [uuid.uuid4() for _ in range(1100)]
    started = time.monotonic()
    s3_recordings.put_many({f"sessions/{sid}/meta.json": b"{}" for sid in ids})
    assert time.monotonic() - started < 20, "creating the objects took too long; lower the count to 1,050"
    listings: list[int] = []
    client = recordings_storage().connection.meta.client  # type: ignore[attr-defined]
    client.meta.events.register(
        "after-call.s3.ListObjects", lambda parsed, **kwargs: listings.append(len(parsed.get("CommonPrefixes", [])))
    )

    listing = list_session_folders()

    assert sorted(listing) == sorted(str(sid) for sid in ids)
    assert set(listing.values()) == {""}
    # Every folder came from the ListObjects pages django-storages walks, none twice. AWS answers at most 1,000
    # names a page; moto's ListObjects (v1, what django-storages calls) truncates only Contents, never
    # CommonPrefixes, so against moto the 1,100 folders arrive in one page and the page boundary itself is not
    # exercised here (botocore's paginator follows NextMarker on AWS).
    assert sum(listings) == 1100

    # The sweep sees every one of them (the per-folder work is stubbed: only the listing is under test here).
    asked: list[uuid.UUID] = []

    def adopt(*, session_id: uuid.UUID, requester: User | None) -> None:
        asked.append(session_id)

    monkeypatch.setattr(maintenance, "orphan_adopt", adopt)
    report = orphans_sweep()

    assert (report.folders, report.without_audio, report.adopted, report.not_session_ids) == (1100, 1100, [], [])
    assert sorted(asked) == sorted(ids)


def test_it_does_not_misreport_an_s3_folder_named_by_an_uppercase_id(s3_recordings: S3Recordings, eager):
    sid = uuid.uuid4()
    put_folder(s3_recordings, audio=wav_bytes(), name=str(sid).upper())

    with eager():
        report = orphans_sweep()

    assert report.without_audio == 0
    assert report.adopted == [sid] or report.not_session_ids == [str(sid).upper()]


def test_it_fails_a_corrupt_s3_recording_with_a_reason_while_its_neighbour_succeeds(
    s3_recordings: S3Recordings, tmp_path: Path, eager
):
    good = put_folder(s3_recordings, audio=wav_bytes())
    broken = put_folder(s3_recordings, audio=corrupt_wav(tmp_path / "corrupt.wav").read_bytes())

    with eager():
        report = orphans_sweep()

    assert sorted(report.adopted) == sorted([good, broken])
    statuses = dict(Recording.objects.values_list("session_id", "status"))
    assert statuses == {good: Recording.Status.AVAILABLE, broken: Recording.Status.FAILED}
    failed = Recording.objects.get(session_id=broken)
    assert failed.failure_reason.startswith("The WAV file is truncated")
    assert failed.sha256 == ""
    assert CallSession.objects.get(pk=broken).recording_status == CallSession.RecordingStatus.FAILED
    event = CallEvent.objects.get(session_id=broken, type="recording_failed")
    assert event.data == {"file": f"sessions/{broken}/recording.wav", "reason": failed.failure_reason, "attempt": 1}
    fine = Recording.objects.get(session_id=good)
    assert (fine.duration_ms, fine.failure_reason) == (500, "")
    assert CallSession.objects.get(pk=good).recording_status == CallSession.RecordingStatus.AVAILABLE
    # Both keep their objects: a failed ingest deletes nothing.
    assert s3_recordings.keys() == sorted([f"sessions/{good}/recording.wav", f"sessions/{broken}/recording.wav"])


# --- Ingest streams from S3 --------------------------------------------------------------------------------


def test_it_ingests_an_s3_recording_without_holding_it_in_memory(s3_recordings: S3Recordings):
    # 7 MiB: under boto3's 8 MiB multipart threshold, so one GET streams it (no parallel ranged parts).
    audio = wav_bytes(seconds=7 * CHUNK / 16000, rate=8000, tone=True)
    key = "sessions/00000000-0000-4000-8000-000000000001/recording.wav"
    s3_recordings.put(key, audio)
    recordings_storage().listdir("")  # connect first: building the boto3 client is not what is measured

    tracemalloc.start()
    try:
        with local_recording(key) as (path, facts):
            _, peak = tracemalloc.get_traced_memory()
            assert path.read_bytes() == audio
    finally:
        tracemalloc.stop()

    assert (facts.size, facts.sha256, facts.format) == (len(audio), hashlib.sha256(audio).hexdigest(), "wav")
    assert not path.exists()
    # Streaming needs a few chunks in memory, not the whole file: with the S3File spooled to disk past 1 MiB
    # (max_memory_size=1 MiB) the peak measures about 2.4 MiB; as configured it is the whole file and more.
    assert peak < 4 * CHUNK, f"{peak / CHUNK:.1f} MiB in memory to ingest a {len(audio) / CHUNK:.1f} MiB recording"


def test_it_treats_an_unreachable_s3_endpoint_as_a_transient_ingest_failure(
    alice, settings, monkeypatch: pytest.MonkeyPatch
):
    session = CallSessionFactory.create(owner=alice)
    RecordingFactory.create(session=session, status=Recording.Status.PENDING)
    # Nothing listens there: connections are refused at once, as when MinIO or the network is down.
    use_s3_recordings(settings, bucket="callbook-unreachable", endpoint_url=f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries would only make the test slower

    with pytest.raises(Exception, match=r"127\.0\.0\.1") as caught:
        session_ingest(session_id=session.pk)

    # The claim is given back either way: nothing is lost, the question is only who tries again, and when.
    recording = Recording.objects.get(session=session)
    assert (recording.status, recording.failure_reason) == (Recording.Status.PENDING, "")
    assert not CallEvent.objects.filter(session=session, type="recording_failed").exists()
    assert isinstance(caught.value, tasks.TRANSIENT_ERRORS), (
        f"{type(caught.value).__module__}.{type(caught.value).__name__} is not retried by the ingest_session task"
    )


# --- Readiness ---------------------------------------------------------------------------------------------


def test_it_is_ready_with_the_s3_recordings_storage(s3_recordings: S3Recordings):
    response = Client().get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "recordings_storage": "ok"},
        "failed": [],
    }
    assert isinstance(recordings_storage(), S3Storage)


def test_it_answers_503_naming_the_recordings_storage_when_the_bucket_does_not_exist(
    settings, s3_recordings: S3Recordings
):
    use_s3_recordings(settings, bucket=f"{s3_recordings.bucket}-missing", endpoint_url=s3_recordings.endpoint_url)

    response = Client().get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["recordings_storage"]
    assert (body["checks"]["database"], body["checks"]["broker"]) == ("ok", "ok")
    assert body["checks"]["recordings_storage"].startswith("failed: NoSuchBucket: ")
    assert "The specified bucket does not exist" in body["checks"]["recordings_storage"]


def test_it_answers_503_naming_the_recordings_storage_when_s3_is_unreachable(settings):
    use_s3_recordings(settings, bucket="callbook-unreachable", endpoint_url=f"http://127.0.0.1:{free_port()}")
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 1.0

    started = time.monotonic()
    response = Client().get("/readyz")

    # Bounded by the health-check timeout (plus its one second of grace) whatever botocore's retries do.
    assert time.monotonic() - started < 4
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["recordings_storage"]
    assert (body["checks"]["database"], body["checks"]["broker"]) == ("ok", "ok")
    reason = body["checks"]["recordings_storage"]
    assert reason.startswith(("failed: EndpointConnectionError: Could not connect", "failed: no answer within"))
