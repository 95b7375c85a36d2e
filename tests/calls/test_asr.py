"""Speech-to-text: pocketsphinx on real synthesized speech, the OpenAI-compatible HTTP backend against a fake
server on 127.0.0.1, decoding of every accepted container, and the errors that tell the ingest what to do.

espeak-ng's voice is robotic and pocketsphinx's small model is no Whisper: the recognition tests ask for a few
key words, not the sentence.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from calls.asr import (
    AsrFailed,
    AsrResult,
    AsrSegment,
    AsrUnavailable,
    HttpBackend,
    PocketsphinxBackend,
    decode_pcm16,
    get_backend,
)
from tests.audio import (
    CONTAINERS,
    convert,
    corrupt_wav,
    dual_channel_wav,
    duration_ms,
    read_wav,
    sentences_wav,
    silence_wav,
    speech_wav,
    write_wav,
)

KEY_WORDS = {"hello", "world", "test", "recording", "system"}


def words(result: AsrResult, speaker: str | None = None) -> set[str]:
    return {word for segment in result.segments if speaker in (None, segment.speaker) for word in segment.text.split()}


def assert_well_formed(segments: list[AsrSegment], audio_ms: int) -> None:
    """Segments in order, each inside the audio, none overlapping the next (of the same speaker)."""
    assert segments == sorted(segments, key=lambda s: (s.start_ms, s.end_ms))
    for segment in segments:
        assert 0 <= segment.start_ms < segment.end_ms <= audio_ms, segment
        assert segment.text.strip() == segment.text != ""
        assert not any(token in segment.text for token in ("<s>", "</s>", "<sil>", "[", "(")), segment.text
    for speaker in {s.speaker for s in segments}:
        own = [s for s in segments if s.speaker == speaker]
        for earlier, later in itertools.pairwise(own):
            assert earlier.end_ms <= later.start_ms, (earlier, later)


# --- Choosing a backend ----------------------------------------------------------------------------------------


def test_it_has_no_backend_when_transcription_is_off(settings: Any):
    assert get_backend("none") is None
    assert get_backend("") is None
    settings.TRANSCRIPTION_BACKEND = " None "
    assert get_backend() is None
    del settings.TRANSCRIPTION_BACKEND  # not configured at all: off
    assert get_backend() is None


def test_it_refuses_an_unknown_backend(settings: Any):
    with pytest.raises(ImproperlyConfigured, match="whisper-local"):
        get_backend("whisper-local")
    settings.TRANSCRIPTION_BACKEND = "vosk"
    with pytest.raises(ImproperlyConfigured, match="vosk"):
        get_backend()


def test_it_builds_the_configured_backend(settings: Any):
    settings.TRANSCRIPTION_BACKEND = "pocketsphinx"
    assert isinstance(get_backend(), PocketsphinxBackend)

    settings.TRANSCRIPTION_BACKEND = "http"
    settings.TRANSCRIPTION_HTTP_URL = "https://asr.internal/v1/audio/transcriptions"
    settings.TRANSCRIPTION_HTTP_MODEL = "large-v3"
    settings.TRANSCRIPTION_HTTP_API_KEY = "sk-test"
    settings.TRANSCRIPTION_HTTP_TIMEOUT = 42
    backend = get_backend()
    assert isinstance(backend, HttpBackend)
    assert (backend.url, backend.model, backend.api_key, backend.timeout) == (
        "https://asr.internal/v1/audio/transcriptions",
        "large-v3",
        "sk-test",
        42.0,
    )
    assert backend.engine == "http:large-v3"


def test_it_needs_an_http_url_for_the_http_backend(settings: Any):
    settings.TRANSCRIPTION_HTTP_URL = ""
    with pytest.raises(ImproperlyConfigured, match="TRANSCRIPTION_HTTP_URL"):
        get_backend("http")
    settings.TRANSCRIPTION_HTTP_URL = "file:///etc/passwd"
    with pytest.raises(ImproperlyConfigured, match="http"):
        get_backend("http")


# --- Decoding --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("container", CONTAINERS)
def test_it_decodes_every_accepted_container_to_16khz_pcm(tmp_path: Path, container: str):
    source = speech_wav(tmp_path / "source.wav", "hello world", rate=22050, lead_s=0.2, tail_s=0.2)
    recording = convert(source, tmp_path / f"call.{container}")
    expected_ms = duration_ms(source)

    mono = list(decode_pcm16(recording))
    stereo = list(decode_pcm16(recording, stereo=True))

    assert all(chunk.dtype == np.int16 and chunk.shape[0] == 1 for chunk in mono)
    assert all(chunk.shape[0] == 2 for chunk in stereo)
    decoded_ms = sum(chunk.shape[1] for chunk in mono) * 1000 / 16000
    # Lossy codecs pad the start or end by a frame or two (AAC's priming is ~60 ms).
    assert abs(decoded_ms - expected_ms) < 120, (decoded_ms, expected_ms)
    assert np.abs(np.concatenate(mono, axis=1)).max() > 3000  # speech, not silence


# --- pocketsphinx on real speech -------------------------------------------------------------------------------


def test_it_transcribes_speech_into_timed_segments_with_pocketsphinx(tmp_path: Path):
    recording = sentences_wav(
        tmp_path / "call.wav",
        ["hello world this is a test of the recording system", "thank you for calling"],
        gap_s=1.0,
    )
    audio_ms = duration_ms(recording)

    result = PocketsphinxBackend().transcribe(path=str(recording))

    assert (result.engine, result.language) == ("pocketsphinx", "en")
    assert len(result.segments) >= 2, result  # cut at the pause, not one segment for the whole file
    assert_well_formed(result.segments, audio_ms)
    assert {segment.speaker for segment in result.segments} == {""}
    assert len(KEY_WORDS & words(result)) >= 2, result
    # The first sentence is in the first segment, the second starts after the pause.
    assert len(KEY_WORDS & set(result.segments[0].text.split())) >= 2, result
    assert result.segments[-1].start_ms > result.segments[0].end_ms
    assert result.segments[0].start_ms >= 200  # the 0.3 s of silence before the speech is not in it


def test_it_labels_the_agent_and_the_caller_on_a_dual_channel_call(tmp_path: Path):
    recording = dual_channel_wav(
        tmp_path / "call.wav",
        "hello world this is a test of the recording system",
        "yes I would like to cancel my order",
        gap_s=0.8,
    )
    audio_ms = duration_ms(recording)

    result = PocketsphinxBackend().transcribe(path=str(recording))

    assert_well_formed(result.segments, audio_ms)
    agent = [s for s in result.segments if s.speaker == "agent"]
    caller = [s for s in result.segments if s.speaker == "caller"]
    assert agent, result
    assert caller, result
    assert len(agent) + len(caller) == len(result.segments), result
    assert max(s.end_ms for s in agent) <= min(s.start_ms for s in caller), result
    assert len(KEY_WORDS & words(result, "agent")) >= 2, result
    assert len({"yes", "like", "cancel", "order"} & words(result, "caller")) >= 2, result
    # Each side is heard on its own channel only.
    assert not {"cancel", "order"} & words(result, "agent"), result


def test_it_takes_the_channel_speakers_from_the_caller_and_reads_compressed_stereo(tmp_path: Path):
    recording = convert(
        dual_channel_wav(tmp_path / "call.wav", "hello world", "yes I would like to cancel my order"),
        tmp_path / "call.opus",
    )

    result = PocketsphinxBackend().transcribe(path=str(recording), channel_speakers=("bot", "customer"))

    assert {s.speaker for s in result.segments} == {"bot", "customer"}, result
    assert result.segments[0].speaker == "bot"


def test_it_cuts_a_monologue_without_pauses_into_bounded_segments(tmp_path: Path):
    recording = speech_wav(tmp_path / "call.wav", "hello world this is a test of the recording system")

    result = PocketsphinxBackend(max_utterance_s=1.0).transcribe(path=str(recording))

    assert len(result.segments) >= 2, result
    assert_well_formed(result.segments, duration_ms(recording))
    assert all(segment.end_ms - segment.start_ms <= 1030 for segment in result.segments), result


def test_it_finds_no_words_in_silence(tmp_path: Path):
    result = PocketsphinxBackend().transcribe(path=str(silence_wav(tmp_path / "silence.wav", 3)), language="en-US")
    assert result == AsrResult(segments=[], language="en", engine="pocketsphinx")


def test_it_refuses_a_language_the_pocketsphinx_model_does_not_know(tmp_path: Path):
    with pytest.raises(AsrFailed, match="English only"):
        PocketsphinxBackend().transcribe(path=str(silence_wav(tmp_path / "silence.wav", 1)), language="fr")


def test_it_refuses_channel_speakers_for_other_than_two_channels(tmp_path: Path):
    with pytest.raises(ValueError, match="channel_speakers"):
        PocketsphinxBackend().transcribe(path=str(silence_wav(tmp_path / "s.wav", 1)), channel_speakers=["agent"])


def _text_file(path: Path) -> Path:
    # FFmpeg opens plenty of text as subtitles ("lrc" lyrics): an open container with no audio in it.
    path.write_text("[tool.ruff]\nline-length = 120\n")
    return path


def _random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _header_only_wav(path: Path) -> Path:
    return corrupt_wav(path, present_bytes=0)


@pytest.mark.parametrize("make", [_text_file, _random_bytes, _empty, _header_only_wav])
def test_it_fails_on_a_file_that_is_not_audio(tmp_path: Path, make: Any):
    path = make(tmp_path / "recording.wav")
    with pytest.raises(AsrFailed):
        PocketsphinxBackend().transcribe(path=str(path))


# --- The HTTP backend ------------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    fields: dict[str, str]
    files: dict[str, tuple[str, str, bytes]]  # field -> (filename, content type, bytes)


@dataclass
class FakeTranscriptionServer:
    """A minimal OpenAI-compatible /v1/audio/transcriptions: records what it receives, answers what it is told."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, Any]] = field(default_factory=list)  # consumed in order; the last one repeats
    delay_s: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, status: int, body: Any) -> None:
        self.answers.append((status, body))

    def next_answer(self) -> tuple[int, Any]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class _Server(ThreadingHTTPServer):
    fake: FakeTranscriptionServer


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        fake = cast(_Server, self.server).fake
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = BytesParser(policy=policy.HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
        )
        fields: dict[str, str] = {}
        files: dict[str, tuple[str, str, bytes]] = {}
        for part in message.iter_parts():
            name = str(part.get_param("name", header="content-disposition"))
            payload = cast(bytes, part.get_payload(decode=True))
            if part.get_filename():
                files[name] = (str(part.get_filename()), part.get_content_type(), payload)
            else:
                fields[name] = payload.decode()
        fake.received.append(Received(self.path, dict(self.headers.items()), fields, files))
        if fake.delay_s:
            fake.release.wait(fake.delay_s)
        status, answer = fake.next_answer()
        raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_server() -> Iterator[FakeTranscriptionServer]:
    fake = FakeTranscriptionServer()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1/audio/transcriptions"
    # A short poll interval: shutdown() waits for the loop to notice, 0.5 s per test by default.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()  # a handler still waiting out a timeout test
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


VERBOSE_JSON = {
    "task": "transcribe",
    "language": "english",  # OpenAI names the language; the result carries its ISO code
    "duration": 4.2,
    "text": "Hello, this is Callbook. How can I help?",
    "segments": [
        {"id": 0, "start": 0.0, "end": 1.52, "text": " Hello, this is Callbook.", "avg_logprob": -0.2},
        {"id": 1, "start": 1.9, "end": 3.75, "text": " How can I help?", "avg_logprob": -0.3},
        {"id": 2, "start": 3.75, "end": 4.2, "text": "  "},  # Whisper emits empty segments; they are dropped
    ],
}


def test_it_posts_the_recording_to_an_openai_compatible_server(tmp_path: Path, fake_server: FakeTranscriptionServer):
    recording = silence_wav(tmp_path / "Call 2024 (alice).wav", 1)
    fake_server.answer(200, VERBOSE_JSON)
    backend = HttpBackend(url=fake_server.url, model="whisper-large-v3", api_key="sk-secret", timeout=5)

    result = backend.transcribe(path=str(recording), language="en-US")

    assert result == AsrResult(
        segments=[
            AsrSegment(speaker="", start_ms=0, end_ms=1520, text="Hello, this is Callbook."),
            AsrSegment(speaker="", start_ms=1900, end_ms=3750, text="How can I help?"),
        ],
        language="en",
        engine="http:whisper-large-v3",
    )
    [request] = fake_server.received
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["Authorization"] == "Bearer sk-secret"
    assert request.fields == {
        "model": "whisper-large-v3",
        "response_format": "verbose_json",
        "timestamp_granularities[]": "segment",
        "language": "en",  # ISO 639-1: the server refuses a region
    }
    filename, content_type, data = request.files["file"]
    # The server only needs the extension; the recording's own name stays here.
    assert (filename, content_type) == ("recording.wav", "audio/wav")
    assert data == recording.read_bytes()


@pytest.mark.parametrize(
    ("container", "stored_as", "uploaded_as"),
    [
        ("opus", "call.opus", ("recording.ogg", "audio/ogg")),  # OpenAI refuses the .opus extension
        ("m4a", "call.M4A", ("recording.m4a", "audio/mp4")),
        ("wav", "7f3c2a9e", ("recording.wav", "audio/wav")),  # stored without an extension
    ],
)
def test_it_names_the_upload_after_its_content(
    tmp_path: Path, fake_server: FakeTranscriptionServer, container: str, stored_as: str, uploaded_as: tuple[str, str]
):
    recording = tmp_path / stored_as
    silence = silence_wav(tmp_path / "silence.wav", 1)
    if container == "wav":
        recording.write_bytes(silence.read_bytes())
    else:
        convert(silence, tmp_path / f"converted.{container}").rename(recording)
    fake_server.answer(200, VERBOSE_JSON)

    HttpBackend(url=fake_server.url).transcribe(path=str(recording))

    [request] = fake_server.received
    filename, content_type, data = request.files["file"]
    assert (filename, content_type) == uploaded_as
    assert data == recording.read_bytes()


def test_it_sends_no_authorization_or_language_it_does_not_have(tmp_path: Path, fake_server: FakeTranscriptionServer):
    fake_server.answer(200, {**VERBOSE_JSON, "language": "de"})
    result = HttpBackend(url=fake_server.url).transcribe(path=str(silence_wav(tmp_path / "a.wav", 1)))

    [request] = fake_server.received
    assert "Authorization" not in request.headers
    assert "language" not in request.fields
    assert request.fields["model"] == "whisper-1"
    assert result.language == "de"


def test_it_reads_an_answer_without_segments_as_one_segment(tmp_path: Path, fake_server: FakeTranscriptionServer):
    recording = silence_wav(tmp_path / "a.wav", 2.5)
    fake_server.answer(200, {"text": " Thanks for calling. "})

    result = HttpBackend(url=fake_server.url).transcribe(path=str(recording), language="fr")

    assert result.segments == [AsrSegment(speaker="", start_ms=0, end_ms=2500, text="Thanks for calling.")]
    assert result.language == "fr"  # the server said nothing; the language asked for stands


def test_it_sends_each_channel_of_a_dual_channel_call_on_its_own(tmp_path: Path, fake_server: FakeTranscriptionServer):
    recording = dual_channel_wav(tmp_path / "call.wav", "hello world", "yes I would like to cancel my order")
    # Channel 0 (the agent) is asked first. Its second line comes after the caller's line, so the merge interleaves.
    fake_server.answer(
        200,
        {
            "language": "en",
            "segments": [{"start": 0.1, "end": 1.0, "text": "Hello"}, {"start": 4, "end": 5, "text": "Bye"}],
        },
    )
    fake_server.answer(200, {"language": "en", "segments": [{"start": 1.5, "end": 3.5, "text": "Cancel my order"}]})

    result = HttpBackend(url=fake_server.url).transcribe(path=str(recording))

    assert [(s.speaker, s.start_ms, s.text) for s in result.segments] == [
        ("agent", 100, "Hello"),
        ("caller", 1500, "Cancel my order"),
        ("agent", 4000, "Bye"),
    ]
    assert len(fake_server.received) == 2
    # Each upload is one channel: 16 kHz mono FLAC, speech in the agent's part for the first, the caller's for
    # the second.
    source = read_wav(recording).astype(np.float64)
    # Halfway through the silence between the agent's last sound and the caller's first (both at 16 kHz).
    halfway = (int(np.flatnonzero(source[0])[-1]) + int(np.flatnonzero(source[1])[0])) // 2
    for index, request in enumerate(fake_server.received):
        filename, _, data = request.files["file"]
        assert filename == "recording.flac"
        upload = tmp_path / f"upload{index}.flac"
        upload.write_bytes(data)
        samples = np.concatenate(list(decode_pcm16(upload)), axis=1)[0].astype(np.float64)
        assert abs(samples.size - source.shape[1]) < 160
        before, after = np.abs(samples[:halfway]).max(), np.abs(samples[halfway:]).max()
        assert (before > 3000 and after == 0) if index == 0 else (before == 0 and after > 3000)


def test_it_uploads_a_mono_call_in_a_stereo_file_once(tmp_path: Path, fake_server: FakeTranscriptionServer):
    mono = read_wav(speech_wav(tmp_path / "mono.wav", "hello world"))
    # MP3's joint stereo leaves tiny differences between the two copies: still one voice, not two.
    recording = convert(write_wav(tmp_path / "stereo.wav", np.vstack([mono, mono])), tmp_path / "stereo.mp3")
    fake_server.answer(200, VERBOSE_JSON)

    result = HttpBackend(url=fake_server.url).transcribe(path=str(recording))

    [request] = fake_server.received
    assert request.files["file"][2] == recording.read_bytes()
    assert {s.speaker for s in result.segments} == {""}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"error": {"message": "model is loading"}}),
        (500, b"Internal Server Error"),
        (429, {"error": {"message": "rate limit reached"}}),
        (401, {"error": {"message": "invalid api key"}}),  # our configuration, not the file
    ],
)
def test_it_reports_a_server_that_cannot_answer_now_as_unavailable(
    tmp_path: Path, fake_server: FakeTranscriptionServer, status: int, body: Any
):
    fake_server.answer(status, body)
    with pytest.raises(AsrUnavailable, match=str(status)):
        HttpBackend(url=fake_server.url).transcribe(path=str(silence_wav(tmp_path / "a.wav", 1)))


def test_it_fails_a_recording_the_server_rejects(tmp_path: Path, fake_server: FakeTranscriptionServer):
    fake_server.answer(400, {"error": {"message": "Audio file is corrupted or unsupported", "type": "invalid"}})
    with pytest.raises(AsrFailed, match=r"\(400\): Audio file is corrupted or unsupported$"):
        HttpBackend(url=fake_server.url).transcribe(path=str(silence_wav(tmp_path / "a.wav", 1)))


def test_it_reports_a_refused_connection_as_unavailable(tmp_path: Path):
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = HttpBackend(url=f"http://127.0.0.1:{port}/v1/audio/transcriptions", timeout=5)
    with pytest.raises(AsrUnavailable, match="did not answer"):
        backend.transcribe(path=str(silence_wav(tmp_path / "a.wav", 1)))


def test_it_reports_a_server_that_times_out_as_unavailable(tmp_path: Path, fake_server: FakeTranscriptionServer):
    fake_server.answer(200, VERBOSE_JSON)
    fake_server.delay_s = 10
    with pytest.raises(AsrUnavailable, match="timed out"):
        HttpBackend(url=fake_server.url, timeout=0.3).transcribe(path=str(silence_wav(tmp_path / "a.wav", 1)))


def test_it_reports_an_answer_that_is_not_a_transcription_as_unavailable(
    tmp_path: Path, fake_server: FakeTranscriptionServer
):
    fake_server.answer(200, b"<html>Bad gateway</html>")
    with pytest.raises(AsrUnavailable, match="not a transcription"):
        HttpBackend(url=fake_server.url).transcribe(path=str(silence_wav(tmp_path / "a.wav", 1)))


def test_it_uploads_nothing_that_is_not_audio(tmp_path: Path, fake_server: FakeTranscriptionServer):
    fake_server.answer(200, VERBOSE_JSON)
    with pytest.raises(AsrFailed):
        HttpBackend(url=fake_server.url).transcribe(path=str(_text_file(tmp_path / "notes.wav")))
    assert fake_server.received == []
