"""Hostile uploads to PUT /api/crm/sessions/<id>/recording and /transcript, and to the contact import.

Not audio (text, PNG, a zip, HTML named .wav and declared audio/wav, HTML behind a WAV header), oversize bodies,
compression bombs (gzip with Content-Encoding, a zip in a form), several files in one form, odd content types and
empty bodies: each is refused with a 4xx ``{"detail", "code"}`` and leaves no file, row or event behind. Audio
"bombs" that pass the upload (a FLAC header claiming ten hours, a few hundred KB of FLAC that decode to hours of
silence) are stopped by the ingest's duration limit, fast, with the reason on the recording.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from calls.ingest import session_ingest
from calls.models import CallEvent, CallSession, Recording, Transcript
from campaigns.models import ContactImport
from tests.factories import CallSessionFactory
from tests.security.world import MANAGER, OWNER, World, tiny_wav

pytestmark = pytest.mark.django_db

HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64


@pytest.fixture(autouse=True)
def _no_speech_to_text(settings: Any) -> None:
    settings.TRANSCRIPTION_BACKEND = "none"


@pytest.fixture
def target(world: World) -> CallSession:
    """Alice's session with no recording or transcript yet."""
    return CallSessionFactory.create(owner=world.alice, source="pipecat-prod", external_id="upload-target")


@pytest.fixture
def owner(world: World) -> APIClient:
    return world.api_client(OWNER)


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


class Nothing:
    """Asserts that a refused upload left no file in storage, no row and no event."""

    def __init__(self, root: Path, session: CallSession) -> None:
        self.root, self.session = root, session
        self.files = files_under(root)
        self.events = CallEvent.objects.filter(session=session).count()

    def assert_unchanged(self, response: Any) -> None:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:500])
        body = response.json()
        assert set(body) >= {"detail", "code"}, body
        assert body["detail"]
        assert files_under(self.root) == self.files
        assert not Recording.objects.filter(session=self.session).exists()
        assert not Transcript.objects.filter(session=self.session).exists()
        assert CallEvent.objects.filter(session=self.session).count() == self.events


def put_raw(client: APIClient, session: CallSession, kind: str, body: bytes, content_type: str, **extra: Any) -> Any:
    return client.put(f"/api/crm/sessions/{session.pk}/{kind}", body, content_type=content_type, **extra)


def put_form(client: APIClient, session: CallSession, kind: str, data: dict[str, Any]) -> Any:
    return client.put(f"/api/crm/sessions/{session.pk}/{kind}", data, format="multipart")


def zip_of(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


NOT_AUDIO = {
    "text": (b"Agent: hello\nCaller: hi\n", "text/plain"),
    "png-declared-wav": (PNG, "audio/wav"),
    "zip-of-a-wav": (zip_of("call.wav", tiny_wav()), "audio/wav"),
    "html-declared-wav": (HTML, "audio/wav"),
    "html-declared-mpeg": (HTML, "audio/mpeg"),
    "pdf": (b"%PDF-1.7\n" + b"0" * 100, "audio/wav"),
    "elf-binary": (b"\x7fELF\x02\x01\x01" + b"\x00" * 100, "application/octet-stream"),
    # A RIFF container of something else: the sniffer checks the form type too.
    "riff-avi": (b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x00" * 64, "audio/wav"),
}


@pytest.mark.parametrize("label", list(NOT_AUDIO))
def test_it_refuses_a_raw_body_that_is_not_audio(owner, target, recordings_root, label):
    nothing = Nothing(recordings_root, target)
    body, content_type = NOT_AUDIO[label]
    response = put_raw(owner, target, "recording", body, content_type)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    nothing.assert_unchanged(response)


@pytest.mark.parametrize("label", list(NOT_AUDIO))
def test_it_refuses_a_form_file_that_is_not_audio_whatever_its_name(owner, target, recordings_root, label):
    nothing = Nothing(recordings_root, target)
    body, _ = NOT_AUDIO[label]
    upload = SimpleUploadedFile("recording.wav", body, content_type="audio/wav")
    response = put_form(owner, target, "recording", {"file": upload})
    assert response.status_code == 415
    nothing.assert_unchanged(response)


def test_it_never_serves_html_hidden_behind_a_wav_header(owner, target, recordings_root):
    """A WAV header in front of HTML passes the sniffer; decoding it fails, so it is never played or served."""
    polyglot = b"RIFF" + struct.pack("<I", 4 + len(HTML)) + b"WAVE" + HTML
    response = put_raw(owner, target, "recording", polyglot, "audio/wav")
    if response.status_code >= 400:  # refused outright: as good
        assert response.json()["code"]
        return
    assert session_ingest(session_id=target.pk) == Recording.Status.FAILED
    assert owner.get(f"/api/crm/sessions/{target.pk}/recording").status_code == 404
    assert owner.get(f"/api/crm/sessions/{target.pk}").json()["recording"]["stream_url"] is None


def test_it_refuses_an_oversize_recording_and_stores_nothing(owner, target, recordings_root, settings):
    settings.RECORDING_MAX_UPLOAD_BYTES = 4_000
    nothing = Nothing(recordings_root, target)
    response = put_raw(owner, target, "recording", tiny_wav(seconds=1.0), "audio/wav")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    nothing.assert_unchanged(response)


def test_it_refuses_an_oversize_form_file_and_stores_nothing(owner, target, recordings_root, settings):
    settings.RECORDING_MAX_UPLOAD_BYTES = 4_000
    nothing = Nothing(recordings_root, target)
    upload = SimpleUploadedFile("call.wav", tiny_wav(seconds=1.0), content_type="audio/wav")
    response = put_form(owner, target, "recording", {"file": upload})
    assert response.status_code == 413
    nothing.assert_unchanged(response)


def test_it_refuses_an_oversize_transcript_and_stores_nothing(owner, target, recordings_root, settings):
    settings.TRANSCRIPT_MAX_UPLOAD_BYTES = 1_000
    nothing = Nothing(recordings_root, target)
    response = put_raw(owner, target, "transcript", b"Agent: hello there.\n" * 100, "text/plain")
    assert response.status_code == 413
    nothing.assert_unchanged(response)


def _bomb(size: int) -> bytes:
    return gzip.compress(b"\x00" * size, compresslevel=9)


@pytest.mark.parametrize("kind", ["recording", "transcript"])
def test_it_does_not_inflate_a_gzip_bomb_sent_with_content_encoding(owner, target, recordings_root, kind):
    """200 MB of zeros in 200 KB: refused as what it is, never decompressed (memory stays small)."""
    bomb = _bomb(200 * 1024 * 1024)
    assert len(bomb) < 300_000
    nothing = Nothing(recordings_root, target)
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = put_raw(owner, target, kind, bomb, "audio/wav", HTTP_CONTENT_ENCODING="gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.0f} MB: the body was inflated"
    assert response.status_code in {400, 415}
    nothing.assert_unchanged(response)


@pytest.mark.parametrize("kind", ["recording", "transcript"])
def test_it_refuses_a_zip_bomb_in_a_form(owner, target, recordings_root, kind):
    bomb = zip_of("recording.wav", b"\x00" * (200 * 1024 * 1024))
    assert len(bomb) < 500_000
    nothing = Nothing(recordings_root, target)
    upload = SimpleUploadedFile(f"call.{'wav' if kind == 'recording' else 'txt'}", bomb, content_type="audio/wav")
    response = put_form(owner, target, kind, {"file": upload})
    assert response.status_code in {400, 415}
    nothing.assert_unchanged(response)


@pytest.mark.parametrize("kind", ["recording", "transcript"])
def test_it_refuses_several_files_in_one_form(owner, target, recordings_root, kind):
    """One upload is one file: a second one would otherwise be dropped in silence (or chosen over the first)."""
    content = tiny_wav() if kind == "recording" else b"Agent: hello\n"
    nothing = Nothing(recordings_root, target)
    first = SimpleUploadedFile("a.wav" if kind == "recording" else "a.txt", content)
    second = SimpleUploadedFile("b.wav" if kind == "recording" else "b.txt", content)
    response = put_form(owner, target, kind, {"file": [first, second]})
    assert response.status_code == 400
    nothing.assert_unchanged(response)
    extra = SimpleUploadedFile("c.wav", content)
    response = put_form(owner, target, kind, {"file": SimpleUploadedFile("a.wav", content), "other": extra})
    assert response.status_code == 400
    nothing.assert_unchanged(response)


@pytest.mark.parametrize("kind", ["recording", "transcript"])
def test_it_refuses_a_form_with_fields_it_would_ignore(owner, target, recordings_root, kind):
    content = tiny_wav() if kind == "recording" else b"Agent: hello\n"
    nothing = Nothing(recordings_root, target)
    upload = SimpleUploadedFile("a.wav" if kind == "recording" else "a.txt", content)
    response = put_form(owner, target, kind, {"file": upload, "owner": "bob"})
    assert response.status_code == 400
    nothing.assert_unchanged(response)


@pytest.mark.parametrize("kind", ["recording", "transcript"])
def test_it_refuses_a_form_without_its_file_part(owner, target, recordings_root, kind):
    nothing = Nothing(recordings_root, target)
    response = put_form(owner, target, kind, {"note": "no file here"})
    assert response.status_code == 400
    nothing.assert_unchanged(response)


@pytest.mark.parametrize("kind", ["recording", "transcript"])
def test_it_refuses_a_multipart_body_without_a_boundary(owner, target, recordings_root, kind):
    nothing = Nothing(recordings_root, target)
    response = put_raw(owner, target, kind, tiny_wav(), "multipart/form-data")
    assert response.status_code == 400
    nothing.assert_unchanged(response)


@pytest.mark.parametrize("kind", ["recording", "transcript"])
@pytest.mark.parametrize("content_type", ["audio/wav", "text/plain", "multipart/form-data; boundary=x"])
def test_it_refuses_an_empty_body(owner, target, recordings_root, kind, content_type):
    nothing = Nothing(recordings_root, target)
    response = put_raw(owner, target, kind, b"", content_type)
    assert response.status_code == 400
    nothing.assert_unchanged(response)


def test_it_refuses_binary_sent_as_a_transcript(owner, target, recordings_root):
    for body in (PNG, zip_of("t.txt", b"Agent: hi"), tiny_wav(), b"\x00\x01\x02\x03" * 500):
        nothing = Nothing(recordings_root, target)
        response = put_raw(owner, target, "transcript", body, "text/plain")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_transcript"
        nothing.assert_unchanged(response)


def test_it_reads_the_content_not_the_declared_type_of_real_audio(owner, target, recordings_root):
    """Content is sniffed, never trusted from a Content-Type: real audio under a wrong type is still audio."""
    response = put_raw(owner, target, "recording", tiny_wav(), "application/json")
    assert response.status_code == 201
    assert response.json()["format"] == "wav"


# --- Audio bombs: stopped by the ingest ------------------------------------------------------------------------


def silence_flac(seconds: float, rate: int = 8000) -> bytes:
    """FLAC of digital silence: each 4608-sample frame compresses to a few dozen bytes."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        zeros = np.zeros((1, 4608), dtype=np.int16)
        for pts in range(0, int(seconds * rate), 4608):
            frame = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def claiming_total_samples(flac: bytes, total: int) -> bytes:
    """The same FLAC with STREAMINFO's 36-bit total-samples field set to ``total``."""
    assert flac[:4] == b"fLaC"
    packed = int.from_bytes(flac[18:26], "big")
    packed = (packed & ~((1 << 36) - 1)) | total
    return flac[:18] + packed.to_bytes(8, "big") + flac[26:]


def upload_and_ingest(owner: APIClient, session: CallSession, audio: bytes) -> tuple[Recording, float]:
    response = put_raw(owner, session, "recording", audio, "audio/flac")
    assert response.status_code == 201, response.content
    started = time.monotonic()
    session_ingest(session_id=session.pk)
    return Recording.objects.get(session=session), time.monotonic() - started


def test_it_stops_decoding_audio_that_runs_past_the_duration_limit(owner, target, settings):
    """Two hours of silence in about 1.3 MB: the ingest gives up at the limit instead of decoding it all."""
    settings.RECORDING_MAX_DURATION_SECONDS = 60
    bomb = silence_flac(2 * 3600)
    assert len(bomb) < 2_000_000
    recording, elapsed = upload_and_ingest(owner, target, bomb)
    assert recording.status == Recording.Status.FAILED
    assert "longer than" in recording.failure_reason
    assert "1 min" in recording.failure_reason
    assert elapsed < 1.0, f"{elapsed:.2f} s: decoded far past the limit"
    assert owner.get(f"/api/crm/sessions/{target.pk}/recording").status_code == 404


def test_it_refuses_at_once_a_header_that_declares_more_than_the_limit(owner, target, settings):
    settings.RECORDING_MAX_DURATION_SECONDS = 3600
    liar = claiming_total_samples(silence_flac(2), total=8000 * 10 * 3600)  # "ten hours"
    recording, elapsed = upload_and_ingest(owner, target, liar)
    assert recording.status == Recording.Status.FAILED
    assert "longer than" in recording.failure_reason or "truncated" in recording.failure_reason
    assert elapsed < 1.0


def test_it_ingests_audio_within_the_duration_limit(owner, target, settings):
    settings.RECORDING_MAX_DURATION_SECONDS = 60
    audio = silence_flac(30)
    recording, _ = upload_and_ingest(owner, target, audio)
    assert recording.status == Recording.Status.AVAILABLE
    assert recording.duration_ms == pytest.approx(30_000, abs=600)
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()


# --- The campaigns' contact import (POST /api/crm/imports) -----------------------------------------------------


@pytest.fixture
def manager(world: World) -> APIClient:
    return world.api_client(MANAGER)


class NoImport:
    """Asserts that a refused CSV upload left no import row and no file in the media storage."""

    def __init__(self, media_root: Path) -> None:
        self.media_root = media_root
        self.files = files_under(media_root) if media_root.exists() else set()
        self.imports = ContactImport.objects.count()

    def assert_unchanged(self, response: Any) -> None:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:500])
        assert set(response.json()) >= {"detail", "code"}, response.json()
        assert ContactImport.objects.count() == self.imports
        assert (files_under(self.media_root) if self.media_root.exists() else set()) == self.files


def import_raw(client: APIClient, body: bytes, content_type: str = "text/csv", **extra: Any) -> Any:
    return client.post("/api/crm/imports", body, content_type=content_type, **extra)


NOT_CSV = {
    "png": PNG,
    "zip": zip_of("contacts.csv", b"name,phone\nAda,+12025550142\n"),
    "xlsx-like-zip": zip_of("xl/workbook.xml", b"<workbook/>"),
    "gzip": gzip.compress(b"name,phone\n" * 1000),
    "elf-binary": b"\x7fELF\x02\x01\x01" + b"\x00" * 200,
    "wav": tiny_wav(),
}


@pytest.mark.parametrize("label", list(NOT_CSV))
def test_it_refuses_a_contact_import_that_is_not_csv(manager, settings, label):
    nothing = NoImport(Path(settings.MEDIA_ROOT))
    response = import_raw(manager, NOT_CSV[label])
    assert response.status_code in {400, 415}
    nothing.assert_unchanged(response)
    upload = SimpleUploadedFile("contacts.csv", NOT_CSV[label], content_type="text/csv")
    response = manager.post("/api/crm/imports", {"file": upload}, format="multipart")
    assert response.status_code in {400, 415}
    nothing.assert_unchanged(response)


def test_it_refuses_an_oversize_contact_import(manager, settings):
    settings.CONTACT_IMPORT_MAX_BYTES = 1_000
    nothing = NoImport(Path(settings.MEDIA_ROOT))
    body = b"name,phone\n" + b"Ada Lovelace,+12025550142\n" * 100
    response = import_raw(manager, body)
    assert response.status_code == 413
    nothing.assert_unchanged(response)


def test_it_does_not_inflate_a_gzip_bomb_sent_as_a_contact_import(manager, settings):
    bomb = _bomb(200 * 1024 * 1024)
    nothing = NoImport(Path(settings.MEDIA_ROOT))
    tracemalloc.start()
    try:
        response = import_raw(manager, bomb, HTTP_CONTENT_ENCODING="gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.0f} MB: the body was inflated"
    assert response.status_code in {400, 415}
    nothing.assert_unchanged(response)


def test_it_refuses_an_empty_contact_import(manager, settings):
    nothing = NoImport(Path(settings.MEDIA_ROOT))
    response = import_raw(manager, b"")
    assert 400 <= response.status_code < 500
    nothing.assert_unchanged(response)


def test_it_refuses_several_files_in_one_contact_import(manager, settings):
    nothing = NoImport(Path(settings.MEDIA_ROOT))
    first = SimpleUploadedFile("a.csv", b"name,phone\nAda,+12025550142\n", content_type="text/csv")
    second = SimpleUploadedFile("b.csv", b"name,phone\nGrace,+12025550143\n", content_type="text/csv")
    response = manager.post("/api/crm/imports", {"file": [first, second]}, format="multipart")
    assert response.status_code == 400
    nothing.assert_unchanged(response)
