"""Reading a recording's real properties by decoding it (PyAV, i.e. FFmpeg, shipped in the wheel).

One decoding pass yields what the pages need: duration, channels, sample rate, codec, a waveform (peak per
bucket) and, per channel, how long someone was speaking, which for dual-channel calls (agent on one channel,
caller on the other) is each side's talk time. Decoding the whole file is also the integrity check: a
container that lies about its length or a body that does not decode fails here, with a reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from django.conf import settings

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


def _too_long(limit: float) -> AudioError:
    seconds = int(limit)
    if seconds % 3600 == 0:
        span = f"{seconds // 3600} h"
    elif seconds % 60 == 0:
        span = f"{seconds // 60} min"
    else:
        span = f"{seconds} s"
    return AudioError(f"The audio is longer than the limit of {span}; it was not decoded further.")


def probe_audio(path: Path, *, max_seconds: float | None = None) -> AudioInfo:
    """Decode ``path`` completely and describe it; raises AudioError when it is not sound, playable audio.

    ``max_seconds`` (default: the RECORDING_MAX_DURATION_SECONDS setting) bounds the work: a few hundred KB of
    FLAC can hold hours of silence, so a file that declares or decodes to more fails as soon as that is known,
    instead of keeping a worker busy for its whole length.
    """
    if max_seconds is None:
        max_seconds = float(settings.RECORDING_MAX_DURATION_SECONDS)
    scanner = _scan_file(path, max_seconds)
    if scanner.accepted:
        return scanner.result()
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
        if max_seconds is not None and declared is not None and declared > max_seconds:
            raise _too_long(max_seconds)
        try:
            return _decode(
                container,
                stream,
                codec=codec,
                declared_seconds=declared,
                fmt=container.format.name,
                max_seconds=max_seconds,
            )
        except av.error.FFmpegError as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise AudioError(f"The audio could not be decoded ({codec}: {reason}).") from exc


# --- Window statistics (both paths) ------------------------------------------------------------------------


class _Windows:
    """Per 50 ms window: the peak over all channels and each channel's sum of squares, gathered block by block.

    Samples arrive as (channels, samples) in [-1, 1] (the decoder's path) or as raw interleaved PCM (the WAV
    path); either way only whole windows are counted, as the trailing partial window always was. Sums of squares
    are taken in float64 so the result does not depend on how the samples were cut into blocks.
    """

    def __init__(self, window: int, channels: int) -> None:
        self.window = window
        self.channels = channels
        self.peaks: list[np.ndarray] = []
        self.squares: list[np.ndarray] = []  # rows: windows, columns: channels

    def add_planar(self, data: np.ndarray) -> None:
        """Float samples shaped (channels, n) with n a multiple of the window."""
        blocks = data.reshape(data.shape[0], -1, self.window)
        high, low = blocks.max(axis=2).max(axis=0), blocks.min(axis=2).min(axis=0)
        self.peaks.append(np.maximum(high, -low).astype(np.float64))
        wide = blocks.astype(np.float64)
        self.squares.append(np.einsum("cij,cij->ci", wide, wide).T)

    def add_interleaved(self, data: np.ndarray, *, offset: float, scale: float) -> None:
        """Raw PCM, interleaved, a whole number of windows; ``(sample - offset) / scale`` is in [-1, 1]."""
        channels, window = self.channels, self.window
        rows = data.reshape(-1, window * channels)  # one window of every channel per row
        if data.dtype.kind == "f":
            self.peaks.append(np.abs(rows).max(axis=1).astype(np.float64))
        else:
            high = rows.max(axis=1).astype(np.float64) - offset
            low = rows.min(axis=1).astype(np.float64) - offset
            self.peaks.append(np.maximum(high, -low) / scale)
        # float32 is five times faster here than float64 and exact enough: a 50 ms window holds at most a few
        # thousand samples, so its sum of squares keeps about seven significant digits.
        planes = data.astype(np.float32).reshape(-1, window, channels)
        if offset:
            planes -= offset
        # (windows, channels, window): each channel's samples of a window side by side.
        planes = np.ascontiguousarray(planes.transpose(0, 2, 1)) if channels > 1 else planes.reshape(-1, 1, window)
        # A dot product per window and channel, batched (BLAS): half the time of einsum or of squaring and summing.
        squares = np.matmul(planes[:, :, None, :], planes[:, :, :, None]).reshape(-1, channels).astype(np.float64)
        self.squares.append(squares / (scale * scale) if scale != 1 else squares)

    def waveform(self) -> list[float]:
        return _buckets(np.concatenate(self.peaks) if self.peaks else np.zeros(1), WAVEFORM_BUCKETS)

    def talk_ms(self) -> list[int]:
        if not self.squares:
            return [0] * max(self.channels, 1)
        rms = np.sqrt(np.concatenate(self.squares) / self.window)
        return [int((rms[:, c] > SPEECH_RMS).sum()) * WINDOW_MS for c in range(rms.shape[1])]


# --- PCM WAV, scanned as its bytes go by -------------------------------------------------------------------

# KSDATAFORMAT_SUBTYPE_* GUIDs of WAVE_FORMAT_EXTENSIBLE end in these 14 bytes after the 2-byte format tag.
_KSDATAFORMAT_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
# (format tag, bits per sample) -> FFmpeg's codec name, numpy dtype of one sample, offset, scale to [-1, 1].
# 24-bit samples are widened to int32 (value << 8), as FFmpeg's decoder hands them out.
_PCM_FORMATS: dict[tuple[int, int], tuple[str, str, float, float]] = {
    (1, 8): ("pcm_u8", "u1", 128.0, 128.0),
    (1, 16): ("pcm_s16le", "<i2", 0.0, 32768.0),
    (1, 24): ("pcm_s24le", "<i4", 0.0, 2147483648.0),
    (1, 32): ("pcm_s32le", "<i4", 0.0, 2147483648.0),
    (3, 32): ("pcm_f32le", "<f4", 0.0, 1.0),
    (3, 64): ("pcm_f64le", "<f8", 0.0, 1.0),
}
# How much ``probe_audio`` reads at a time from a file it scans.
READ_BYTES = 1024 * 1024
# A data chunk that starts further into the file than this (after huge metadata chunks) is left to FFmpeg.
_HEADER_LIMIT = 1024 * 1024


@dataclass
class _WavLayout:
    codec: str
    dtype: str
    offset: float
    scale: float
    channels: int
    sample_rate: int
    block_align: int
    data_offset: int
    declared_bytes: int | None  # the data chunk's size; None: "length unknown", the audio runs to the end


_MORE = object()  # the header goes on past the bytes seen so far


def _parse_wav_header(head: bytes | bytearray) -> _WavLayout | object | None:  # noqa: PLR0911  # one per refusal
    """The layout of a plain PCM WAV (fmt before data, integer or float PCM, a consistent block size) from the
    file's first bytes; ``_MORE`` when they end before the data chunk starts; None for anything else, which the
    decoder reads instead."""
    if len(head) < 12:
        return _MORE if b"RIFF"[: len(head)] == bytes(head[:4]) else None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    fmt: bytes | None = None
    offset = 12
    while True:
        if offset + 8 > len(head):
            return _MORE
        chunk_id, chunk_size = struct.unpack_from("<4sI", head, offset)
        if chunk_id == b"data":
            break
        if chunk_id == b"fmt ":
            if offset + 8 + min(chunk_size, 64) > len(head):
                return _MORE
            fmt = bytes(head[offset + 8 : offset + 8 + min(chunk_size, 64)])
        offset += 8 + chunk_size + (chunk_size & 1)
    if fmt is None or len(fmt) < 16:
        return None
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the real format is the sub-format GUID's first two bytes
        if len(fmt) < 40 or fmt[26:40] != _KSDATAFORMAT_TAIL:
            return None
        tag = struct.unpack("<H", fmt[24:26])[0]
    known = _PCM_FORMATS.get((tag, bits))
    if known is None or not channels or not rate or block_align != channels * bits // 8:
        return None
    codec, dtype, sample_offset, scale = known
    # 0 and 0xFFFFFFFF mean "length unknown" (written while streaming a live call): the audio runs to the end of
    # the file, as FFmpeg reads it.
    declared = None if chunk_size in (0, 0xFFFFFFFF) else chunk_size
    return _WavLayout(codec, dtype, sample_offset, scale, channels, rate, block_align, offset + 8, declared)


class WavScanner:
    """Describes a plain PCM WAV from its bytes, fed in order and in chunks of any size, without FFmpeg.

    What decoding the file would answer, computed on the raw samples: the ingest feeds it the very chunks it
    hashes, so a WAV recording is read once. Anything that is not a plain PCM WAV (another container, A-law,
    a data chunk behind a megabyte of metadata) is ``declined`` at once and left to ``probe_audio``'s decoder.
    """

    def __init__(self, *, max_seconds: float | None = None) -> None:
        if max_seconds is None:
            max_seconds = float(settings.RECORDING_MAX_DURATION_SECONDS)
        self.max_seconds = max_seconds
        self.declined = False
        self._head: bytearray | None = bytearray()  # the header, until the data chunk starts
        self._layout: _WavLayout | None = None
        self._stats: _Windows | None = None
        self._window_bytes = 0
        self._carry = bytearray()  # the data after the last whole window
        self._data_bytes = 0  # of the data chunk, seen so far
        self._data_left: int | None = None  # of the data chunk, still to come; None: up to the end of the file

    @property
    def accepted(self) -> bool:
        """The file is a plain PCM WAV whose audio started: ``result`` answers once every byte was fed."""
        return self._layout is not None

    def feed(self, chunk: bytes | memoryview) -> None:
        """The file's next bytes. Raises AudioError as soon as the audio is known to be over the length limit."""
        if self.declined:
            return
        if self._head is not None:
            self._head += chunk
            parsed = _parse_wav_header(self._head)
            if parsed is _MORE and len(self._head) <= _HEADER_LIMIT:
                return
            if not isinstance(parsed, _WavLayout):
                self.declined, self._head = True, None
                return
            head, self._head = self._head, None
            self._start(parsed)
            chunk = memoryview(head)[parsed.data_offset :]
        if self._layout is not None and self._stats is not None:
            self._audio(memoryview(chunk), self._layout, self._stats)

    def _start(self, layout: _WavLayout) -> None:
        if layout.declared_bytes is not None and layout.declared_bytes // layout.block_align > self._limit(layout):
            raise _too_long(self.max_seconds)
        self._layout = layout
        window = max(1, layout.sample_rate * WINDOW_MS // 1000)
        self._stats = _Windows(window, layout.channels)
        self._window_bytes = window * layout.block_align
        self._data_left = layout.declared_bytes

    def _limit(self, layout: _WavLayout) -> float:
        return self.max_seconds * layout.sample_rate

    def _audio(self, data: memoryview, layout: _WavLayout, stats: _Windows) -> None:
        if self._data_left is not None:
            data = data[: self._data_left]  # chunks after the data (LIST, id3) are not audio
            self._data_left -= len(data)
        elif (self._data_bytes + len(data)) // layout.block_align > self._limit(layout):
            raise _too_long(self.max_seconds)
        self._data_bytes += len(data)
        size = self._window_bytes
        if self._carry:
            taken = data[: size - len(self._carry)]
            self._carry += taken
            data = data[len(taken) :]
            if len(self._carry) < size:
                return
            _add_windows(memoryview(self._carry), layout, stats)
            self._carry = bytearray()
        whole = len(data) // size * size
        if whole:
            _add_windows(data[:whole], layout, stats)
        self._carry += data[whole:]

    def result(self) -> AudioInfo:
        """The description, once the whole file was fed; AudioError when it is truncated or holds no audio."""
        layout, stats = self._layout, self._stats
        if layout is None or stats is None:
            raise ValueError("not a PCM WAV scanned to its data (see accepted)")
        if self._data_left:
            declared = layout.declared_bytes
            raise AudioError(
                f"The WAV file is truncated: its header declares {declared} bytes of audio but only "
                f"{self._data_bytes} are present."
            )
        samples = self._data_bytes // layout.block_align
        if samples == 0:
            raise AudioError("The file decodes to no audio at all.")
        return AudioInfo(
            container="wav",
            codec=layout.codec,
            duration_ms=round(samples / layout.sample_rate * 1000),
            channels=layout.channels,
            sample_rate=layout.sample_rate,
            waveform=stats.waveform(),
            talk_ms=stats.talk_ms(),
        )


def _add_windows(raw: memoryview, layout: _WavLayout, stats: _Windows) -> None:
    """Whole windows of interleaved samples, as they are in the file."""
    if layout.block_align // layout.channels == 3:  # 24-bit: widen to int32 with the sample in the top bytes
        wide = np.zeros((len(raw) // 3, 4), dtype=np.uint8)
        wide[:, 1:] = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        data = wide.view("<i4").reshape(-1)
    else:
        data = np.frombuffer(raw, dtype=layout.dtype)
    stats.add_interleaved(data, offset=layout.offset, scale=layout.scale)


def _scan_file(path: Path, max_seconds: float) -> WavScanner:
    scanner = WavScanner(max_seconds=max_seconds)
    with path.open("rb") as handle:
        # Small reads until the audio starts: a file that is not a PCM WAV is declined on its first bytes.
        while not scanner.declined and (chunk := handle.read(READ_BYTES if scanner.accepted else 4096)):
            scanner.feed(chunk)
    return scanner


# --- Anything else, through FFmpeg -------------------------------------------------------------------------

# Decoded frames are gathered until a block has at least this many samples per channel before the numpy work:
# frames are small (about a thousand samples), and per-frame array work cost more than the decoding.
_DECODE_BLOCK_SAMPLES = 65536


def _decode(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    *,
    codec: str,
    declared_seconds: float | None,
    fmt: str,
    max_seconds: float | None = None,
) -> AudioInfo:
    rate = stream.codec_context.sample_rate or stream.sample_rate or 0
    channels = stream.codec_context.channels or 0
    blocks = _DecodedBlocks()
    limit: float | None = None
    for frame in container.decode(stream):
        if blocks.stats is None:
            if not rate:
                rate, channels = frame.sample_rate, frame.layout.nb_channels
            blocks.stats = _Windows(max(1, rate * WINDOW_MS // 1000), channels)
            limit = max_seconds * rate if max_seconds is not None else None
        blocks.add(frame)
        if limit is not None and blocks.samples > limit:
            raise _too_long(max_seconds or 0)
    blocks.flush()
    samples = blocks.samples
    if samples == 0 or not rate:
        raise AudioError("The file decodes to no audio at all.")
    decoded_seconds = samples / rate
    if declared_seconds and declared_seconds > 1 and decoded_seconds < declared_seconds * 0.9:
        raise AudioError(
            f"The audio is truncated: the container declares {declared_seconds:.1f} s but only "
            f"{decoded_seconds:.1f} s decode."
        )
    stats = blocks.stats or _Windows(1, channels)
    return AudioInfo(
        container=_container_name(fmt, codec),
        codec=codec,
        duration_ms=round(decoded_seconds * 1000),
        channels=channels,
        sample_rate=rate,
        waveform=stats.waveform(),
        talk_ms=stats.talk_ms(),
    )


class _DecodedBlocks:
    """Decoded frames queued in FFmpeg's own FIFO (no per-frame Python or numpy work) and counted in blocks."""

    def __init__(self) -> None:
        self.stats: _Windows | None = None
        self.samples = 0
        self.fifo = av.AudioFifo()
        self.carry: np.ndarray | None = None  # samples after the last whole window, as float32

    def add(self, frame: av.AudioFrame) -> None:
        self.samples += frame.samples
        frame.pts = None  # the FIFO would check timestamps for gaps; decoders may leave some (priming, seeking)
        try:
            self.fifo.write(frame)
        except ValueError:  # the sample format, layout or rate changed mid-stream: a new FIFO from here on
            self.flush()
            self.fifo = av.AudioFifo()
            self.fifo.write(frame)
        if self.fifo.samples >= _DECODE_BLOCK_SAMPLES:
            self.flush()

    def flush(self) -> None:
        block = self.fifo.read() if self.fifo.samples else None
        if block is None or self.stats is None:
            return
        data = _as_float(block.to_ndarray(), block.format.name, block.layout.nb_channels)
        if self.carry is not None:
            data = np.concatenate([self.carry, data], axis=1)
        window = self.stats.window
        usable = (data.shape[1] // window) * window
        if usable:
            self.stats.add_planar(np.ascontiguousarray(data[:, :usable]))
        self.carry = data[:, usable:]


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
    if values.size > count:
        # Bucket i is values[edges[i]:edges[i + 1]]; with more values than buckets no bucket is empty.
        edges = np.linspace(0, values.size, count + 1, dtype=int)
        values = np.maximum.reduceat(values, edges[:-1])
    # Three decimals: k / 1000 is the double nearest to k/1000, which prints as exactly three decimals (as
    # round(v, 3) does, 60 times slower in a Python loop).
    rounded: list[float] = (np.rint(values * 1000) / 1000).tolist()
    return rounded


_CONTAINERS = {"wav": "wav", "flac": "flac", "ogg": "ogg", "mp3": "mp3", "matroska,webm": "webm"}


def _container_name(fmt: str, codec: str) -> str:
    if fmt.startswith("mov,mp4"):
        return "m4a"
    if fmt == "ogg" and codec == "opus":
        return "opus"
    return _CONTAINERS.get(fmt, fmt.split(",", maxsplit=1)[0])
