"""The PCM WAV fast path of ``probe_audio`` against FFmpeg decoding the same files (the path every other
container takes): the same facts, whatever the sample format, layout or chunk order.

Tolerances: durations within 1 ms (both count whole samples); waveform peaks within 0.001 (they are rounded to
3 decimals, and for 32-bit integers FFmpeg's path rounds the samples to float32 first, which can flip the last
decimal); talk time within one 50 ms window per channel (a window whose RMS sits within float rounding of the
threshold may fall either side). On these files they come out identical.
"""

from __future__ import annotations

import struct
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from calls import audio
from calls.audio import WINDOW_MS, AudioError, AudioInfo, probe_audio

_EXTENSIBLE_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def speechlike(channels: int, samples: int, seed: int = 7) -> np.ndarray:
    """Float samples in [-1, 1] shaped (channels, samples): bursts of noise at varied levels between pauses,
    different on each channel, with one near-full-scale peak."""
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((channels, samples)) * 0.0005  # a faint noise floor, below the speech threshold
    for c in range(channels):
        at = int(rng.integers(0, 2000))
        while at < samples:
            length = int(rng.integers(800, 6000))
            out[c, at : at + length] += rng.standard_normal(min(length, samples - at)) * rng.uniform(0.005, 0.3)
            at += length + int(rng.integers(500, 8000))
    out[0, samples // 3] = 0.99
    return np.clip(out, -1.0, 1.0)


def encode(samples: np.ndarray, bits: int, tag: int) -> bytes:
    """Interleaved little-endian PCM of ``samples`` (channels, n) in [-1, 1]."""
    frames = samples.T.reshape(-1)
    if tag == 3:
        return frames.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return np.clip(np.round(frames * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    full = 2 ** (bits - 1)
    ints = np.clip(np.round(frames * full), -full, full - 1).astype(np.int64)
    if bits == 24:
        packed: bytes = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        return packed
    raw: bytes = ints.astype("<i2" if bits == 16 else "<i4").tobytes()
    return raw


def write_pcm_wav(  # every knob of the header is a test case
    path: Path,
    samples: np.ndarray,
    rate: int,
    *,
    bits: int = 16,
    tag: int = 1,
    extensible: bool = False,
    before_data: bytes = b"",
    after_data: bytes = b"",
    declared: int | None = None,
) -> Path:
    channels = samples.shape[0]
    data = encode(samples, bits, tag)
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * block_align, block_align, bits)
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + _EXTENSIBLE_TAIL
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data
    size = len(data) if declared is None else declared
    body += b"data" + struct.pack("<I", size) + data + (b"\x00" if len(data) % 2 else b"") + after_data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def chunk(name: bytes, payload: bytes) -> bytes:
    return name + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def via_decoder(path: Path) -> AudioInfo:
    """What FFmpeg decoding the file answers: the fast path switched off."""
    with mock.patch.object(audio, "_parse_wav_header", return_value=None):
        return probe_audio(path)


def takes_fast_path(path: Path) -> bool:
    return audio._scan_file(path, 3600).accepted


def scanned_in_chunks(path: Path, sizes: list[int], max_seconds: float = 3600) -> AudioInfo:
    """The file fed to a WavScanner in chunks of these sizes, in turn, as the ingest feeds what it hashes."""
    raw = memoryview(path.read_bytes())
    scanner = audio.WavScanner(max_seconds=max_seconds)
    at, turn = 0, 0
    while at < len(raw):
        size = sizes[turn % len(sizes)]
        scanner.feed(raw[at : at + size])
        at, turn = at + size, turn + 1
    assert scanner.accepted
    return scanner.result()


def assert_same(fast: AudioInfo, decoded: AudioInfo) -> None:
    assert (fast.container, fast.codec, fast.channels, fast.sample_rate) == (
        decoded.container,
        decoded.codec,
        decoded.channels,
        decoded.sample_rate,
    )
    assert abs(fast.duration_ms - decoded.duration_ms) <= 1
    assert len(fast.waveform) == len(decoded.waveform)
    assert np.allclose(fast.waveform, decoded.waveform, rtol=0, atol=0.0011)
    assert len(fast.talk_ms) == len(decoded.talk_ms) == fast.channels
    for mine, theirs in zip(fast.talk_ms, decoded.talk_ms, strict=True):
        assert abs(mine - theirs) <= WINDOW_MS


@pytest.mark.parametrize(
    ("channels", "rate", "bits", "tag", "codec"),
    [
        (1, 8000, 8, 1, "pcm_u8"),
        (1, 16000, 16, 1, "pcm_s16le"),
        (1, 8000, 16, 1, "pcm_s16le"),
        (2, 8000, 16, 1, "pcm_s16le"),
        (1, 16000, 24, 1, "pcm_s24le"),
        (2, 16000, 24, 1, "pcm_s24le"),
        (2, 8000, 32, 1, "pcm_s32le"),
        (1, 16000, 32, 3, "pcm_f32le"),
        (2, 8000, 64, 3, "pcm_f64le"),
        (1, 44100, 16, 1, "pcm_s16le"),  # a window of 2205 samples
    ],
)
def test_the_fast_path_agrees_with_decoding(tmp_path, channels, rate, bits, tag, codec):
    samples = speechlike(channels, rate * 7 + 13)  # an odd count: a partial last window
    path = write_pcm_wav(tmp_path / "call.wav", samples, rate, bits=bits, tag=tag)
    assert takes_fast_path(path)
    fast = probe_audio(path)
    assert fast.codec == codec
    assert fast.talk_ms[0] > 0
    assert max(fast.waveform) > 0.9
    assert fast.duration_ms == round((rate * 7 + 13) / rate * 1000)
    assert_same(fast, via_decoder(path))


@pytest.mark.parametrize(("bits", "tag"), [(16, 1), (24, 1), (32, 3)])
def test_extensible_pcm_takes_the_fast_path(tmp_path, bits, tag):
    path = write_pcm_wav(tmp_path / "ext.wav", speechlike(2, 8000 * 5 + 1), 8000, bits=bits, tag=tag, extensible=True)
    assert takes_fast_path(path)
    assert_same(probe_audio(path), via_decoder(path))


def test_chunks_before_and_after_the_data_are_skipped(tmp_path):
    before = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00Lavf\x00") + chunk(b"junk", b"x" * 7)  # odd: padded
    after = chunk(b"LIST", b"INFOICMT\x04\x00\x00\x00note")
    path = write_pcm_wav(
        tmp_path / "chunks.wav", speechlike(1, 16000 * 4 + 3), 16000, before_data=before, after_data=after
    )
    fast = probe_audio(path)
    assert fast.duration_ms == round((16000 * 4 + 3) / 16)
    assert_same(fast, via_decoder(path))


@pytest.mark.parametrize("declared", [0, 0xFFFFFFFF])
def test_an_unknown_data_length_uses_the_bytes_present(tmp_path, declared):
    path = write_pcm_wav(tmp_path / "live.wav", speechlike(2, 8000 * 6 + 5), 8000, declared=declared)
    fast = probe_audio(path)
    assert fast.duration_ms == round((8000 * 6 + 5) / 8)
    assert_same(fast, via_decoder(path))


def test_odd_sized_8_bit_data_and_very_short_files(tmp_path):
    odd = write_pcm_wav(tmp_path / "odd.wav", speechlike(1, 8001), 8000, bits=8)
    assert_same(probe_audio(odd), via_decoder(odd))
    short = write_pcm_wav(tmp_path / "short.wav", speechlike(2, 100), 8000)  # less than one window
    fast = probe_audio(short)
    assert (fast.waveform, fast.talk_ms) == ([0.0], [0, 0])
    assert_same(fast, via_decoder(short))


def test_a_long_file_is_read_in_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "READ_BYTES", 64 * 1024)  # many blocks, and a last one that is partial
    path = write_pcm_wav(tmp_path / "long.wav", speechlike(2, 8000 * 40 + 77), 8000)
    blocked = probe_audio(path)
    monkeypatch.setattr(audio, "READ_BYTES", 64 * 1024 * 1024)
    assert blocked == probe_audio(path)
    assert_same(blocked, via_decoder(path))


@pytest.mark.parametrize("bits", [8, 16, 24])
@pytest.mark.parametrize("sizes", [[1], [3, 7], [4097], [44, 1601, 5]])
def test_chunk_boundaries_anywhere_give_the_same_answer(tmp_path, bits, sizes):
    """Boundaries inside the header, inside a sample, inside a window and at its edge: nothing moves."""
    before = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00Lavf\x00")
    after = chunk(b"LIST", b"INFOICMT\x04\x00\x00\x00note")
    samples = speechlike(2, 8000 * 2 + 9)
    path = write_pcm_wav(tmp_path / "odd.wav", samples, 8000, bits=bits, before_data=before, after_data=after)
    whole = probe_audio(path)
    assert scanned_in_chunks(path, sizes) == whole
    assert whole.duration_ms == round((8000 * 2 + 9) / 8)


def test_a_data_chunk_behind_a_megabyte_of_metadata_is_left_to_the_decoder(tmp_path):
    before = chunk(b"LIST", b"INFOICMT" + b"x" * (2 * audio._HEADER_LIMIT))
    path = write_pcm_wav(tmp_path / "meta.wav", speechlike(1, 8000 * 2), 8000, before_data=before)
    assert not takes_fast_path(path)
    assert probe_audio(path).duration_ms == 2000


def test_the_length_limit_is_enforced_from_the_header_and_while_scanning(tmp_path):
    declared = write_pcm_wav(tmp_path / "long.wav", speechlike(1, 8000 * 5), 8000)
    with pytest.raises(AudioError, match="longer than the limit of 4 s"):
        probe_audio(declared, max_seconds=4)
    unknown = write_pcm_wav(tmp_path / "live.wav", speechlike(1, 8000 * 5), 8000, declared=0)
    with pytest.raises(AudioError, match="longer than the limit"):
        scanned_in_chunks(unknown, [4096], max_seconds=4)


def test_empty_data_and_non_pcm_wav(tmp_path):
    empty = write_pcm_wav(tmp_path / "empty.wav", np.zeros((1, 0)), 8000)
    with pytest.raises(AudioError, match="no audio"):
        probe_audio(empty)
    # A-law is WAV too, but not PCM: FFmpeg decodes it.
    alaw = tmp_path / "alaw.wav"
    write_pcm_wav(alaw, speechlike(1, 8000), 8000, bits=8)
    raw = bytearray(alaw.read_bytes())
    raw[20:22] = struct.pack("<H", 6)
    alaw.write_bytes(bytes(raw))
    assert not takes_fast_path(alaw)
    assert probe_audio(alaw).codec == "pcm_alaw"


def test_a_truncated_wav_still_fails(tmp_path):
    path = write_pcm_wav(tmp_path / "cut.wav", speechlike(1, 16000), 16000, declared=16000 * 2 * 10)
    with pytest.raises(AudioError, match="truncated"):
        probe_audio(path)
