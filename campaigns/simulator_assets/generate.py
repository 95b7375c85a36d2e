"""Regenerate the simulator's pre-recorded calls (run once by a developer; the results are committed).

``.venv/bin/python -m campaigns.simulator_assets.generate`` speaks each conversation below with espeak-ng (two
voices: the agent and the person called), resamples with sox to 16 kHz mono, joins the sentences with short
pauses, encodes Ogg/Opus at 16 kbit/s with PyAV and writes ``clips.json``: each clip's file, length and timed
segments (the JSON transcript shape calls/transcripts.py reads). A fresh machine has no espeak-ng: the simulator
only ever reads the committed files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 16000
GAP_S = 0.45
VOICES = {"Agent": "en-us+f3", "Customer": "en-us+m3"}
CONVERSATIONS: dict[str, list[tuple[str, str]]] = {
    "solar-quote": [
        ("Agent", "Hello, this is Ava calling from Northwind Solar."),
        ("Customer", "Hi, yes, I asked for a quote last week."),
        ("Agent", "Great. Would Thursday morning work for a roof survey?"),
        ("Customer", "Thursday at ten is fine."),
        ("Agent", "Perfect, you will get a confirmation by email. Goodbye."),
    ],
    "renewal-reminder": [
        ("Agent", "Good afternoon, this is a reminder from Contoso Insurance."),
        ("Customer", "Oh, is my policy expiring?"),
        ("Agent", "It renews at the end of the month, at the same price."),
        ("Customer", "Good, please keep it as it is."),
        ("Agent", "Done. Thank you for staying with us."),
    ],
    "not-interested": [
        ("Agent", "Hello, I am calling about our new fibre internet offer."),
        ("Customer", "Sorry, I am not interested."),
        ("Agent", "No problem. Have a nice day."),
    ],
    "callback-later": [
        ("Agent", "Hi, this is Fabrikam Dental, about your check up."),
        ("Customer", "I am driving right now, can you call me tomorrow?"),
        ("Agent", "Of course, we will call you tomorrow morning. Drive safely."),
    ],
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} is needed to regenerate the clips: apt install {name}")
    return path


def _speak(text: str, voice: str, workdir: Path) -> np.ndarray:
    raw, resampled = workdir / "espeak.wav", workdir / "16k.wav"
    # Fixed tool names and our own sentences: no untrusted input reaches these commands.
    espeak = [_tool("espeak-ng"), "-v", voice, "-s", "150", "-w", str(raw), text]
    subprocess.run(espeak, check=True, capture_output=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        [_tool("sox"), str(raw), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(resampled)],
        check=True,
        capture_output=True,
    )
    with wave.open(str(resampled), "rb") as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").copy()


def _encode_opus(samples: np.ndarray, path: Path) -> None:
    with av.open(str(path), "w", format="ogg") as target:
        stream = target.add_stream("libopus", rate=RATE, layout="mono")
        if not isinstance(stream, av.AudioStream):
            raise TypeError("PyAV returned a non-audio stream for libopus")
        stream.bit_rate = 16000
        frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=RATE)
        for converted in resampler.resample(frame):
            target.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            target.mux(stream.encode(converted))
        target.mux(stream.encode(None))


def main() -> None:
    clips = []
    gap = np.zeros(round(GAP_S * RATE), dtype=np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        for name, lines in CONVERSATIONS.items():
            pieces: list[np.ndarray] = [gap]
            segments = []
            position = len(gap)
            for speaker, text in lines:
                spoken = _speak(text, VOICES[speaker], Path(tmp))
                start_ms, end_ms = round(position * 1000 / RATE), round((position + len(spoken)) * 1000 / RATE)
                segments.append({"speaker": speaker, "start_ms": start_ms, "end_ms": end_ms, "text": text})
                pieces.extend([spoken, gap])
                position += len(spoken) + len(gap)
            samples = np.concatenate(pieces)
            file = f"{name}.opus"
            _encode_opus(samples, HERE / file)
            clips.append(
                {
                    "name": name,
                    "file": file,
                    "content_type": "audio/ogg",
                    "duration_ms": round(len(samples) * 1000 / RATE),
                    "language": "en",
                    "segments": segments,
                }
            )
    (HERE / "clips.json").write_text(json.dumps({"clips": clips}, indent=2) + "\n")


if __name__ == "__main__":
    main()
