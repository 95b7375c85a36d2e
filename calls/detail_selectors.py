"""Reads of the call detail page family (``/calls/<id>/`` and its audio, notes and adopt routes).

Access always goes through ``calls.selectors.get_call_session_for_user``; what is here shapes a session that
has already passed the access rule into what the template shows (``detail_view``), answers the page's small
progress poll (``progress_for_user``), finds the playable recording for the audio route, and, for an id with
no session, looks at the recordings storage to tell whether an orphaned recording is waiting there
(``missing_session_lookup``).

``detail_view`` works from the prefetched session only: a fixed number of queries whatever the session holds
(the campaign's and the contact's names are one query each, only when the session has them).
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils import timezone

from calls import states
from calls.adoption import read_ownership
from calls.models import CallEvent, CallSession, Note, Recording, Transcript, TranscriptSegment
from calls.selectors import parse_session_id, visible_sessions
from calls.storage import inspect_session_folder, recordings_storage
from crm.models import Team, User

logger = logging.getLogger(__name__)

WAVEFORM_MAX_BUCKETS = 600
WAVEFORM_HEIGHT = 100
# How long after its recording became available a missing transcript is still "being produced" by speech-to-text.
TRANSCRIPTION_GRACE = timedelta(hours=1)
SPEAKER_CLASSES = 4
EVENT_DATA_KEYS = ("reason", "digits", "to", "from", "by", "target", "policy", "attempt", "file")
EVENT_SUMMARY_MAX_ITEMS = 4
EVENT_VALUE_MAX_CHARS = 120


def clock(ms: int | None) -> str:
    """A length as a player shows it: 0:42, 12:05, 1:02:03; "—" when unknown."""
    if ms is None:
        return "—"
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def display_name(user: User | None) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.username


# --- Recording and transcript states ------------------------------------------------------------------------


class RecordingState:
    """What the recording card explains; one of these strings."""

    MISSING = "missing"  # no Recording row: nothing has arrived
    NOT_RECORDED = "not_recorded"  # no row, and the session says it was not recorded
    PENDING = "pending"
    PROCESSING = "processing"
    FAILED = "failed"
    DELETED = "deleted"
    AVAILABLE = "available"


class TranscriptState:
    SEGMENTS = "segments"  # timed, speaker-labelled segments
    TEXT = "text"  # a transcript without segments: its text
    WAITING = "waiting"  # the recording is still being processed; the transcript comes after it
    PRODUCING = "producing"  # recording available, speech-to-text still running
    NONE = "none"


def recording_of(session: CallSession) -> Recording | None:
    try:
        return session.recording
    except Recording.DoesNotExist:
        return None


def transcript_of(session: CallSession) -> Transcript | None:
    try:
        return session.transcript
    except Transcript.DoesNotExist:
        return None


def progress_token(*, recording_status: str | None, has_transcript: bool) -> str:
    """What the page's poll compares: it changes when the recording or the transcript moves on."""
    return f"{recording_status or 'none'}:{int(has_transcript)}"


def progress_for_user(*, user: User, session_id: str) -> str | None:
    """The progress token of a session ``user`` may see (one query), or None for anything else."""
    parsed = parse_session_id(session_id)
    if parsed is None:
        return None
    row = visible_sessions(user=user).filter(pk=parsed).values("recording__status", "transcript__id").first()
    if row is None:
        return None
    return progress_token(recording_status=row["recording__status"], has_transcript=row["transcript__id"] is not None)


def playable_recording(*, session: CallSession) -> Recording | None:
    """The session's recording when it can be played (ingested, not deleted); the audio route's one read."""
    return Recording.objects.filter(session=session, status=Recording.Status.AVAILABLE).first()


def note_of_session(*, session: CallSession, note_id: int) -> Note | None:
    """A note of ``session`` (which has passed the access rule) by id; None when it is not one of its notes."""
    return Note.objects.filter(session=session, pk=note_id).first()


def _transcription_enabled() -> bool:
    backend = str(getattr(settings, "TRANSCRIPTION_BACKEND", "none") or "").strip().lower()
    return backend not in ("", "none")


def _transcript_state(
    *,
    recording: Recording | None,
    transcript: Transcript | None,
    segments: list[TranscriptSegment],
    events: list[CallEvent],
) -> str:
    if transcript is not None:
        return (
            TranscriptState.SEGMENTS
            if segments
            else (TranscriptState.TEXT if transcript.text else TranscriptState.NONE)
        )
    if recording is None:
        return TranscriptState.NONE
    if recording.status in (Recording.Status.PENDING, Recording.Status.PROCESSING):
        return TranscriptState.WAITING
    if recording.status != Recording.Status.AVAILABLE or not _transcription_enabled():
        return TranscriptState.NONE
    ingested = recording.ingested_at
    if ingested is None or timezone.now() - ingested > TRANSCRIPTION_GRACE:
        return TranscriptState.NONE
    gave_up = any(event.type == "transcript_failed" and event.occurred_at >= ingested for event in events)
    return TranscriptState.NONE if gave_up else TranscriptState.PRODUCING


# --- View models ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waveform:
    """An SVG path of the peaks, drawn in a ``width`` x WAVEFORM_HEIGHT box (stretched to the element)."""

    path: str
    width: int
    height: int
    measured: bool  # False: no peaks were stored, the path is a plain timeline bar


@dataclass(frozen=True)
class TalkShare:
    label: str
    css_class: str
    ms: int
    clock: str
    percent: int
    bar_x: float  # where its bar starts in a 0..100 box
    bar_width: float


@dataclass(frozen=True)
class SegmentView:
    position: int
    speaker: str
    speaker_class: str
    text: str
    start_ms: int | None
    end_ms: int | None  # its own end, else the next timed segment's start, else None (until the end)
    start_clock: str


@dataclass(frozen=True)
class EventView:
    event: CallEvent
    summary: list[tuple[str, str]]


@dataclass
class NoteView:
    note: Note
    author_name: str
    can_edit: bool
    edited: bool
    # Set when an edit of this note came back with errors: the form opens with them.
    edit_value: str | None = None
    edit_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DetailView:
    session: CallSession
    owner_name: str
    campaign_name: str
    contact_name: str
    recording: Recording | None
    recording_state: str
    transcript: Transcript | None
    transcript_state: str
    segments: list[SegmentView]
    timed_segments: int
    events: list[EventView]
    notes: list[NoteView]
    waveform: Waveform | None
    talk: list[TalkShare]
    duration_clock: str
    recording_clock: str
    adoption_problems: list[str]
    in_progress: bool  # something is still being produced: the page polls and refreshes itself
    progress_token: str
    # The recording is available but the recordings storage cannot be read: the page says so.
    storage_unavailable: bool = False


def _peaks(raw: Any) -> list[float]:
    """The stored peaks as floats in 0..1; anything else in the JSON counts as silence."""
    if not isinstance(raw, list):
        return []
    peaks: list[float] = []
    for value in raw:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
        peaks.append(min(max(number, 0.0), 1.0) if math.isfinite(number) else 0.0)
    if len(peaks) > WAVEFORM_MAX_BUCKETS:
        # Fold down to the maximum, keeping each group's peak.
        step = len(peaks) / WAVEFORM_MAX_BUCKETS
        peaks = [
            max(peaks[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]) for i in range(WAVEFORM_MAX_BUCKETS)
        ]
    return peaks


def waveform_for(recording: Recording) -> Waveform:
    """A closed, mirrored outline of the peaks: one path, whatever the number of buckets."""
    peaks = _peaks(recording.waveform)
    measured = bool(peaks)
    if not peaks:
        peaks = [0.06] * 100
    middle = WAVEFORM_HEIGHT / 2
    # Never flatter than a hairline, so silence still reads as part of the timeline.
    half = [max(p, 0.02) * (middle - 2) for p in peaks]
    top = " ".join(f"L{i + 0.5:g} {middle - h:.1f}" for i, h in enumerate(half))
    bottom = " ".join(f"L{i + 0.5:g} {middle + h:.1f}" for i, h in reversed(list(enumerate(half))))
    width = len(peaks)
    path = f"M0 {middle:g} {top} L{width} {middle:g} {bottom} Z"
    return Waveform(path=path, width=width, height=WAVEFORM_HEIGHT, measured=measured)


def talk_shares(recording: Recording) -> list[TalkShare]:
    """Per-speaker talk time of a dual-channel recording (agent on the left channel, caller on the right)."""
    talk = recording.talk_ms
    if recording.channels != 2 or not isinstance(talk, list) or len(talk) != 2:
        return []
    if not all(isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0 for ms in talk):
        return []
    agent_ms, caller_ms = talk
    total = agent_ms + caller_ms
    agent_pct = round(100 * agent_ms / total) if total else 0
    caller_pct = (100 - agent_pct) if total else 0
    agent_bar = 100 * agent_ms / total if total else 0.0
    return [
        TalkShare("Agent", "talk-agent", agent_ms, clock(agent_ms), agent_pct, 0.0, round(agent_bar, 2)),
        TalkShare(
            "Caller",
            "talk-caller",
            caller_ms,
            clock(caller_ms),
            caller_pct,
            round(agent_bar, 2),
            round(100 - agent_bar, 2) if total else 0.0,
        ),
    ]


def _segments(segments: list[TranscriptSegment]) -> list[SegmentView]:
    # The agent and the caller keep the colours of the talk-time bar (blue, orange) whoever speaks first;
    # other speakers take the remaining colours in order of appearance.
    speakers: dict[str, int] = {"agent": 0, "caller": 1}
    views = []
    for index, segment in enumerate(segments):
        speaker = segment.speaker.strip()
        slot = speakers.setdefault(speaker.lower(), len(speakers) % SPEAKER_CLASSES)
        end = segment.end_ms
        if end is None and segment.start_ms is not None:
            end = next((s.start_ms for s in segments[index + 1 :] if s.start_ms is not None), None)
        views.append(
            SegmentView(
                position=segment.position,
                speaker=speaker,
                speaker_class=f"speaker-{slot}",
                text=segment.text,
                start_ms=segment.start_ms,
                end_ms=end,
                start_clock=clock(segment.start_ms) if segment.start_ms is not None else "",
            )
        )
    return views


def event_summary(data: Any) -> list[tuple[str, str]]:
    """The few facts of an event's data worth a line in the timeline (reason, digits, ...)."""
    if not isinstance(data, dict):
        return [("data", _short(data))] if data not in (None, "", [], {}) else []
    keys = [key for key in EVENT_DATA_KEYS if key in data]
    keys += [key for key in data if key not in EVENT_DATA_KEYS and isinstance(data[key], str | int | float)]
    items = []
    for key in keys[:EVENT_SUMMARY_MAX_ITEMS]:
        value = data[key]
        if value in (None, "", [], {}):
            continue
        items.append((str(key)[:40], _short(value)))
    problems = data.get("problems")
    if isinstance(problems, list) and problems:
        items.append(("problems", str(len(problems))))
    return items


def _short(value: Any) -> str:
    text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return text if len(text) <= EVENT_VALUE_MAX_CHARS else text[: EVENT_VALUE_MAX_CHARS - 1] + "…"


def _adoption_problems(session: CallSession) -> list[str]:
    metadata = session.metadata if isinstance(session.metadata, dict) else {}
    adoption = metadata.get("adoption")
    problems = adoption.get("problems") if isinstance(adoption, dict) else None
    return [str(p)[:300] for p in problems] if isinstance(problems, list) else []


def _recording_state(session: CallSession, recording: Recording | None) -> str:
    if recording is None:
        absent = session.recording_status == CallSession.RecordingStatus.ABSENT
        return RecordingState.NOT_RECORDED if absent else RecordingState.MISSING
    states_by_status: dict[str, str] = {
        Recording.Status.PENDING: RecordingState.PENDING,
        Recording.Status.PROCESSING: RecordingState.PROCESSING,
        Recording.Status.FAILED: RecordingState.FAILED,
        Recording.Status.DELETED: RecordingState.DELETED,
        Recording.Status.AVAILABLE: RecordingState.AVAILABLE,
    }
    return states_by_status.get(recording.status, RecordingState.PROCESSING)


def _storage_fails(recording: Recording) -> bool:
    """Whether the local recordings storage fails to reach the recording's file (a dead or stale mount). S3 is not
    asked: that would be a round trip on every page view, and there the player reports a failed load itself."""
    storage = recordings_storage()
    if not isinstance(storage, FileSystemStorage):
        return False
    try:
        os.stat(storage.path(recording.file))
    except FileNotFoundError:
        return False  # the file is gone, not the storage: the audio route says so
    except OSError:
        logger.warning("recordings storage unavailable reading %s", recording.file, exc_info=True)
        return True
    return False


def detail_view(*, session: CallSession, user: User) -> DetailView:
    """Everything the detail template shows, from a session read with ``details=True``."""
    recording = recording_of(session)
    transcript = transcript_of(session)
    segments = list(transcript.segments.all()) if transcript is not None else []
    events = list(session.events.all())
    notes = [
        NoteView(
            note=note,
            author_name=display_name(note.author),
            can_edit=note.author_id == user.pk,
            edited=(note.updated_at - note.created_at) > timedelta(seconds=1),
        )
        for note in session.notes.all()
    ]
    recording_state = _recording_state(session, recording)
    transcript_state = _transcript_state(recording=recording, transcript=transcript, segments=segments, events=events)
    segment_views = _segments(segments)
    available = recording is not None and recording_state == RecordingState.AVAILABLE
    in_progress = recording_state in (RecordingState.PENDING, RecordingState.PROCESSING) or (
        transcript_state in (TranscriptState.WAITING, TranscriptState.PRODUCING)
    )
    # One query each, only when set: the access helper's joins stop at the session's own columns for them.
    campaign = session.campaign if session.campaign_id is not None else None
    contact = session.contact if session.contact_id is not None else None
    contact_name = (f"{contact.name} ({contact.phone})" if contact.phone else contact.name) if contact else ""
    return DetailView(
        session=session,
        owner_name=display_name(session.owner),
        campaign_name=campaign.name if campaign is not None else "",
        contact_name=contact_name,
        recording=recording,
        recording_state=recording_state,
        transcript=transcript,
        transcript_state=transcript_state,
        segments=segment_views,
        timed_segments=sum(1 for s in segment_views if s.start_ms is not None),
        events=[EventView(event=event, summary=event_summary(event.data)) for event in events],
        notes=notes,
        waveform=waveform_for(recording) if available and recording is not None else None,
        talk=talk_shares(recording) if available and recording is not None else [],
        duration_clock=clock(session.duration_ms),
        recording_clock=clock(recording.duration_ms) if recording is not None else "—",
        adoption_problems=_adoption_problems(session),
        in_progress=in_progress,
        progress_token=progress_token(
            recording_status=recording.status if recording is not None else None, has_transcript=transcript is not None
        ),
        storage_unavailable=available and recording is not None and _storage_fails(recording),
    )


def status_tone(status: str) -> str:
    """The badge class of a session status."""
    if status == states.Status.COMPLETED:
        return "badge-ok"
    if status in (states.Status.FAILED, states.Status.ABANDONED):
        return "badge-bad"
    if status in states.TERMINAL:
        return "badge-warn"
    return "badge-role"


# --- An id with no session: is a recording waiting in storage? -----------------------------------------------


@dataclass(frozen=True)
class OrphanRecording:
    """A folder ``sessions/<id>/`` with audio and no session row, as the viewer may act on it."""

    # The viewer may adopt it (the "Adopt recording" button): what orphan_adopt would accept from them.
    can_adopt: bool
    # meta.json names the viewer as its owner: viewing the page adopts it, nothing is left to decide.
    assigned_to_viewer: bool
    # Who to ask: the manager of the team meta.json points to (or, when it names no one, the viewer's own).
    manager_name: str
    team_name: str


@dataclass(frozen=True)
class MissingSession:
    well_formed: bool
    orphan: OrphanRecording | None = None
    storage_unavailable: bool = False


def session_row_exists(session_id: uuid.UUID) -> bool:
    """Whether any row has this id (archived, or someone else's): then the storage is none of the page's business."""
    return CallSession.objects.filter(pk=session_id).exists()


def missing_session_lookup(*, user: User, session_id: str) -> MissingSession:
    """Why ``session_id`` shows ``user`` no session, and whether a recording for it waits in storage.

    A malformed id never reaches the storage (``parse_session_id`` first); nor does an id that has a row the
    user may not see, which gets the plain answer, as a missing one does. The storage failing is reported, not
    raised: the page still answers its 404.
    """
    parsed = parse_session_id(session_id)
    if parsed is None:
        return MissingSession(well_formed=False)
    if session_row_exists(parsed):
        return MissingSession(well_formed=True)
    try:
        folder = inspect_session_folder(session_id=parsed)
    except Exception:  # storage backends raise their own errors (OSError, botocore, ...): all mean "not now"
        logger.warning("recordings storage unavailable while looking for an orphan %s", parsed, exc_info=True)
        return MissingSession(well_formed=True, storage_unavailable=True)
    if folder is None or folder.audio is None:
        return MissingSession(well_formed=True)
    ownership = read_ownership(folder=folder)
    owner = ownership.owner
    assigned_to_viewer = owner is not None and owner.pk == user.pk
    if user.is_admin or assigned_to_viewer:
        can_adopt = True
    elif user.is_manager:
        # orphan_adopt makes the manager the owner of an orphan that names nobody; one that names an owner
        # stays theirs, which a manager may create only for a team they manage.
        can_adopt = owner is None or (ownership.team is not None and ownership.team.manager_id == user.pk)
    else:
        can_adopt = False
    team: Team | None = ownership.team if ownership.team is not None else (user.team if owner is None else None)
    manager = (
        User.objects.filter(pk=team.manager_id, is_active=True).first()
        if team is not None and team.manager_id
        else None
    )
    return MissingSession(
        well_formed=True,
        orphan=OrphanRecording(
            can_adopt=can_adopt,
            assigned_to_viewer=assigned_to_viewer,
            manager_name=display_name(manager),
            team_name=team.name if team is not None else "",
        ),
    )
