"""Ingest: turn the files of a session folder into a complete, searchable record.

``session_ingest`` is what the ``ingest_session`` task runs. It is safe to run twice and concurrently:
- the recording is claimed with a conditional UPDATE (pending → processing), so one worker does the work; a
  claim older than INGEST_CLAIM_LEASE_SECONDS belongs to a dead worker and may be taken over (its task is
  redelivered with acks_late, or re-queued by retry_failed_ingests);
- the transcript is written under a lock on the session row and skipped when its file's checksum is already
  the one parsed.
Storage I/O (hashing, decoding, parsing, speech-to-text) happens outside transactions. Permanent problems (a
corrupt, truncated or empty file) are recorded as the recording's failure reason and the ingest moves on;
transient ones (storage or database unavailable) raise for the task to retry with backoff.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.core.files.storage import FileSystemStorage
from django.db import connection, transaction
from django.db.models import BigIntegerField, BooleanField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from calls import asr
from calls.audio import AudioError, AudioInfo, probe_audio
from calls.models import CallEvent, CallSession, Recording, Transcript, TranscriptSegment
from calls.storage import inspect_session_folder, recordings_storage
from calls.transcripts import MAX_TRANSCRIPT_BYTES, ParsedTranscript, Segment, TranscriptError, parse_transcript
from crm import metrics

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024


class StorageUnavailable(Exception):
    """The storage did not answer: transient, retried."""


class IngestFailed(Exception):
    """Something about the file itself: permanent, recorded as the failure reason."""


@dataclass
class FileFacts:
    size: int
    sha256: str
    format: str
    content_type: str


# Magic numbers of the containers the folder contract accepts: content is sniffed, never trusted from a name.
_SIGNATURES: list[tuple[int, bytes, str, str]] = [
    (0, b"RIFF", "wav", "audio/wav"),
    (0, b"fLaC", "flac", "audio/flac"),
    (0, b"OggS", "ogg", "audio/ogg"),
    (0, b"ID3", "mp3", "audio/mpeg"),
    (0, b"\x1a\x45\xdf\xa3", "webm", "audio/webm"),
    (4, b"ftyp", "m4a", "audio/mp4"),
]
CONTENT_TYPES = {fmt: content_type for _, _, fmt, content_type in _SIGNATURES} | {"opus": "audio/ogg; codecs=opus"}


def sniff_format(head: bytes) -> tuple[str, str] | None:
    """The container of a file from its first bytes; None when it is not audio we accept."""
    for offset, magic, fmt, content_type in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            if fmt == "wav" and head[8:12] != b"WAVE":
                return None
            return fmt, content_type
    # MPEG audio frame sync without an ID3 tag.
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "mp3", "audio/mpeg"
    return None


def _hash_stream(read: Iterator[bytes], sink: object | None = None) -> tuple[int, str, bytes]:
    digest = hashlib.sha256()
    size = 0
    head = b""
    for chunk in read:
        if len(head) < 64:
            head = (head + chunk)[:64]
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)  # type: ignore[attr-defined]
    return size, digest.hexdigest(), head


def _chunks(handle: object) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):  # type: ignore[attr-defined]
        yield chunk


@contextmanager
def local_recording(key: str) -> Iterator[tuple[Path, FileFacts]]:
    """A local path to the stored file and its facts, hashed in the same single read.

    Local storage is read in place; any other (S3) is streamed once into a temporary file that is deleted after.
    """
    storage = recordings_storage()
    try:
        if isinstance(storage, FileSystemStorage):
            path = Path(storage.path(key))
            with path.open("rb") as handle:
                size, sha256, head = _hash_stream(_chunks(handle))
            yield path, _facts(size, sha256, head)
            return
        with tempfile.TemporaryDirectory(prefix="callbook-ingest-") as folder:
            path = Path(folder) / Path(key).name
            with storage.open(key, "rb") as source, path.open("wb") as sink:
                size, sha256, head = _hash_stream(_chunks(source), sink)
            yield path, _facts(size, sha256, head)
    except FileNotFoundError:
        raise IngestFailed(f"The file {key} is no longer in storage.") from None
    except (IngestFailed, StorageUnavailable):
        raise
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
            raise IngestFailed(f"The file {key} is no longer in storage.") from None
        raise StorageUnavailable(f"Could not read {key}: {exc}") from exc
    except (OSError, BotoCoreError) as exc:
        # botocore's connection errors (refused, DNS) are not OSErrors; all of them mean "try again later".
        raise StorageUnavailable(f"Could not read {key}: {exc}") from exc


def _facts(size: int, sha256: str, head: bytes) -> FileFacts:
    if size == 0:
        raise IngestFailed("The recording is empty (0 bytes).")
    sniffed = sniff_format(head)
    if sniffed is None:
        raise IngestFailed("The file is not a recognised audio format (wav, mp3, ogg, opus, flac, webm, m4a).")
    return FileFacts(size=size, sha256=sha256, format=sniffed[0], content_type=sniffed[1])


# --- The task's entry point -------------------------------------------------------------------------------


def session_ingest(*, session_id: uuid.UUID) -> str:
    """Ingest one session's recording and transcript; answers the recording's status ("" when it has none)."""
    status = _ingest_recording(session_id=session_id)
    has_transcript = _ingest_provided_transcript(session_id=session_id)
    if not has_transcript and status == Recording.Status.AVAILABLE:
        _transcribe(session_id=session_id)
    return status


# --- Recording --------------------------------------------------------------------------------------------


def claim_lease() -> timedelta:
    return timedelta(seconds=settings.INGEST_CLAIM_LEASE_SECONDS)


def claim_expires_in(*, session_id: uuid.UUID) -> float | None:
    """Seconds until the claim on the session's recording may be taken over; None when it is not claimed."""
    claimed_at = (
        Recording.objects.filter(session_id=session_id, status=Recording.Status.PROCESSING)
        .values_list("updated_at", flat=True)
        .first()
    )
    if claimed_at is None:
        return None
    return max((claimed_at + claim_lease() - timezone.now()).total_seconds(), 0.0)


def _claim(*, session_id: uuid.UUID) -> Recording | None:
    stale = timezone.now() - claim_lease()
    claimable = Q(status=Recording.Status.PENDING) | Q(status=Recording.Status.PROCESSING, updated_at__lt=stale)
    claimed = Recording.objects.filter(claimable, session_id=session_id).update(
        status=Recording.Status.PROCESSING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    return Recording.objects.get(session_id=session_id) if claimed == 1 else None


def _ingest_recording(*, session_id: uuid.UUID) -> str:
    recording = _claim(session_id=session_id)
    if recording is None:
        current = Recording.objects.filter(session_id=session_id).values_list("status", flat=True).first()
        return current or ""
    started = time.monotonic()
    try:
        with local_recording(recording.file) as (path, facts):
            info = probe_audio(path)
    except (IngestFailed, AudioError) as exc:
        _finish_failed(recording=recording, reason=str(exc))
        logger.warning("ingest of %s failed: %s", session_id, exc)
        # Counted once its transaction has committed; a transient error (retried) is neither ok nor failed.
        metrics.INGESTS.labels("failed").inc()
        metrics.INGEST_SECONDS.observe(time.monotonic() - started)
        return Recording.Status.FAILED
    except Exception:
        # Transient or unexpected: give the claim back so the retry (or the periodic retry job) can take it.
        Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.PENDING, updated_at=timezone.now())
        raise
    _finish_available(recording=recording, facts=facts, info=info)
    metrics.INGESTS.labels("ok").inc()
    metrics.INGEST_SECONDS.observe(time.monotonic() - started)
    return Recording.Status.AVAILABLE


def _finish_available(*, recording: Recording, facts: FileFacts, info: AudioInfo) -> None:
    now = timezone.now()
    recording.size_bytes = facts.size
    recording.sha256 = facts.sha256
    recording.format = info.container or facts.format
    recording.content_type = CONTENT_TYPES.get(recording.format, facts.content_type)
    recording.codec = info.codec
    recording.duration_ms = info.duration_ms
    recording.channels = info.channels
    recording.sample_rate = info.sample_rate
    recording.waveform = info.waveform
    recording.talk_ms = info.talk_ms
    recording.status = Recording.Status.AVAILABLE
    recording.failure_reason = ""
    recording.ingested_at = now
    with transaction.atomic():
        recording.save(update_fields=_AVAILABLE_FIELDS)
        # One conditional UPDATE: the session's own duration (from its events) wins over the recording's.
        CallSession.objects.filter(pk=recording.session_id).update(
            recording_status=CallSession.RecordingStatus.AVAILABLE,
            duration_ms=Coalesce(F("duration_ms"), Value(info.duration_ms), output_field=BigIntegerField()),
            updated_at=now,
        )


_AVAILABLE_FIELDS = [
    "size_bytes",
    "sha256",
    "format",
    "content_type",
    "codec",
    "duration_ms",
    "channels",
    "sample_rate",
    "waveform",
    "talk_ms",
    "status",
    "failure_reason",
    "ingested_at",
    "updated_at",
]


def _finish_failed(*, recording: Recording, reason: str) -> None:
    recording.status = Recording.Status.FAILED
    recording.failure_reason = reason
    recording.ingested_at = timezone.now()
    with transaction.atomic():
        recording.save(update_fields=["status", "failure_reason", "ingested_at", "updated_at"])
        CallSession.objects.filter(pk=recording.session_id).update(
            recording_status=CallSession.RecordingStatus.FAILED, updated_at=timezone.now()
        )
        CallEvent.objects.create(
            session_id=recording.session_id,
            type="recording_failed",
            occurred_at=timezone.now(),
            data={"file": recording.file, "reason": reason, "attempt": recording.attempts},
        )


# --- Transcript -------------------------------------------------------------------------------------------


def _ingest_provided_transcript(*, session_id: uuid.UUID) -> bool:
    """Parse the folder's transcript file, if any; answers whether the session now has a transcript."""
    folder = inspect_session_folder(session_id=session_id)
    key = folder.transcript if folder else None
    # The session's current transcript, if any, in one query: its file, checksum and whether it has text.
    current_file, current_checksum, has_text = (
        Transcript.objects.filter(session_id=session_id)
        .values_list("file", "checksum", ExpressionWrapper(~Q(text=""), output_field=BooleanField()))
        .first()
    ) or ("", "", False)
    if folder and current_file and current_file.rsplit("/", 1)[-1] in folder.files:
        # An uploaded transcript is the session's transcript even when older files share the folder.
        key = current_file
    if key is None:
        return bool(has_text)
    storage = recordings_storage()
    try:
        if storage.size(key) > MAX_TRANSCRIPT_BYTES:
            _note_transcript_problem(session_id, key, f"larger than {MAX_TRANSCRIPT_BYTES // 1024 // 1024} MiB")
            return False
        with storage.open(key, "rb") as handle:
            raw = handle.read(MAX_TRANSCRIPT_BYTES + 1)
    except FileNotFoundError:
        return False
    except (OSError, BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"Could not read {key}: {exc}") from exc
    checksum = hashlib.sha256(raw).hexdigest()
    if checksum == current_checksum:  # already parsed (the session has one transcript row at most)
        return True
    try:
        parsed = parse_transcript(raw=raw, filename=key)
    except TranscriptError as exc:
        _note_transcript_problem(session_id, key, str(exc))
        return False
    transcript_save(
        session_id=session_id,
        parsed=parsed,
        source=Transcript.Source.PROVIDED,
        file=key,
        checksum=checksum,
    )
    return True


def _note_transcript_problem(session_id: uuid.UUID, key: str, reason: str) -> None:
    logger.warning("transcript %s of %s not used: %s", key, session_id, reason)
    CallEvent.objects.create(
        session_id=session_id,
        type="transcript_failed",
        occurred_at=timezone.now(),
        data={"file": key, "reason": reason},
    )


def transcript_save(
    *, session_id: uuid.UUID, parsed: ParsedTranscript, source: str, file: str = "", checksum: str = ""
) -> Transcript:
    """Replace the session's transcript and its segments in one transaction, then refresh the search index."""
    with transaction.atomic():
        CallSession.objects.select_for_update().filter(pk=session_id).exists()
        # Every writer of a session's transcript holds that lock (SQLite: transactions are IMMEDIATE), so the
        # row cannot appear between this look-up and the INSERT: no savepoint (get_or_create's) is needed.
        existing = Transcript.objects.filter(session_id=session_id).first()
        transcript = existing or Transcript(session_id=session_id)
        transcript.text = parsed.text
        transcript.language = parsed.language
        transcript.source = source
        transcript.encoding = parsed.encoding
        transcript.had_replacements = parsed.had_replacements
        transcript.file = file
        transcript.checksum = checksum
        transcript.save()
        if existing is not None:
            transcript.segments.all().delete()
        TranscriptSegment.objects.bulk_create(
            TranscriptSegment(
                transcript=transcript,
                position=i,
                speaker=segment.speaker[:64],
                start_ms=segment.start_ms,
                # The segment table refuses an end before its start; parsers already mend those, this guards.
                end_ms=(
                    max(segment.end_ms, segment.start_ms)
                    if segment.end_ms is not None and segment.start_ms is not None
                    else segment.end_ms
                ),
                text=segment.text,
            )
            for i, segment in enumerate(parsed.segments)
        )
        if connection.vendor == "postgresql":
            Transcript.objects.filter(pk=transcript.pk).update(
                search_vector=SearchVector("text", config=settings.SEARCH_CONFIG)
            )
    return transcript


def _transcribe(*, session_id: uuid.UUID) -> None:
    backend = asr.get_backend()
    if backend is None:
        return
    recording = Recording.objects.get(session_id=session_id)
    try:
        with local_recording(recording.file) as (path, _):
            result = backend.transcribe(path=str(path))
    except asr.AsrFailed as exc:
        _note_transcript_problem(session_id, recording.file, f"speech-to-text failed: {exc}")
        return
    except asr.AsrUnavailable as exc:
        raise StorageUnavailable(f"speech-to-text backend unavailable: {exc}") from exc
    segments = [Segment(speaker=s.speaker, start_ms=s.start_ms, end_ms=s.end_ms, text=s.text) for s in result.segments]
    text = "\n".join(f"{s.speaker}: {s.text}" if s.speaker else s.text for s in segments)
    parsed = ParsedTranscript(
        text=text, segments=segments, encoding="", had_replacements=False, language=result.language, format="asr"
    )
    transcript_save(session_id=session_id, parsed=parsed, source=Transcript.Source.ASR, checksum=recording.sha256)
    logger.info("transcribed %s with %s: %d segments", session_id, result.engine, len(segments))
