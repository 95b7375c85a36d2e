"""Demo calls for ``seed_demo``: two weeks of a small sales team's calls, so ``make run`` opens on a lived-in CRM.

``seed_calls`` writes, for the demo team's agents alice and bob:

- 24 calls over the last 14 days, outbound and inbound, completed, unanswered, busy, failed, and three live ones
  (two in progress, one ringing; one of the talking ones has gone quiet, so the live page flags it), each with
  its event timeline written through ``call_event_record`` like an integration's events would be;
- for 8 completed calls a real recording with a transcript of timed, speaker-labelled segments, written in the
  folder contract (``sessions/<id>/recording.wav`` + ``transcript.json``) and ingested with ``session_ingest``,
  so they play, show a waveform and are searchable; one of them is dual-channel (agent left, caller right);
- a few notes from the agents and their manager;
- 2 recordings that arrived without a session row, adopted with ``orphan_adopt`` as the sweep would: nobody
  owns them, so they wait on the managers' triage page (one with a ``meta.json`` that adoption complains about).

Every id is a uuid5 of a fixed namespace, so a second run finds its rows and creates nothing; it only finishes
what an interrupted run left (an ingest) and moves the live calls' clock to now, so the live page still shows
calls in progress the next day (unless the expiry job has already ended them).

Speech comes from espeak-ng when the machine has it; otherwise a tone-burst murmur with the rhythm of speech is
synthesized with numpy, so the player, the waveform and the transcript's timing still work without any tool.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import shutil
import subprocess
import tempfile
import tomllib
import uuid
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from calls.adoption import orphan_adopt
from calls.ingest import session_ingest
from calls.models import CallEvent, CallSession, Note, Recording
from calls.services import EventInput, call_event_record
from calls.states import ACTIVE, Status
from calls.storage import recordings_storage, session_key
from crm.models import Team, User

logger = logging.getLogger(__name__)

DEMO_NAMESPACE = uuid.UUID("6f1c7d2e-4b0a-5c9e-9a53-0c1ab5e0ca11")
DEMO_SOURCE = "demo-dialer"
SAMPLE_RATE = 16000
DAYS = 14
OUR_NUMBER = "+14155550100"


def demo_session_id(kind: str, index: int) -> uuid.UUID:
    """The fixed id of demo call ``index`` ("call") or demo orphan ``index`` ("orphan")."""
    return uuid.uuid5(DEMO_NAMESPACE, f"{kind}-{index}")


# --- Dialogues ---------------------------------------------------------------------------------------------

AGENT, CALLER = "Agent", "Caller"


@dataclass(frozen=True)
class Dialogue:
    agent: str  # the demo agent (username) who takes the call
    customer: str
    topic: str
    lines: tuple[tuple[str, str], ...]  # (AGENT or CALLER, what they say)
    caller_voice: str
    dual_channel: bool = False


def _load_dialogues() -> tuple[dict[str, str], tuple[Dialogue, ...], tuple[Dialogue, ...]]:
    """The scripts live in demo_dialogues.toml: they are data, edited by people who write dialogue, not code."""
    with (Path(__file__).with_name("demo_dialogues.toml")).open("rb") as handle:
        data = tomllib.load(handle)

    def dialogues(kind: str) -> tuple[Dialogue, ...]:
        return tuple(
            Dialogue(
                agent=item["agent"],
                customer=item["customer"],
                topic=item["topic"],
                caller_voice=item["caller_voice"],
                dual_channel=item.get("dual_channel", False),
                lines=tuple((speaker, text) for speaker, text in item["lines"]),
            )
            for item in data[kind]
        )

    return dict(data["agent_voices"]), dialogues("dialogue"), dialogues("orphan")


# Orphans are recordings that reached storage without a session row: what the triage page is for.
AGENT_VOICES, DIALOGUES, ORPHAN_DIALOGUES = _load_dialogues()


# --- Speech ------------------------------------------------------------------------------------------------

Samples = npt.NDArray[np.float64]


def espeak_path() -> str | None:
    return shutil.which("espeak-ng")


def _espeak(espeak: str, text: str, voice: str) -> Samples:
    """``text`` spoken by espeak-ng, resampled to SAMPLE_RATE, as floats in -1..1."""
    with tempfile.TemporaryDirectory(prefix="callbook-demo-") as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(  # noqa: S603  # a fixed tool with our own text as one argument, no shell
            [espeak, "-v", voice, "-s", "155", "-w", str(path), text], check=True, capture_output=True, timeout=30
        )
        with wave.open(str(path), "rb") as reader:
            rate = reader.getframerate()
            raw = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    samples = raw.astype(np.float64) / 32768.0
    if rate == SAMPLE_RATE or samples.size == 0:
        return samples
    # Linear interpolation is enough here: espeak's output has next to nothing above 8 kHz to alias.
    count = round(samples.size * SAMPLE_RATE / rate)
    return np.interp(np.linspace(0, samples.size - 1, count), np.arange(samples.size), samples)


def _murmur(text: str, voice: str) -> Samples:
    """A speech-like tone burst for ``text``: one gliding harmonic "syllable" per three letters, pauses between
    words and longer ones at punctuation, a lower pitch for male voices. No words, but the rhythm, loudness and
    length of speech, so a waveform, a player and timed transcript segments behave as with a real voice."""
    rng = random.Random(hashlib.sha256(f"{voice}:{text}".encode()).digest())  # noqa: S311  # not for security
    base = 125.0 if "+m" in voice else 215.0
    pieces: list[Samples] = []
    for word in text.split():
        letters = sum(ch.isalpha() for ch in word) or 1
        for _ in range(max(1, round(letters / 3))):
            length = rng.uniform(0.11, 0.2)
            t = np.arange(round(length * SAMPLE_RATE)) / SAMPLE_RATE
            f0 = base * rng.uniform(0.9, 1.15) * (1 + rng.uniform(-0.12, 0.08) * t / length)
            phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
            # Harmonics fading with their number, the second and third kept loud like a vowel's formants.
            tone = np.zeros_like(t)
            for harmonic, weight in ((1, 1.0), (2, 0.7), (3, 0.5), (4, 0.25), (5, 0.12)):
                tone += weight * np.sin(harmonic * phase)
            envelope = np.sin(np.pi * t / length) ** 1.5
            pieces.append(0.22 * rng.uniform(0.7, 1.0) * envelope * tone)
            pieces.append(np.zeros(round(rng.uniform(0.015, 0.04) * SAMPLE_RATE)))
        pause = 0.3 if word[-1] in ".?!" else 0.18 if word[-1] in ",;:" else rng.uniform(0.05, 0.09)
        pieces.append(np.zeros(round(pause * SAMPLE_RATE)))
    return np.concatenate(pieces) if pieces else np.zeros(0)


def speak(text: str, *, voice: str, espeak: str | None) -> Samples:
    if espeak is not None:
        try:
            return _espeak(espeak, text, voice)
        except (OSError, subprocess.SubprocessError, wave.Error) as exc:
            logger.warning("espeak-ng could not say a demo line (%s); using a synthesized murmur", exc)
    return _murmur(text, voice)


@dataclass(frozen=True)
class TimedLine:
    speaker: str
    start_ms: int
    end_ms: int
    text: str


@dataclass(frozen=True)
class DemoAudio:
    wav: bytes
    lines: list[TimedLine]
    duration_ms: int


def render_dialogue(dialogue: Dialogue, *, espeak: str | None) -> DemoAudio:
    """The dialogue as a WAV (mono, or agent left and caller right) and its lines' times in that WAV."""
    rng = random.Random(dialogue.topic)  # noqa: S311  # not for security
    voices = {AGENT: AGENT_VOICES[dialogue.agent], CALLER: dialogue.caller_voice}
    with ThreadPoolExecutor(max_workers=8) as pool:
        spoken = list(pool.map(lambda line: speak(line[1], voice=voices[line[0]], espeak=espeak), dialogue.lines))
    cursor = round(0.4 * SAMPLE_RATE)
    placed: list[tuple[int, Samples, str]] = []
    lines: list[TimedLine] = []
    for (speaker, text), samples in zip(dialogue.lines, spoken, strict=True):
        start = cursor
        placed.append((start, samples, speaker))
        lines.append(
            TimedLine(
                speaker=speaker,
                start_ms=start * 1000 // SAMPLE_RATE,
                end_ms=(start + samples.size) * 1000 // SAMPLE_RATE,
                text=text,
            )
        )
        cursor = start + samples.size + round(rng.uniform(0.35, 0.8) * SAMPLE_RATE)
    total = cursor + round(0.3 * SAMPLE_RATE)
    channels = 2 if dialogue.dual_channel else 1
    mix = np.zeros((channels, total))
    # Line noise well below speech: real calls are never digitally silent between turns.
    mix += np.random.default_rng(len(dialogue.lines)).normal(0, 0.002, mix.shape)
    for start, samples, speaker in placed:
        channel = 1 if channels == 2 and speaker == CALLER else 0
        mix[channel, start : start + samples.size] += samples
    pcm = (np.clip(mix, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(np.ascontiguousarray(pcm.T).tobytes())
    return DemoAudio(wav=buffer.getvalue(), lines=lines, duration_ms=total * 1000 // SAMPLE_RATE)


def transcript_json(lines: Sequence[TimedLine]) -> bytes:
    """The folder contract's JSON transcript: timed segments, times in milliseconds."""
    segments = [{"speaker": ln.speaker, "start_ms": ln.start_ms, "end_ms": ln.end_ms, "text": ln.text} for ln in lines]
    return json.dumps({"language": "en", "segments": segments}, indent=2).encode()


def transcript_vtt(lines: Sequence[TimedLine]) -> bytes:
    def stamp(ms: int) -> str:
        return f"{ms // 3_600_000:02}:{ms // 60_000 % 60:02}:{ms // 1000 % 60:02}.{ms % 1000:03}"

    cues = [f"{stamp(ln.start_ms)} --> {stamp(ln.end_ms)}\n<v {ln.speaker}>{ln.text}" for ln in lines]
    return ("WEBVTT\n\n" + "\n\n".join(cues) + "\n").encode()


def transcript_txt(lines: Sequence[TimedLine]) -> bytes:
    return "".join(f"{ln.speaker}: {ln.text}\n" for ln in lines).encode()


def _store(session_id: uuid.UUID, filename: str, content: bytes) -> str:
    """Write one file of the session's folder, replacing what is there (storage.save would rename instead)."""
    storage = recordings_storage()
    key = session_key(session_id, filename)
    if storage.exists(key):
        storage.delete(key)
    storage.save(key, ContentFile(content))
    return key


# --- The calls ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoCall:
    index: int
    owner: str
    status: str
    direction: str
    started_at: datetime
    to_number: str
    customer: str
    topic: str
    dialogue: Dialogue | None = None
    talk_s: int = 0  # for completed calls without a recording
    quiet_s: int = 0  # for live calls: seconds since their last event
    notes: tuple[tuple[str, str], ...] = ()  # (author, body)

    @property
    def session_id(self) -> uuid.UUID:
        return demo_session_id("call", self.index)


OTHER_CUSTOMERS = (
    ("Hannah Fischer", "Renewal reminder"),
    ("Omar Haddad", "New lead"),
    ("Lucia Alvarez", "Quote request"),
    ("Ben Ashworth", "Upgrade offer"),
    ("Mei Tanaka", "Survey follow-up"),
    ("Chris Doyle", "Contract question"),
    ("Aisha Bello", "Reactivation"),
    ("Noah Schmidt", "Trial check-in"),
)

# Index 0 is the newest. The live calls come first; the rest spread over the two weeks.
_PLAN: tuple[str, ...] = (
    Status.IN_PROGRESS,
    Status.IN_PROGRESS,
    Status.RINGING,
    *(Status.COMPLETED, Status.NO_ANSWER, Status.COMPLETED, Status.BUSY, Status.COMPLETED, Status.COMPLETED),
    *(Status.FAILED, Status.COMPLETED, Status.NO_ANSWER, Status.COMPLETED, Status.COMPLETED, Status.BUSY),
    *(Status.COMPLETED, Status.NO_ANSWER, Status.COMPLETED, Status.COMPLETED, Status.FAILED, Status.COMPLETED),
    *(Status.BUSY, Status.NO_ANSWER, Status.COMPLETED),
)
# Which completed calls (by index) carry a recorded dialogue, and which one.
_RECORDED = {3: 0, 5: 1, 7: 2, 8: 3, 10: 4, 13: 5, 15: 6, 18: 7}
_NOTES: dict[int, tuple[tuple[str, str], ...]] = {
    3: (("alice", "Sent the revised quote without the battery. Call back Thursday if no reply."),),
    8: (
        ("bob", "Courier confirmed the new address; delivery tomorrow morning."),
        ("carol", "Nicely handled. Let's use this one in Friday's coaching session."),
    ),
    13: (("bob", "Saved the account: moved to the starter plan instead of cancelling."),),
    15: (("alice", "Demo booked for Tuesday 11:00 with their operations lead. Invite sent."),),
    6: (("bob", "Line busy twice today; try again tomorrow after 5 pm."),),
}


def demo_calls(*, now: datetime) -> list[DemoCall]:
    """The 24 demo calls, with times relative to ``now`` (only used when a call is first created)."""
    calls = []
    others = iter(OTHER_CUSTOMERS * 3)
    for index, status in enumerate(_PLAN):
        rng = random.Random(index)  # noqa: S311  # not for security
        dialogue_index = _RECORDED.get(index)
        dialogue = DIALOGUES[dialogue_index] if dialogue_index is not None else None
        # A recorded call belongs to the agent who speaks in it; the others alternate.
        owner = dialogue.agent if dialogue else ("alice", "bob")[index % 2]
        if status in ACTIVE:
            started_at = now - timedelta(seconds=(95, 1830, 12)[index])
            quiet_s = (40, 24 * 60, 10)[index]
        else:
            day = now - timedelta(days=round((index - 3) * (DAYS - 1) / (len(_PLAN) - 4)))
            started_at = day.replace(hour=rng.randint(9, 16), minute=rng.randint(0, 59), second=rng.randint(0, 59))
            if started_at > now - timedelta(minutes=30):
                started_at = now - timedelta(minutes=35 + 17 * index)
            quiet_s = 0
        customer, topic = (dialogue.customer, dialogue.topic) if dialogue else next(others)
        inbound = dialogue is not None and dialogue.lines[0][0] == CALLER
        calls.append(
            DemoCall(
                index=index,
                owner=owner,
                status=status,
                direction=CallSession.Direction.INBOUND if inbound else CallSession.Direction.OUTBOUND,
                started_at=started_at.astimezone(UTC),
                to_number=f"+1415555{150 + index:04d}",
                customer=customer,
                topic=topic,
                dialogue=dialogue,
                talk_s=rng.randint(45, 420),
                quiet_s=quiet_s,
                notes=_NOTES.get(index, ()),
            )
        )
    return calls


def _events(call: DemoCall, audio: DemoAudio | None, *, now: datetime) -> list[EventInput]:
    """The timeline an integration would have reported for ``call``."""
    rng = random.Random(f"events-{call.index}")  # noqa: S311  # not for security
    t0 = call.started_at
    ring = t0 + timedelta(seconds=rng.uniform(0.8, 2.0))
    answer = ring + timedelta(seconds=rng.uniform(3, 12))

    def event(n: int, kind: str, at: datetime, **data: object) -> EventInput:
        return EventInput(type=kind, event_id=f"demo-{call.index}-{n}", occurred_at=at, data=dict(data))

    # Calls that never connected: busy and failed end before ringing, a no-answer after 30 s of it.
    endings: dict[str, list[EventInput]] = {
        Status.BUSY: [event(2, "busy", ring, reason="SIP 486 Busy Here")],
        Status.FAILED: [event(2, "failed", ring, reason="SIP 503 Service Unavailable from the carrier")],
        Status.RINGING: [event(2, "ringing", ring)],
        Status.NO_ANSWER: [
            event(2, "ringing", ring),
            event(3, "no_answer", ring + timedelta(seconds=30), reason="no answer after 30 s"),
        ],
    }
    events = [event(1, "initiated", t0)]
    if call.status in endings:
        return events + endings[call.status]
    events.append(event(2, "ringing", ring))
    if call.status == Status.IN_PROGRESS:
        last = now - timedelta(seconds=call.quiet_s)
        if answer >= last:
            return [*events, event(3, "answered", last)]
        # The quiet one was put on hold and never heard from again: what a crashed agent process looks like.
        kind, data = ("hold", {"by": "agent"}) if call.quiet_s > 600 else ("dtmf", {"digits": "2"})
        return [*events, event(3, "answered", answer), event(4, kind, last, **data)]
    talk = timedelta(milliseconds=audio.duration_ms) if audio else timedelta(seconds=call.talk_s)
    events.append(event(3, "answered", answer))
    if call.index % 4 == 1:
        events.append(event(4, "dtmf", answer + talk * 0.3, digits="1"))
    who = "caller" if call.index % 3 else "agent"
    return [*events, event(5, "completed", answer + talk, reason=f"{who} hung up")]


@dataclass
class DemoCalls:
    """What the demo calls look like after ``seed_calls``."""

    calls: int = 0
    recordings: int = 0  # recordings available to play
    live: int = 0
    orphans_in_triage: int = 0
    created: int = 0  # rows this run created (calls and orphans)
    speech: str = ""  # "espeak-ng" or "synthesized tones"
    problems: list[str] = field(default_factory=list)


def seed_calls(*, team: Team, now: datetime | None = None) -> DemoCalls:
    """Create the demo calls and triage orphans that do not exist yet; see the module docstring."""
    now = now or timezone.now()
    espeak = espeak_path()
    result = DemoCalls(speech="espeak-ng" if espeak else "synthesized tones")
    people = {user.username: user for user in User.objects.filter(username__in=["alice", "bob", "carol"])}
    calls = demo_calls(now=now)
    existing = set(CallSession.objects.filter(pk__in=[call.session_id for call in calls]).values_list("pk", flat=True))
    missing = [call for call in calls if call.session_id not in existing]
    # Speech first, in parallel across calls: it is most of what a fresh seed takes.
    recorded = [(call.index, call.dialogue) for call in missing if call.dialogue is not None]
    with ThreadPoolExecutor(max_workers=4) as pool:
        audios = pool.map(lambda item: render_dialogue(item[1], espeak=espeak), recorded)
        rendered = {index: audio for (index, _), audio in zip(recorded, audios, strict=True)}
    for call in missing:
        audio = rendered.get(call.index)
        _create_call(call=call, owner=people[call.owner], team=team, people=people, audio=audio, now=now)
        result.created += 1
    for call in calls:
        if call.status in ACTIVE and call.session_id in existing:
            _refresh_live(session_id=call.session_id, quiet_s=call.quiet_s, now=now)
    result.created += _seed_orphans(now=now, espeak=espeak)
    _ingest_unfinished()
    demo = CallSession.objects.filter(pk__in=[call.session_id for call in calls])
    result.calls = demo.count()
    result.recordings = demo.filter(recording_status=CallSession.RecordingStatus.AVAILABLE).count()
    result.live = demo.filter(status__in=sorted(ACTIVE)).count()
    orphan_ids = [demo_session_id("orphan", i) for i in range(len(ORPHAN_DIALOGUES))]
    result.orphans_in_triage = CallSession.objects.filter(pk__in=orphan_ids, owner__isnull=True).count()
    return result


def _create_call(
    *, call: DemoCall, owner: User, team: Team, people: dict[str, User], audio: DemoAudio | None, now: datetime
) -> CallSession:
    with transaction.atomic():
        session = CallSession.objects.create(
            id=call.session_id,
            source=DEMO_SOURCE,
            external_id=f"DEMO-{call.index + 1:04d}",
            owner=owner,
            team=team,
            direction=call.direction,
            from_number=OUR_NUMBER if call.direction == CallSession.Direction.OUTBOUND else call.to_number,
            to_number=call.to_number if call.direction == CallSession.Direction.OUTBOUND else OUR_NUMBER,
            metadata={"demo": True, "customer": call.customer, "topic": call.topic},
        )
        # A real session is created when the call is placed, not when the demo was seeded.
        CallSession.objects.filter(pk=session.pk).update(created_at=call.started_at)
        for event in _events(call, audio, now=now):
            call_event_record(session_id=session.pk, event=event)
        for offset, (author, body) in enumerate(call.notes):
            note = Note.objects.create(session=session, author=people[author], body=body)
            written = call.started_at + timedelta(minutes=15 + 40 * offset)
            Note.objects.filter(pk=note.pk).update(created_at=written, updated_at=written)
        if audio is not None and call.dialogue is not None:
            key = _store(session.pk, "recording.wav", audio.wav)
            _store(session.pk, "transcript.json", transcript_json(audio.lines))
            Recording.objects.create(session=session, file=key, status=Recording.Status.PENDING)
            CallSession.objects.filter(pk=session.pk).update(recording_status=CallSession.RecordingStatus.PENDING)
        elif call.status not in ACTIVE:
            CallSession.objects.filter(pk=session.pk).update(recording_status=CallSession.RecordingStatus.ABSENT)
    return session


def _refresh_live(*, session_id: uuid.UUID, quiet_s: int, now: datetime) -> None:
    """Move a still-live demo call's clock so its last event was ``quiet_s`` ago, its whole timeline shifted
    alike: a demo seeded yesterday still has calls in progress today. Ended ones (expired) stay as they are."""
    session = CallSession.objects.filter(pk=session_id, status__in=sorted(ACTIVE)).first()
    if session is None or session.last_event_at is None:
        return
    shift = now - timedelta(seconds=quiet_s) - session.last_event_at
    if abs(shift) < timedelta(seconds=5):
        return
    with transaction.atomic():
        CallSession.objects.filter(pk=session_id).update(
            created_at=F("created_at") + shift,
            started_at=F("started_at") + shift,
            answered_at=F("answered_at") + shift,
            last_event_at=F("last_event_at") + shift,
        )
        CallEvent.objects.filter(session_id=session_id).update(occurred_at=F("occurred_at") + shift)


def _seed_orphans(*, now: datetime, espeak: str | None) -> int:
    """Drop the orphan folders and adopt them as the sweep does; answers how many were adopted now."""
    created = 0
    for index, dialogue in enumerate(ORPHAN_DIALOGUES):
        session_id = demo_session_id("orphan", index)
        if CallSession.objects.filter(pk=session_id).exists():
            continue
        audio = render_dialogue(dialogue, espeak=espeak)
        started = now - timedelta(days=index + 1, hours=3 * index + 2)
        meta: dict[str, object] = {
            "source": "pipecat-prod",
            "from": f"+1415555{190 + index:04d}",
            "to": OUR_NUMBER,
            "direction": "inbound",
            "started_at": started.isoformat(),
            "ended_at": (started + timedelta(milliseconds=audio.duration_ms)).isoformat(),
        }
        if index == 0:
            _store(session_id, "transcript.vtt", transcript_vtt(audio.lines))
        else:
            # A folder written by a misconfigured agent: adoption reports both fields and carries on.
            meta |= {"owner": "zoe", "direction": "sideways"}
            _store(session_id, "transcript.txt", transcript_txt(audio.lines))
        _store(session_id, "meta.json", json.dumps(meta, indent=2).encode())
        _store(session_id, "recording.wav", audio.wav)
        adopted = orphan_adopt(session_id=session_id, requester=None)
        if adopted is not None:
            # The sweep runs every five minutes: it would have found the folder shortly after the call.
            found = started + timedelta(milliseconds=audio.duration_ms, minutes=4)
            CallSession.objects.filter(pk=session_id).update(created_at=found, last_event_at=found)
            CallEvent.objects.filter(session_id=session_id, type="adopted").update(occurred_at=found)
            created += 1
    return created


def _ingest_unfinished() -> None:
    """Ingest the demo recordings not yet available: all of them on the first run, none on later ones
    (unless a run was interrupted). The worker would do it too, but the demo should play as soon as it opens."""
    ids = [demo_session_id("call", index) for index in _RECORDED] + [
        demo_session_id("orphan", index) for index in range(len(ORPHAN_DIALOGUES))
    ]
    waiting = Recording.objects.filter(session_id__in=ids).exclude(status=Recording.Status.AVAILABLE)
    for session_id in waiting.values_list("session_id", flat=True):
        status = session_ingest(session_id=session_id)
        if status != Recording.Status.AVAILABLE:
            logger.warning("demo recording of %s is %s after ingest", session_id, status or "missing")
