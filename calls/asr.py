"""Speech-to-text for recordings that arrive without a transcript: a pluggable backend that returns timed segments.

Two backends, chosen by ``settings.TRANSCRIPTION_BACKEND``:

- ``pocketsphinx``: offline, in-process, with the English model that ships in the PyPI wheel (no download). Its
  accuracy is modest, but it needs nothing but the Python dependencies, which makes it the embedded default.
- ``http``: any OpenAI-compatible ``/v1/audio/transcriptions`` server (OpenAI itself, a self-hosted Whisper such
  as faster-whisper-server/speaches, LocalAI, vLLM): the production choice.

Audio is decoded with PyAV (FFmpeg, shipped in the wheel), so every container the ingest accepts works the same
way. A dual-channel recording (agent on the left channel, caller on the right) is transcribed one channel at a
time, which labels each segment with its speaker for free, and the two sides are merged by start time. A stereo
file whose two channels carry the same signal is a mono recording in a stereo container and is treated as mono,
or every line would appear twice.

Errors tell the caller what to do next: ``AsrUnavailable`` (the server is down, slow, misconfigured) means
"retry later", ``AsrFailed`` (the file does not decode, the server rejects it) means "this file will never work".
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pocketsphinx import Decoder, Endpointer

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what pocketsphinx's model and Whisper both expect
DEFAULT_CHANNEL_SPEAKERS = ("agent", "caller")


@dataclass(frozen=True)
class AsrSegment:
    speaker: str  # "" unless known: the channel's speaker for dual-channel audio, or the server's diarization
    start_ms: int
    end_ms: int
    text: str


@dataclass(frozen=True)
class AsrResult:
    segments: list[AsrSegment]
    language: str  # ISO 639-1 code ("en") when known, else what the engine said, else ""
    engine: str  # "pocketsphinx" / "http:<model>"

    @property
    def text(self) -> str:
        return " ".join(segment.text for segment in self.segments)


class AsrUnavailable(Exception):
    """Transient: the transcription server is down, times out or is misconfigured; the ingest retries later."""


class AsrFailed(Exception):
    """Permanent for this file: the audio does not decode, or the server rejects the file (4xx)."""


class AsrBackend(Protocol):
    name: str

    def transcribe(
        self, *, path: str, language: str | None = None, channel_speakers: Sequence[str] | None = None
    ) -> AsrResult:
        """Transcribe the recording at ``path``.

        ``language``: an ISO 639-1 code (a region such as "en-US" is ignored), or None to let the engine decide.
        ``channel_speakers``: the speaker names of channel 0 and channel 1 of a dual-channel recording (default
        ``("agent", "caller")``); an empty sequence mixes the channels down and labels no one.
        """
        ...


def get_backend(name: str | None = None) -> AsrBackend | None:
    """From settings.TRANSCRIPTION_BACKEND: "none"/"" → None, "pocketsphinx", "http"."""
    if name is None:
        name = getattr(settings, "TRANSCRIPTION_BACKEND", "none")
    key = (name or "").strip().lower()
    if key in ("", "none"):
        return None
    if key == "pocketsphinx":
        return PocketsphinxBackend()
    if key == "http":
        url = getattr(settings, "TRANSCRIPTION_HTTP_URL", "")
        if not url:
            raise ImproperlyConfigured(
                "TRANSCRIPTION_BACKEND=http needs TRANSCRIPTION_HTTP_URL, the full URL of an OpenAI-compatible "
                "transcription endpoint (https://.../v1/audio/transcriptions)."
            )
        return HttpBackend(
            url=url,
            model=getattr(settings, "TRANSCRIPTION_HTTP_MODEL", "") or "whisper-1",
            api_key=getattr(settings, "TRANSCRIPTION_HTTP_API_KEY", ""),
            timeout=float(getattr(settings, "TRANSCRIPTION_HTTP_TIMEOUT", 300)),
        )
    raise ImproperlyConfigured(f"TRANSCRIPTION_BACKEND={name!r} is not one of: none, pocketsphinx, http.")


# --- Decoding -------------------------------------------------------------------------------------------------


def _open_audio(path: str | Path) -> tuple[av.container.InputContainer, av.AudioStream]:
    """The file's container and first audio stream; AsrFailed when it is not audio."""
    try:
        # metadata_errors="ignore": tags in a broken encoding must not make a playable file unreadable.
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        # FFmpeg's message repeats the path on this server; the reason alone is what a user can act on.
        raise AsrFailed(f"The file could not be opened as audio ({_reason(exc)}).") from exc
    if not container.streams.audio:
        # Not hypothetical: FFmpeg opens many text files as subtitles (a .toml is "lrc" lyrics to it).
        container.close()
        raise AsrFailed("The file holds no audio stream.")
    return container, container.streams.audio[0]


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def decode_pcm16(path: str | Path, *, stereo: bool = False) -> Generator[np.ndarray, None, None]:
    """The audio of ``path`` as 16 kHz signed 16-bit PCM, chunk by chunk, shaped (channels, samples).

    ``stereo=False`` mixes every channel down to one; ``stereo=True`` yields two rows (a mono file is copied to
    both). Chunks are as long as the container's frames (tens of milliseconds), so a long call is never held in
    memory. Raises AsrFailed when the file does not open or decode.
    """
    container, stream = _open_audio(path)
    layout = "stereo" if stereo else "mono"
    # Planar output: row c of to_ndarray() is channel c, with no de-interleaving to do.
    resampler = av.AudioResampler(format="s16p", layout=layout, rate=SAMPLE_RATE)
    with container:
        try:
            for frame in container.decode(stream):
                try:
                    converted = resampler.resample(frame)
                except ValueError:
                    # The stream changed sample rate or layout midway (chained Ogg, concatenated MP3): a
                    # resampler only takes frames like its first one, so drain it and start another.
                    yield from (out.to_ndarray() for out in resampler.resample(None))
                    resampler = av.AudioResampler(format="s16p", layout=layout, rate=SAMPLE_RATE)
                    converted = resampler.resample(frame)
                yield from (out.to_ndarray() for out in converted)
            # The resampler holds back its last few milliseconds until it is flushed.
            yield from (out.to_ndarray() for out in resampler.resample(None))
        except av.error.FFmpegError as exc:
            raise AsrFailed(f"The audio could not be decoded ({stream.codec_context.name}: {_reason(exc)}).") from exc


# Below this peak (about -40 dBFS) a chunk is background noise and says nothing about the channels.
_QUIET_PEAK = 330
# Left and right differ when the energy of their difference is above this share of their energy (-20 dB): far
# above what lossy joint-stereo coding leaves in a mono-as-stereo file, far below two people on two channels.
_DISTINCT_SIDE_RATIO = 0.01


def _probe(path: str | Path) -> tuple[int, str]:
    """How many channels ``path`` has, and its container ("wav", "ogg", "m4a", ...), from its content whatever
    its name. AsrFailed when it is not audio: checked before any real work."""
    container, stream = _open_audio(path)
    with container:
        channels = int(stream.codec_context.channels or stream.layout.nb_channels)
        name = container.format.name  # FFmpeg's demuxer names: "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2"
    kind = "m4a" if name.startswith("mov,") else "webm" if name.startswith("matroska") else name.split(",")[0]
    return channels, kind


def _channels_differ(path: str | Path) -> bool:
    """Whether the two channels of ``path`` carry different signals (a dual-channel call, not mono as stereo).

    A true dual-channel call answers within the first second of speech; a mono call in a stereo container is
    decoded to the end to be sure (decoding is hundreds of times faster than recognizing, so this is cheap).
    """
    with closing(decode_pcm16(path, stereo=True)) as chunks:
        for chunk in chunks:
            if int(np.abs(chunk).max(initial=0)) < _QUIET_PEAK:
                continue
            left, right = chunk.astype(np.float64)
            side = float(np.square(left - right).sum())
            total = float(np.square(left).sum() + np.square(right).sum())
            if side > _DISTINCT_SIDE_RATIO * total:
                return True
    return False


def _is_dual_channel(path: str | Path, speakers: tuple[str, ...]) -> bool:
    """Whether to transcribe ``path`` channel by channel. Raises AsrFailed when it is not audio."""
    channels, _ = _probe(path)
    return bool(speakers) and channels == 2 and _channels_differ(path)


def _speakers(channel_speakers: Sequence[str] | None) -> tuple[str, ...]:
    speakers = DEFAULT_CHANNEL_SPEAKERS if channel_speakers is None else tuple(channel_speakers)
    if len(speakers) not in (0, 2):
        raise ValueError(f"channel_speakers names the speakers of channels 0 and 1, or none; got {speakers!r}")
    return speakers


def _primary_language(language: str | None) -> str | None:
    """ "en-US" / "en_us" / "EN" → "en": transcription engines take ISO 639-1 codes and reject regions."""
    if not language or not language.strip():
        return None
    return re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()


# --- pocketsphinx ---------------------------------------------------------------------------------------------

# Recognizer tokens that are not words: sentence markers, silence, noise and filler models ([NOISE], ++UM++).
_NON_WORD = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")
# Alternative pronunciations come back as "word(2)".
_VARIANT = re.compile(r"\(\d+\)$")

# Lead-in given to each utterance before the point where the Endpointer heard speech start.
_PRE_ROLL_S = 0.3
_ENDPOINTER_WINDOW_S = 0.3  # pocketsphinx's default decision window

_decoders = threading.local()


def _decoder(**config: Any) -> Any:
    """One pocketsphinx Decoder per thread and configuration: loading the model takes most of a second, and a
    Decoder must not be shared between threads."""
    cache: dict[tuple[tuple[str, Any], ...], Any] = _decoders.__dict__.setdefault("by_config", {})
    key = tuple(sorted(config.items()))
    if key not in cache:
        # FATAL: the C library otherwise writes hundreds of lines of model-loading chatter to stderr.
        cache[key] = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **config)
    return cache[key]


class PocketsphinxBackend:
    """Offline recognition with pocketsphinx's bundled US English model.

    Each channel goes through pocketsphinx's voice-activity Endpointer, which cuts the stream into utterances at
    pauses; each utterance is recognized on its own and becomes one segment. Only the current utterance is held
    in memory, and none is longer than ``max_utterance_s`` (a monologue without pauses is cut there).
    """

    name = "pocketsphinx"
    engine = "pocketsphinx"
    language = "en"  # the bundled model

    def __init__(self, *, model: dict[str, str] | None = None, max_utterance_s: float = 20.0) -> None:
        """``model``: other model files, as pocketsphinx's ``hmm``/``lm``/``dict`` paths; default the bundled
        en-us model."""
        self.model = dict(model or {})
        self.max_utterance_s = max_utterance_s

    def transcribe(
        self, *, path: str, language: str | None = None, channel_speakers: Sequence[str] | None = None
    ) -> AsrResult:
        wanted = _primary_language(language)
        if wanted and wanted != self.language:
            raise AsrFailed(f"The pocketsphinx model recognizes English only; this recording is {language!r}.")
        dual = _is_dual_channel(path, speakers := _speakers(channel_speakers))
        decoder = _decoder(**self.model)
        channels = [
            _Utterances(decoder, speaker=speaker, max_utterance_s=self.max_utterance_s)
            for speaker in (speakers if dual else ("",))
        ]
        started = time.monotonic()
        samples = 0
        for chunk in decode_pcm16(path, stereo=dual):
            samples += int(chunk.shape[1])
            for channel, row in zip(channels, chunk, strict=True):
                channel.feed(row)
        if samples == 0:
            raise AsrFailed("The file decodes to no audio at all.")
        duration_ms = samples * 1000 // SAMPLE_RATE
        segments = [segment for channel in channels for segment in channel.finish(duration_ms)]
        segments.sort(key=lambda segment: (segment.start_ms, segment.end_ms))
        logger.info(
            "pocketsphinx transcribed %.1f s of audio (%s) into %d segments in %.1f s",
            duration_ms / 1000,
            "dual-channel" if dual else "mono",
            len(segments),
            time.monotonic() - started,
        )
        return AsrResult(segments=segments, language=self.language, engine=self.engine)


class _Utterances:
    """One channel's way through the Endpointer and the Decoder, fed in chunks of any length."""

    def __init__(self, decoder: Any, *, speaker: str, max_utterance_s: float) -> None:
        self.decoder = decoder
        self.speaker = speaker
        self.endpointer = Endpointer(sample_rate=SAMPLE_RATE)
        self.frame_samples = self.endpointer.frame_bytes // 2
        self.frame_ms = 1000 / int(decoder.config["frate"])  # word timings count in feature frames
        self.max_bytes = round(max_utterance_s * SAMPLE_RATE) * 2
        self.pending = bytearray()  # input not yet a whole Endpointer frame
        self.frames_in = 0  # Endpointer frames fed so far: the clock of this channel
        # The last input frames, to give each utterance the lead-in the Endpointer leaves out; long enough to
        # reach back past the Endpointer's decision window.
        self.recent: deque[tuple[int, bytes]] = deque(
            maxlen=math.ceil((_ENDPOINTER_WINDOW_S + _PRE_ROLL_S) * SAMPLE_RATE / self.frame_samples) + 10
        )
        self.last_end_frame = 0  # where the previous utterance ended: no lead-in reaches back before it
        self.speech: list[bytes] = []  # the current utterance
        self.speech_bytes = 0
        self.utterance_start_s = 0.0
        self.segments: list[AsrSegment] = []

    def feed(self, samples: np.ndarray) -> None:
        self.pending += samples.astype("<i2", copy=False).tobytes()
        size = self.endpointer.frame_bytes
        whole = len(self.pending) // size * size
        for offset in range(0, whole, size):
            frame = bytes(self.pending[offset : offset + size])
            was_in_speech = self.endpointer.in_speech
            self._take(self.endpointer.process(frame), was_in_speech)
            self.recent.append((self.frames_in, frame))
            self.frames_in += 1
        del self.pending[:whole]

    def finish(self, duration_ms: int) -> list[AsrSegment]:
        if self.endpointer.in_speech:
            # end_stream() rejects an empty buffer; one silent sample stands in for "nothing left".
            self._take(self.endpointer.end_stream(bytes(self.pending) or bytes(2)), was_in_speech=True)
        if self.speech:
            self._recognize()
        # Word ends are frame-rounded and the last one may round past the end of the audio.
        return [
            AsrSegment(self.speaker, min(s.start_ms, duration_ms), min(s.end_ms, duration_ms), s.text)
            for s in self.segments
        ]

    def _take(self, speech: bytes | None, was_in_speech: bool) -> None:
        if speech is None:
            return
        if not was_in_speech:
            # A new utterance. The Endpointer hands speech over a window late, from the frame where it began,
            # clipped tight: the recognizer does better with some of the quiet before it (measured on synthetic
            # speech: fewer lost first words), as long as it is not the end of the previous utterance.
            start_frame = round(self.endpointer.speech_start * SAMPLE_RATE / self.frame_samples)
            first = max(start_frame - round(_PRE_ROLL_S * SAMPLE_RATE / self.frame_samples), self.last_end_frame)
            lead_in = [frame for index, frame in self.recent if first <= index < start_frame]
            self.speech.extend(lead_in)
            self.speech_bytes += sum(len(frame) for frame in lead_in)
            self.utterance_start_s = (start_frame - len(lead_in)) * self.frame_samples / SAMPLE_RATE
        self.speech.append(speech)
        self.speech_bytes += len(speech)
        if not self.endpointer.in_speech:
            self.last_end_frame = round(self.endpointer.speech_end * SAMPLE_RATE / self.frame_samples)
            self._recognize()
        elif self.speech_bytes >= self.max_bytes:
            self._recognize()

    def _recognize(self) -> None:
        pcm = b"".join(self.speech)
        offset_ms = self.utterance_start_s * 1000
        self.speech.clear()
        self.speech_bytes = 0
        # If the speech goes on (an utterance cut at max_utterance_s), its next part starts where this one ends.
        self.utterance_start_s += len(pcm) / 2 / SAMPLE_RATE
        # The feature extraction keeps state from the previous utterance (its cepstral mean, despite cmn=batch
        # and full_utt), which measurably changes the words recognized: the same file would transcribe
        # differently depending on what the worker heard before, or on the other channel's last utterance.
        # Reloading it costs a tenth of a millisecond and makes every utterance decode as on a fresh Decoder.
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        # full_utt: normalize the features over the whole utterance rather than with a running estimate.
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        words = [
            (_VARIANT.sub("", seg.word), int(seg.start_frame), int(seg.end_frame))
            for seg in self.decoder.seg()
            if not _NON_WORD.match(seg.word)
        ]
        if not words:
            return
        self.segments.append(
            AsrSegment(
                speaker=self.speaker,
                start_ms=round(offset_ms + words[0][1] * self.frame_ms),
                end_ms=round(offset_ms + (words[-1][2] + 1) * self.frame_ms),  # end_frame is inclusive
                text=" ".join(word for word, _, _ in words),
            )
        )


# --- OpenAI-compatible HTTP server ----------------------------------------------------------------------------

# 4xx answers that are about the server or our configuration, not the file: retrying later (with the key or
# model fixed, the rate limit passed) can succeed, so they must not fail the recording for good.
_TRANSIENT_CLIENT_ERRORS = {401, 403, 404, 405, 407, 408, 409, 425, 429}
_UPLOAD_CHUNK = 1024 * 1024
# Container (from _probe) → the extension and media type an OpenAI-compatible server accepts for it.
_UPLOAD_TYPES = {
    "wav": ("wav", "audio/wav"),
    "flac": ("flac", "audio/flac"),
    "ogg": ("ogg", "audio/ogg"),  # Vorbis and Opus alike
    "mp3": ("mp3", "audio/mpeg"),
    "webm": ("webm", "audio/webm"),
    "m4a": ("m4a", "audio/mp4"),
}

# Whisper's verbose_json names the detected language ("english"); callers get ISO 639-1 codes like pocketsphinx.
_WHISPER_LANGUAGES = {
    name: code
    for code, name in re.findall(
        r"([a-z]+):([a-z ]+)",
        "en:english,zh:chinese,de:german,es:spanish,ru:russian,ko:korean,fr:french,ja:japanese,pt:portuguese,"
        "tr:turkish,pl:polish,ca:catalan,nl:dutch,ar:arabic,sv:swedish,it:italian,id:indonesian,hi:hindi,"
        "fi:finnish,vi:vietnamese,he:hebrew,uk:ukrainian,el:greek,ms:malay,cs:czech,ro:romanian,da:danish,"
        "hu:hungarian,ta:tamil,no:norwegian,th:thai,ur:urdu,hr:croatian,bg:bulgarian,lt:lithuanian,la:latin,"
        "mi:maori,ml:malayalam,cy:welsh,sk:slovak,te:telugu,fa:persian,lv:latvian,bn:bengali,sr:serbian,"
        "az:azerbaijani,sl:slovenian,kn:kannada,et:estonian,mk:macedonian,br:breton,eu:basque,is:icelandic,"
        "hy:armenian,ne:nepali,mn:mongolian,bs:bosnian,kk:kazakh,sq:albanian,sw:swahili,gl:galician,"
        "mr:marathi,pa:punjabi,si:sinhala,km:khmer,sn:shona,yo:yoruba,so:somali,af:afrikaans,oc:occitan,"
        "ka:georgian,be:belarusian,tg:tajik,sd:sindhi,gu:gujarati,am:amharic,yi:yiddish,lo:lao,uz:uzbek,"
        "fo:faroese,ht:haitian creole,ps:pashto,tk:turkmen,nn:nynorsk,mt:maltese,sa:sanskrit,"
        "lb:luxembourgish,my:myanmar,bo:tibetan,tl:tagalog,mg:malagasy,as:assamese,tt:tatar,haw:hawaiian,"
        "ln:lingala,ha:hausa,ba:bashkir,jw:javanese,su:sundanese,yue:cantonese",
    )
}


class HttpBackend:
    """An OpenAI-compatible ``/v1/audio/transcriptions`` server, asked for ``verbose_json`` segments.

    A mono recording is uploaded as it is, streamed from disk (the server decodes every container Whisper
    knows). A dual-channel one is split into one 16 kHz mono FLAC per channel in a temporary folder, and each
    channel is a request of its own.
    """

    name = "http"

    def __init__(self, *, url: str, model: str = "whisper-1", api_key: str = "", timeout: float = 300.0) -> None:
        if not url.startswith(("http://", "https://")):
            # Also keeps urllib from opening file:// or ftp:// URLs that a setting might smuggle in.
            raise ImproperlyConfigured(f"TRANSCRIPTION_HTTP_URL must be an http(s) URL, not {url!r}.")
        self.url = url
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    @property
    def engine(self) -> str:
        return f"http:{self.model}"

    def transcribe(
        self, *, path: str, language: str | None = None, channel_speakers: Sequence[str] | None = None
    ) -> AsrResult:
        speakers = _speakers(channel_speakers)
        wanted = _primary_language(language)
        # Also the check that the file is audio at all, before anything is uploaded.
        channels, kind = _probe(path)
        if not (speakers and channels == 2 and _channels_differ(path)):
            segments, detected = self._request(Path(path), kind, wanted, duration_ms=None, speaker="")
            return AsrResult(segments=segments, language=detected or wanted or "", engine=self.engine)
        segments = []
        detected = ""
        with tempfile.TemporaryDirectory(prefix="callbook-asr-") as tmp:
            for (channel_path, duration_ms), speaker in zip(_split_channels(path, Path(tmp)), speakers, strict=True):
                found, detected = self._request(channel_path, "flac", wanted, duration_ms=duration_ms, speaker=speaker)
                segments.extend(found)
        segments.sort(key=lambda segment: (segment.start_ms, segment.end_ms))
        return AsrResult(segments=segments, language=detected or wanted or "", engine=self.engine)

    def _request(
        self, path: Path, kind: str, language: str | None, *, duration_ms: int | None, speaker: str
    ) -> tuple[list[AsrSegment], str]:
        fields = [
            ("model", self.model),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "segment"),
        ]
        if language:
            fields.append(("language", language))
        body = _MultipartBody(fields, path, kind)
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.length), "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
        started = time.monotonic()
        try:
            # The URL's scheme is checked in __init__.
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = _error_message(exc)
            if exc.code < 400 or exc.code >= 500 or exc.code in _TRANSIENT_CLIENT_ERRORS:
                raise AsrUnavailable(f"The transcription server answered {exc.code}: {message}") from exc
            raise AsrFailed(f"The transcription server rejected the recording ({exc.code}): {message}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise AsrUnavailable(f"The transcription server did not answer: {reason}") from exc
        logger.info("%s transcribed %s in %.1f s", self.engine, path.name, time.monotonic() - started)
        return _parse_verbose_json(raw, path=path, duration_ms=duration_ms, speaker=speaker)


class _MultipartBody:
    """multipart/form-data with the file streamed from disk: http.client sends an iterable chunk by chunk, and
    iterating again re-reads the file, so a retried request sends it whole."""

    def __init__(self, fields: list[tuple[str, str]], path: Path, kind: str) -> None:
        self.path = path
        boundary = f"callbook-{uuid.uuid4().hex}"
        self.content_type = f"multipart/form-data; boundary={boundary}"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields
        ]
        # Servers check the file name's extension (OpenAI refuses ".opus", and a stored name may have none), so
        # the name says what the content is; the recording's own name is none of their business.
        extension, file_type = _UPLOAD_TYPES.get(kind, (kind, "application/octet-stream"))
        filename = f"recording.{extension}"
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {file_type}\r\n\r\n"
        )
        self.head = "".join(parts).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.length = len(self.head) + path.stat().st_size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        with self.path.open("rb") as handle:
            while chunk := handle.read(_UPLOAD_CHUNK):
                yield chunk
        yield self.tail


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's own explanation: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or the text."""
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    text = raw.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:500] or str(exc.reason)
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        for key in ("error", "detail", "message"):
            if payload.get(key):
                value = payload[key]
                return (value if isinstance(value, str) else json.dumps(value))[:500]
    return text[:500]


def _parse_verbose_json(
    raw: bytes, *, path: Path, duration_ms: int | None, speaker: str
) -> tuple[list[AsrSegment], str]:
    try:
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            raise TypeError(type(payload).__name__)
        segments = []
        for item in payload.get("segments") or []:
            text = str(item.get("text") or "").strip()
            if not text:
                continue
            start_ms = round(float(item["start"]) * 1000)
            end_ms = max(start_ms, round(float(item["end"]) * 1000))
            # Diarizing servers name speakers per segment; a channel's speaker is known better.
            label = speaker or str(item.get("speaker") or "")
            segments.append(AsrSegment(speaker=label, start_ms=start_ms, end_ms=end_ms, text=text))
        language = str(payload.get("language") or "").strip().lower()
        text = str(payload.get("text") or "").strip()
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # Not the file's fault: a proxy's error page, a wrong URL, a server bug. Worth retrying, never failing.
        raise AsrUnavailable(f"The transcription server's answer is not a transcription ({exc!r}).") from exc
    if not segments and text:
        # A server that ignores response_format=verbose_json: the text is all there is, over the whole recording.
        if duration_ms is None:
            duration_ms = round(float(payload["duration"]) * 1000) if payload.get("duration") else _duration_ms(path)
        segments = [AsrSegment(speaker=speaker, start_ms=0, end_ms=duration_ms, text=text)]
    return segments, _WHISPER_LANGUAGES.get(language, language)


def _duration_ms(path: Path) -> int:
    return sum(int(chunk.shape[1]) for chunk in decode_pcm16(path)) * 1000 // SAMPLE_RATE


def _split_channels(path: str | Path, folder: Path) -> list[tuple[Path, int]]:
    """Each channel of a dual-channel recording as its own 16 kHz mono FLAC (lossless, and about half the size
    of WAV for upload limits), written in one decoding pass."""
    paths = [folder / "channel0.flac", folder / "channel1.flac"]
    duration_ms = _write_flacs(decode_pcm16(path, stereo=True), paths)
    return [(channel_path, duration_ms) for channel_path in paths]


def _write_flacs(chunks: Iterator[np.ndarray], paths: list[Path]) -> int:
    """Row i of every chunk into ``paths[i]``; returns the duration in ms."""
    outputs = [av.open(str(path), "w", format="flac") for path in paths]
    try:
        streams = [output.add_stream("flac", rate=SAMPLE_RATE, layout="mono") for output in outputs]
        samples = 0
        for chunk in chunks:
            for output, stream, row in zip(outputs, streams, chunk, strict=True):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(row[np.newaxis, :]), format="s16p", layout="mono"
                )
                frame.sample_rate = SAMPLE_RATE
                frame.pts = samples
                output.mux(stream.encode(frame))
            samples += int(chunk.shape[1])
        for output, stream in zip(outputs, streams, strict=True):
            output.mux(stream.encode(None))
    finally:
        for output in outputs:
            output.close()
    return samples * 1000 // SAMPLE_RATE
