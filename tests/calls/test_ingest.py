"""Ingest of recordings (every accepted container, dual-channel, broken files) and of provided transcripts."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from calls.ingest import session_ingest
from calls.models import CallSession, Recording, Transcript
from crm.models import User
from tests.audio import convert, corrupt_wav, dual_channel_wav, duration_ms, speech_wav
from tests.factories import CallSessionFactory

pytestmark = pytest.mark.django_db

SPOKEN = "hello this is the callbook recording test"


def session_with_file(owner: User, root: Path, source_file: Path, name: str | None = None) -> CallSession:
    session = CallSessionFactory.create(owner=owner, recording_status=CallSession.RecordingStatus.PENDING)
    folder = root / "sessions" / str(session.pk)
    folder.mkdir(parents=True)
    target = folder / (name or f"recording{source_file.suffix}")
    target.write_bytes(source_file.read_bytes())
    Recording.objects.create(session=session, file=f"sessions/{session.pk}/{target.name}")
    return session


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech_wav(tmp_path_factory.mktemp("audio") / "speech.wav", SPOKEN, rate=16000)


@pytest.mark.parametrize(
    ("suffix", "container", "codec"),
    [
        (".wav", "wav", "pcm_s16le"),
        (".flac", "flac", "flac"),
        (".ogg", "ogg", "vorbis"),
        (".opus", "opus", "opus"),
        (".mp3", "mp3", "mp3"),
        (".webm", "webm", "opus"),
        (".m4a", "m4a", "aac"),
    ],
)
def test_it_ingests_every_accepted_container(alice, recordings_root, speech, tmp_path, suffix, container, codec):
    source = speech if suffix == ".wav" else convert(speech, tmp_path / f"speech{suffix}")
    session = session_with_file(alice, recordings_root, source)
    assert session_ingest(session_id=session.pk) == "available"
    recording = Recording.objects.get(session=session)
    assert recording.status == "available", recording.failure_reason
    assert recording.format == container
    assert recording.codec == codec
    assert recording.channels == 1
    assert recording.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert recording.size_bytes == source.stat().st_size
    # Lossy encoders pad a few frames; the duration must still be the spoken audio's.
    assert recording.duration_ms is not None
    assert abs(recording.duration_ms - duration_ms(speech)) <= 120
    assert recording.content_type.startswith("audio/")
    assert len(recording.waveform) > 10
    assert max(recording.waveform) > 0.05
    assert recording.talk_ms[0] > 500
    session.refresh_from_db()
    assert session.recording_status == "available"
    assert session.duration_ms == recording.duration_ms


def test_it_recognises_dual_channel_audio_and_each_sides_talk_time(alice, recordings_root, tmp_path):
    source = dual_channel_wav(tmp_path / "dual.wav", "thank you for calling northwind", "hello I have a question")
    session = session_with_file(alice, recordings_root, source)
    session_ingest(session_id=session.pk)
    recording = Recording.objects.get(session=session)
    assert recording.channels == 2
    agent_ms, caller_ms = recording.talk_ms
    assert recording.duration_ms is not None
    assert agent_ms > 800
    assert caller_ms > 800
    assert agent_ms + caller_ms <= recording.duration_ms + 100


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (corrupt_wav, "truncated"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.write_text("this is not audio at all\n"), p)[1], "not a recognised audio format"),
        (lambda p: (p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk"), p)[1], "no data chunk"),
    ],
)
def test_it_fails_a_broken_file_with_a_reason_while_its_neighbours_succeed(
    alice, recordings_root, speech, tmp_path, make, reason
):
    good_before = session_with_file(alice, recordings_root, speech)
    broken = session_with_file(alice, recordings_root, make(tmp_path / "broken.wav"))
    good_after = session_with_file(alice, recordings_root, speech)
    results = [session_ingest(session_id=s.pk) for s in (good_before, broken, good_after)]
    assert results == ["available", "failed", "available"]
    recording = Recording.objects.get(session=broken)
    assert reason in recording.failure_reason
    broken.refresh_from_db()
    assert broken.recording_status == "failed"
    event = broken.events.get(type="recording_failed")
    assert event.data["reason"] == recording.failure_reason


def test_it_is_safe_to_run_twice(alice, recordings_root, speech):
    session = session_with_file(alice, recordings_root, speech)
    assert session_ingest(session_id=session.pk) == "available"
    assert session_ingest(session_id=session.pk) == "available"
    recording = Recording.objects.get(session=session)
    assert recording.attempts == 1


def test_it_leaves_a_fresh_claim_to_its_worker_and_takes_over_a_stale_one(alice, recordings_root, speech):
    session = session_with_file(alice, recordings_root, speech)
    Recording.objects.filter(session=session).update(status="processing", updated_at=timezone.now())
    assert session_ingest(session_id=session.pk) == "processing"
    assert Recording.objects.get(session=session).attempts == 0
    Recording.objects.filter(session=session).update(updated_at=timezone.now() - timedelta(minutes=20))
    assert session_ingest(session_id=session.pk) == "available"


def test_it_gives_the_claim_back_when_storage_fails_transiently(alice, recordings_root, speech, monkeypatch):
    from calls import ingest

    session = session_with_file(alice, recordings_root, speech)

    def unavailable(path: Path, scanner: object) -> None:
        raise OSError("storage blinked")

    monkeypatch.setattr(ingest, "_describe_audio", unavailable)
    with pytest.raises(ingest.StorageUnavailable, match="storage blinked"):
        session_ingest(session_id=session.pk)
    assert Recording.objects.get(session=session).status == "pending"


def test_it_reports_a_file_that_vanished(alice, recordings_root, speech):
    session = session_with_file(alice, recordings_root, speech)
    (recordings_root / "sessions" / str(session.pk) / "recording.wav").unlink()
    assert session_ingest(session_id=session.pk) == "failed"
    assert "no longer in storage" in Recording.objects.get(session=session).failure_reason


def test_it_answers_nothing_for_a_session_without_a_recording(alice):
    session = CallSessionFactory.create(owner=alice)
    assert session_ingest(session_id=session.pk) == ""
    assert session_ingest(session_id=uuid.uuid4()) == ""


# --- Transcripts ---------------------------------------------------------------------------------------------

TRANSCRIPTS: list[tuple[str, bytes, str, str, list[tuple[str, int | None, str | None]]]] = [
    (
        "transcript.txt",
        "Agent: Grüß Gott, Frau Müller!\nCaller: Ïch höre.\n".encode(),
        "utf-8",
        "Grüß Gott",
        [("Agent", None, "Grüß Gott, Frau Müller!"), ("Caller", None, "Ïch höre.")],
    ),
    (
        # Ï is C3 8F in UTF-8: decoding as cp1252 first fails on 0x8F, the classic crash.
        "transcript.txt",
        "Agent: Ïlse from 從化 speaking.\n".encode(),
        "utf-8",
        "從化",
        [("Agent", None, "Ïlse from 從化 speaking.")],
    ),
    (
        "transcript.txt",
        "Agent: Café \u2013 résumé \u201cquoted\u201d\n".encode("cp1252"),
        "cp1252",
        "résumé",
        [("Agent", None, "Café \u2013 résumé \u201cquoted\u201d")],
    ),
    (
        "transcript.txt",
        "\ufeffAgent: Hallo Welt\nCaller: Hallo!\n".encode("utf-16-le"),
        "utf-16-le",
        "Hallo Welt",
        [("Agent", None, "Hallo Welt"), ("Caller", None, "Hallo!")],
    ),
    (
        "transcript.json",
        b'{"language": "en", "segments": [{"speaker": "agent", "start_ms": 0, "end_ms": 1320, "text": "Hello."},'
        b' {"speaker": "caller", "start_ms": 1520, "end_ms": 2600, "text": "Hi there."}]}',
        "utf-8",
        "Hi there.",
        [("agent", 0, "Hello."), ("caller", 1520, "Hi there.")],
    ),
    (
        "transcript.vtt",
        b"WEBVTT\n\n00:00:00.000 --> 00:00:01.320\n<v Agent>Hello from Northwind.\n\n"
        b"00:00:01.520 --> 00:00:02.600\n<v Caller>Oh hi.\n",
        "utf-8",
        "Northwind",
        [("Agent", 0, "Hello from Northwind."), ("Caller", 1520, "Oh hi.")],
    ),
    (
        "transcript.srt",
        b"1\n00:00:00,000 --> 00:00:02,500\nAgent: hello \xc3\x28 there \xff\n\n"
        b"2\n00:00:02,700 --> 00:00:05,000\nCaller: hi\n",
        "utf-8 (replaced)",
        "hello",
        [("Agent", 0, None), ("Caller", 2700, "hi")],
    ),
]


@pytest.mark.parametrize(("name", "raw", "encoding", "word", "segments"), TRANSCRIPTS)
def test_it_reads_every_transcript_format_and_encoding(
    alice, recordings_root, speech, name, raw, encoding, word, segments
):
    session = session_with_file(alice, recordings_root, speech)
    (recordings_root / "sessions" / str(session.pk) / name).write_bytes(raw)
    session_ingest(session_id=session.pk)
    transcript = Transcript.objects.get(session=session)
    assert transcript.encoding == encoding
    assert transcript.had_replacements is (encoding == "utf-8 (replaced)")
    assert word in transcript.text
    assert transcript.source == "provided"
    assert transcript.checksum == hashlib.sha256(raw).hexdigest()
    got = list(transcript.segments.values_list("speaker", "start_ms", "text"))
    assert len(got) == len(segments)
    for (speaker, start, text), (g_speaker, g_start, g_text) in zip(segments, got, strict=True):
        assert g_speaker == speaker
        assert g_start == start
        if text is not None:
            assert g_text == text
        else:
            assert "\ufffd" in g_text


def test_it_does_not_parse_the_same_transcript_twice(alice, recordings_root, speech):
    session = session_with_file(alice, recordings_root, speech)
    (recordings_root / "sessions" / str(session.pk) / "transcript.txt").write_text("Agent: hi\n")
    session_ingest(session_id=session.pk)
    first = Transcript.objects.get(session=session)
    session_ingest(session_id=session.pk)
    again = Transcript.objects.get(session=session)
    assert again.updated_at == first.updated_at
    assert again.segments.count() == 1


def test_it_records_an_unreadable_transcript_on_the_timeline(alice, recordings_root, speech):
    session = session_with_file(alice, recordings_root, speech)
    (recordings_root / "sessions" / str(session.pk) / "transcript.json").write_text('{"segments": "nope"}')
    assert session_ingest(session_id=session.pk) == "available"
    assert not Transcript.objects.filter(session=session).exists()
    assert "transcript" in session.events.get(type="transcript_failed").data["file"]


def test_it_transcribes_a_recording_without_a_transcript_when_speech_to_text_is_on(
    alice, recordings_root, tmp_path, settings
):
    settings.TRANSCRIPTION_BACKEND = "pocketsphinx"
    source = speech_wav(tmp_path / "hello.wav", "hello world this is a test of the recording system", rate=16000)
    session = session_with_file(alice, recordings_root, source)
    assert session_ingest(session_id=session.pk) == "available"
    transcript = Transcript.objects.get(session=session)
    assert transcript.source == "asr"
    words = set(transcript.text.lower().split())
    assert len(words & {"hello", "world", "test", "recording", "system"}) >= 2, transcript.text
    starts = [start or 0 for start in transcript.segments.values_list("start_ms", flat=True)]
    assert starts == sorted(starts)
