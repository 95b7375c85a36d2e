"""Ingest through a real Celery worker process, on the configured broker (filesystem locally, Redis in CI)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from calls.models import CallSession, Recording, Transcript
from calls.tasks import ingest_enqueue, sweep_orphans
from crm.services import api_token_create
from tests.audio import convert, corrupt_wav, dual_channel_wav, speech_wav
from tests.factories import CallSessionFactory, UserFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CONTAINERS = [".wav", ".flac", ".ogg", ".opus", ".mp3", ".webm", ".m4a"]


def wait_until_settled(session_ids: list[uuid.UUID], timeout: float = 120) -> dict[uuid.UUID, Recording]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recordings = {r.session_id: r for r in Recording.objects.filter(session_id__in=session_ids)}
        if len(recordings) == len(session_ids) and all(
            r.status in {"available", "failed"} for r in recordings.values()
        ):
            return recordings
        time.sleep(0.3)
    states = dict(Recording.objects.filter(session_id__in=session_ids).values_list("session_id", "status"))
    pytest.fail(f"ingest did not finish within {timeout}s: {states}")


def drop(root: Path, session_id: uuid.UUID, files: dict[str, bytes]) -> None:
    folder = root / "sessions" / str(session_id)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def test_it_ingests_every_container_and_transcript_through_a_real_worker(celery_worker, recordings_root, tmp_path):
    alice = UserFactory.create(username="alice")
    speech = speech_wav(tmp_path / "speech.wav", "thanks for calling northwind solar", rate=16000)
    cases: dict[uuid.UUID, tuple[str, Path]] = {}
    for suffix in CONTAINERS:
        source = speech if suffix == ".wav" else convert(speech, tmp_path / f"speech{suffix}")
        cases[CallSessionFactory.create(owner=alice).pk] = (suffix, source)
    dual = dual_channel_wav(tmp_path / "dual.wav", "hello this is the agent", "hi this is the caller")
    cases[CallSessionFactory.create(owner=alice).pk] = ("dual", dual)
    broken = CallSessionFactory.create(owner=alice).pk
    cases[broken] = ("corrupt", corrupt_wav(tmp_path / "corrupt.wav"))
    transcripts = {
        ".wav": ("transcript.txt", "Agent: Ïlse from 從化 speaking\n".encode()),
        ".flac": ("transcript.txt", "Agent: café \u2013 résumé\n".encode("cp1252")),
        ".ogg": ("transcript.txt", "\ufeffAgent: Hallo Welt\n".encode("utf-16-le")),
        ".opus": ("transcript.vtt", b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n<v Agent>Northwind here\n"),
        ".mp3": ("transcript.srt", b"1\n00:00:00,000 --> 00:00:01,000\nAgent: bad \xc3\x28 byte\n"),
        ".webm": (
            "transcript.json",
            b'{"segments": [{"speaker": "agent", "start_ms": 0, "end_ms": 900, "text": "Hi"}]}',
        ),
    }
    for session_id, (kind, source) in cases.items():
        name = "recording.wav" if kind in {"dual", "corrupt"} else f"recording{source.suffix}"
        files = {name: source.read_bytes()}
        if kind in transcripts:
            files[transcripts[kind][0]] = transcripts[kind][1]
        drop(recordings_root, session_id, files)
        Recording.objects.create(session_id=session_id, file=f"sessions/{session_id}/{name}")
        assert ingest_enqueue(session_id=session_id)

    settled = wait_until_settled(list(cases))

    for session_id, (kind, _) in cases.items():
        recording = settled[session_id]
        if kind == "corrupt":
            assert recording.status == "failed"
            assert "truncated" in recording.failure_reason
            continue
        assert recording.status == "available", (kind, recording.failure_reason)
        assert recording.duration_ms is not None
        assert recording.duration_ms > 1000
        assert recording.channels == (2 if kind == "dual" else 1)
        assert len(recording.sha256) == 64
    texts = dict(Transcript.objects.values_list("session_id", "text"))
    by_kind = {kind: session_id for session_id, (kind, _) in cases.items()}
    assert "從化" in texts[by_kind[".wav"]]
    assert "résumé" in texts[by_kind[".flac"]]
    assert "Hallo Welt" in texts[by_kind[".ogg"]]
    assert "Northwind here" in texts[by_kind[".opus"]]
    assert "\ufffd" in texts[by_kind[".mp3"]]
    assert Transcript.objects.get(session_id=by_kind[".webm"]).segments.get().end_ms == 900


def test_it_makes_a_dropped_folder_a_searchable_session_after_one_sweep(celery_worker, recordings_root, tmp_path):
    alice = UserFactory.create(username="alice")
    _, key = api_token_create(user=alice)
    orphan = uuid.uuid4()
    speech = speech_wav(tmp_path / "speech.wav", "hello", rate=8000)
    drop(
        recordings_root,
        orphan,
        {
            "recording.wav": speech.read_bytes(),
            "transcript.txt": b"Agent: we discussed the photovoltaic upgrade\n",
            "meta.json": b'{"owner": "alice", "source": "pipecat-prod", "external_id": "CA-1"}',
        },
    )

    assert sweep_orphans.delay().get(timeout=60).startswith("1 folders: 1 adopted")
    wait_until_settled([orphan])

    session = CallSession.objects.get(pk=orphan)
    assert (session.origin, session.owner, session.external_id) == ("adopted", alice, "CA-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    found = client.get("/api/crm/sessions/?q=photovoltaic").json()["results"]
    assert [row["id"] for row in found] == [str(orphan)]
