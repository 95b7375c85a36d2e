"""Test audio made on the spot: real synthesized speech (espeak-ng), every accepted container, broken files.

Speech comes from Debian's ``espeak-ng`` and is resampled by ``sox``; a test that needs either tool and runs on
a machine without it is skipped with the reason (and CI, under CALLBOOK_REQUIRE_ALL=1, turns that skip into a
failure). Silence and broken files are written by hand, so they need nothing. Compressed containers are
encoded with sox where every sox has the format (FLAC, Ogg/Vorbis) and with PyAV, a Python dependency of the
project, for the rest: sox cannot write Opus, WebM or M4A at all, and MP3 only when built with LAME.

Every helper takes the destination path and returns it, so a test reads ``convert(speech_wav(...), dst)``.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest

SAMPLE_RATE = 16000
# Containers the ingest accepts, as file suffixes (a test parametrized over them covers every one).
CONTAINERS = ("wav", "mp3", "ogg", "opus", "flac", "webm", "m4a")

# The voice and pace pocketsphinx's US English model understands best (measured over a few sentences: the
# default British voice at its default 175 words a minute loses about half the words).
VOICE = "en-us+m3"
WORDS_PER_MINUTE = 140

_INSTALL_HINTS = {"espeak-ng": "apt install espeak-ng", "sox": "apt install sox"}
_SOX_SUFFIXES = {".wav", ".flac", ".ogg"}
# suffix -> (PyAV muxer, encoder, sample rate the encoder gets). Opus only runs at 8/12/16/24/48 kHz and WebM
# players expect 48 kHz; MP3 and AAC take the source's rate as it is.
_PYAV_FORMATS: dict[str, tuple[str, str, int | None]] = {
    ".mp3": ("mp3", "libmp3lame", None),
    ".opus": ("ogg", "libopus", 48000),
    ".webm": ("webm", "libopus", 48000),
    ".m4a": ("ipod", "aac", None),
}


def require_tool(name: str) -> str:
    """The tool's full path; skips the calling test, naming the package to install, when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs {name} ({_INSTALL_HINTS.get(name, f'install {name}')})")
    return path


def speech_wav(
    path: Path | str,
    text: str,
    rate: int = SAMPLE_RATE,
    *,
    lead_s: float = 0.0,
    tail_s: float = 0.0,
    voice: str = VOICE,
    words_per_minute: int = WORDS_PER_MINUTE,
) -> Path:
    """``text`` spoken by espeak-ng, as mono 16-bit WAV at ``rate``, with optional silence before and after."""
    espeak = require_tool("espeak-ng")
    sox = require_tool("sox")
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"  # espeak-ng writes 22.05 kHz; sox brings it to the wanted rate
        subprocess.run(
            [espeak, "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text], check=True, capture_output=True
        )
        effects = ["pad", f"{lead_s}", f"{tail_s}"] if lead_s or tail_s else []
        subprocess.run(
            [sox, str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(path), *effects],
            check=True,
            capture_output=True,
        )
    return path


def sentences_wav(
    path: Path | str, sentences: Sequence[str], rate: int = SAMPLE_RATE, *, gap_s: float = 1.0, lead_s: float = 0.3
) -> Path:
    """One speaker saying each of ``sentences`` with ``gap_s`` of silence between them (and ``lead_s`` before the
    first): a recording that a recognizer should cut into one segment per sentence."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        spoken = [read_wav(speech_wav(Path(tmp) / f"{i}.wav", text, rate))[0] for i, text in enumerate(sentences)]
    gap = np.zeros(round(gap_s * rate), dtype=np.int16)
    pieces = [np.zeros(round(lead_s * rate), dtype=np.int16)]
    for i, samples in enumerate(spoken):
        pieces.extend([gap, samples] if i else [samples])
    return write_wav(path, np.concatenate(pieces)[np.newaxis, :], rate)


def dual_channel_wav(
    path: Path | str,
    left_text: str,
    right_text: str,
    rate: int = SAMPLE_RATE,
    *,
    gap_s: float = 0.5,
) -> Path:
    """A dual-channel call: the agent says ``left_text`` on the left channel, then, after ``gap_s`` of silence,
    the caller says ``right_text`` on the right channel. Each channel is silent while the other one speaks."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        agent = read_wav(speech_wav(Path(tmp) / "agent.wav", left_text, rate))[0]
        caller = read_wav(speech_wav(Path(tmp) / "caller.wav", right_text, rate))[0]
    gap = round(gap_s * rate)
    total = len(agent) + gap + len(caller)
    samples = np.zeros((2, total), dtype=np.int16)
    samples[0, : len(agent)] = agent
    samples[1, len(agent) + gap :] = caller
    return write_wav(path, samples, rate)


def silence_wav(path: Path | str, seconds: float, rate: int = SAMPLE_RATE, *, channels: int = 1) -> Path:
    """Digital silence (all zero samples); needs no tool."""
    return write_wav(path, np.zeros((channels, round(seconds * rate)), dtype=np.int16), rate)


def corrupt_wav(path: Path | str, *, declared_s: float = 10.0, present_bytes: int = 1000) -> Path:
    """A WAV whose header is valid and declares ``declared_s`` of 16 kHz mono audio, followed by only
    ``present_bytes`` of random bytes: what an upload cut off mid-transfer looks like. Decoders read the few
    bytes present without complaint; only comparing with the header's size tells that it is truncated."""
    path = Path(path)
    data_size = round(declared_s * SAMPLE_RATE) * 2
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)  # PCM, mono, 16-bit
    header = b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + data_size) + b"WAVE"
    header += b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size)
    # Seeded: the same file on every run.
    garbage = np.random.default_rng(present_bytes).integers(0, 256, present_bytes, dtype=np.uint8).tobytes()
    path.write_bytes(header + garbage)
    return path


def convert(src: Path | str, dst: Path | str) -> Path:
    """``src`` re-encoded into the container named by ``dst``'s suffix (wav, flac, ogg, mp3, opus, webm, m4a),
    keeping its channels."""
    src, dst = Path(src), Path(dst)
    suffix = dst.suffix.lower()
    if src.resolve() == dst.resolve():
        raise ValueError(f"convert() would overwrite its source {src}")
    if suffix in _SOX_SUFFIXES:
        sox = require_tool("sox")
        subprocess.run([sox, str(src), str(dst)], check=True, capture_output=True)
        return dst
    if suffix not in _PYAV_FORMATS:
        raise ValueError(f"convert() does not know the container {suffix!r}")
    muxer, codec, fixed_rate = _PYAV_FORMATS[suffix]
    with av.open(str(src)) as source, av.open(str(dst), "w", format=muxer) as target:
        in_stream = source.streams.audio[0]
        # A WAV without a channel mask says "2 channels", which encoders refuse; name the usual layouts.
        layout = {1: "mono", 2: "stereo"}.get(in_stream.layout.nb_channels, in_stream.layout.name)
        rate = fixed_rate or in_stream.sample_rate
        out_stream = target.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(out_stream, av.AudioStream)
        # The encoder wants its own sample format and rate; PyAV re-chunks frames to the encoder's frame size.
        resampler = av.AudioResampler(format=out_stream.format.name, layout=layout, rate=rate)
        for frame in source.decode(in_stream):
            for converted in resampler.resample(frame):
                target.mux(out_stream.encode(converted))
        for converted in resampler.resample(None):
            target.mux(out_stream.encode(converted))
        target.mux(out_stream.encode(None))
    return dst


def read_wav(path: Path | str) -> np.ndarray:
    """A 16-bit WAV's samples as int16, shaped (channels, samples)."""
    with wave.open(str(path), "rb") as reader:
        channels = reader.getnchannels()
        frames = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return frames.reshape(-1, channels).T.astype(np.int16)


def write_wav(path: Path | str, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """int16 samples shaped (channels, samples) as a 16-bit PCM WAV."""
    path = Path(path)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(samples.shape[0])
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(np.ascontiguousarray(samples.T, dtype="<i2").tobytes())
    return path


def duration_ms(path: Path | str) -> int:
    """How long ``path`` plays, counted from its decoded samples (any container; headers can lie)."""
    samples = 0
    rate = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
    return round(samples * 1000 / rate) if rate else 0
