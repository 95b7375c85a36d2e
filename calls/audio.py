"""Reading a recording's real properties by decoding it (PyAV, i.e. FFmpeg, shipped in the wheel).

One decoding pass yields what the pages need: duration, channels, sample rate, codec, a waveform (peak per
bucket) and, per channel, how long someone was speaking, which for dual-channel calls (agent on one channel,
caller on the other) is each side's talk time. Decoding the whole file is also the integrity check: a
container that lies about its length or a body that does not decode fails here, with a reason.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

WINDOW_MS = 50
WAVEFORM_BUCKETS = 600
# A 50 ms window whose RMS is above this (about -40 dBFS) counts as someone speaking.
SPEECH_RMS = 0.01


class AudioError(Exception):
    """The file is not usable audio (corrupt, truncated, empty, not audio): permanent, shown to users."""


@dataclass
class AudioInfo:
    container: str
    codec: str
    duration_ms: int
    channels: int
    sample_rate: int
    waveform: list[float] = field(default_factory=list)
    talk_ms: list[int] = field(default_factory=list)

    @property
    def is_dual_channel(self) -> bool:
        return self.channels == 2


def _wav_shortfall(path: Path) -> str | None:
    """For WAV: compare the data chunk's declared size with the bytes present (decoders stop silently)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mean "length unknown" (written while streaming a live call): not a truncation.
                if chunk_size in (0, 0xFFFFFFFF):
                    return None
                present = size - (offset + 8)
                if present < chunk_size:
                    return (
                        f"The WAV file is truncated: its header declares {chunk_size} bytes of audio but only "
                        f"{present} are present."
                    )
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return "The WAV file has no data chunk."


def probe_audio(path: Path) -> AudioInfo:
    """Decode ``path`` completely and describe it; raises AudioError when it is not sound, playable audio."""
    shortfall = _wav_shortfall(path)
    if shortfall:
        raise AudioError(shortfall)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        # FFmpeg's message names the file's path on this server; users get the reason only.
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise AudioError(f"The file could not be opened as audio ({reason}).") from exc
    with container:
        if not container.streams.audio:
            raise AudioError("The file holds no audio stream.")
        stream = container.streams.audio[0]
        # FFmpeg names decoders, and some codecs have variants (mp3float, aac_fixed): report the codec itself.
        codec = stream.codec_context.name.removesuffix("float").removesuffix("_fixed")
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        try:
            return _decode(container, stream, codec=codec, declared_seconds=declared, fmt=container.format.name)
        except av.error.FFmpegError as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise AudioError(f"The audio could not be decoded ({codec}: {reason}).") from exc


def _decode(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    *,
    codec: str,
    declared_seconds: float | None,
    fmt: str,
) -> AudioInfo:
    rate = stream.codec_context.sample_rate or stream.sample_rate or 0
    channels = stream.codec_context.channels or 0
    window = max(1, rate * WINDOW_MS // 1000) if rate else 0
    peaks: list[np.ndarray] = []  # per window: peak of all channels
    rms: list[np.ndarray] = []  # per window: RMS of each channel (rows: windows)
    carry: np.ndarray | None = None
    samples = 0
    for frame in container.decode(stream):
        data = frame.to_ndarray()
        data = _as_float(data, frame.format.name, frame.layout.nb_channels)
        if not rate:
            rate, channels = frame.sample_rate, frame.layout.nb_channels
            window = max(1, rate * WINDOW_MS // 1000)
        samples += data.shape[1]
        if carry is not None:
            data = np.concatenate([carry, data], axis=1)
        usable = (data.shape[1] // window) * window
        if usable:
            blocks = data[:, :usable].reshape(data.shape[0], -1, window)
            peaks.append(np.abs(blocks).max(axis=(0, 2)))
            rms.append(np.sqrt((blocks**2).mean(axis=2)).T)
        carry = data[:, usable:]
    if samples == 0 or not rate:
        raise AudioError("The file decodes to no audio at all.")
    decoded_seconds = samples / rate
    if declared_seconds and declared_seconds > 1 and decoded_seconds < declared_seconds * 0.9:
        raise AudioError(
            f"The audio is truncated: the container declares {declared_seconds:.1f} s but only "
            f"{decoded_seconds:.1f} s decode."
        )
    window_peaks = np.concatenate(peaks) if peaks else np.zeros(1)
    window_rms = np.concatenate(rms) if rms else np.zeros((1, max(channels, 1)))
    return AudioInfo(
        container=_container_name(fmt, codec),
        codec=codec,
        duration_ms=round(decoded_seconds * 1000),
        channels=channels,
        sample_rate=rate,
        waveform=_buckets(window_peaks, WAVEFORM_BUCKETS),
        talk_ms=[int((window_rms[:, c] > SPEECH_RMS).sum()) * WINDOW_MS for c in range(window_rms.shape[1])],
    )


def _as_float(data: np.ndarray, sample_format: str, nb_channels: int) -> np.ndarray:
    """Frames as float32 in [-1, 1], shaped (channels, samples) whether planar or interleaved."""
    if data.ndim == 1 or (data.shape[0] == 1 and nb_channels > 1):
        data = data.reshape(-1, nb_channels).T
    kind = sample_format.rstrip("p")
    scale = {"s16": 32768.0, "s32": 2147483648.0, "u8": 128.0, "s64": 9.223372036854776e18}.get(kind)
    out = data.astype(np.float32)
    if kind == "u8":
        out -= 128.0
    return out / scale if scale else out


def _buckets(values: np.ndarray, count: int) -> list[float]:
    if values.size <= count:
        return [round(float(v), 3) for v in values]
    edges = np.linspace(0, values.size, count + 1, dtype=int)
    return [round(float(values[a:b].max()), 3) for a, b in itertools.pairwise(edges)]


_CONTAINERS = {"wav": "wav", "flac": "flac", "ogg": "ogg", "mp3": "mp3", "matroska,webm": "webm"}


def _container_name(fmt: str, codec: str) -> str:
    if fmt.startswith("mov,mp4"):
        return "m4a"
    if fmt == "ogg" and codec == "opus":
        return "opus"
    return _CONTAINERS.get(fmt, fmt.split(",", maxsplit=1)[0])
