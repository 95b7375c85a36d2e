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

import contextlib
import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Field, Q
from django.utils import timezone

from calls import asr, sql
from calls.audio import AudioError, AudioInfo, WavScanner, probe_audio
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


def _hash_stream(
    read: Iterator[bytes], sink: object | None = None, scanner: WavScanner | None = None
) -> tuple[int, str, bytes]:
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
        if scanner is not None:
            scanner.feed(chunk)
    return size, digest.hexdigest(), head


def _chunks(handle: object) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):  # type: ignore[attr-defined]
        yield chunk


@contextmanager
def local_recording(key: str, *, scanner: WavScanner | None = None) -> Iterator[tuple[Path, FileFacts]]:
    """A local path to the stored file and its facts, hashed in the same single read; ``scanner`` is fed the
    same chunks (a PCM WAV is then described without reading it again).

    Local storage is read in place; any other (S3) is streamed once into a temporary file that is deleted after.
    """
    storage = recordings_storage()
    try:
        if isinstance(storage, FileSystemStorage):
            path = Path(storage.path(key))
            with path.open("rb") as handle:
                size, sha256, head = _hash_stream(_chunks(handle), scanner=scanner)
            yield path, _facts(size, sha256, head)
            return
        with tempfile.TemporaryDirectory(prefix="callbook-ingest-") as folder:
            path = Path(folder) / Path(key).name
            with storage.open(key, "rb") as source, path.open("wb") as sink:
                size, sha256, head = _hash_stream(_chunks(source), sink, scanner)
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
    """Ingest one session's recording and transcript; answers the recording's status ("" when it has none).

    Files are read, decoded and parsed first, outside any transaction; what they yield (the recording's facts, the
    session's recording status and duration, the transcript and its segments) is then written in one transaction,
    so an ingest costs two commits: its claim, and its results.
    """
    recording = _claim(session_id=session_id)
    available: _Decoded | None = None
    started = time.monotonic()
    if recording is None:
        status = Recording.objects.filter(session_id=session_id).values_list("status", flat=True).first() or ""
    else:
        status, available = _process_recording(recording=recording, started=started)
    try:
        transcript = _read_provided_transcript(session_id=session_id)
    except StorageUnavailable:
        if available is not None:  # the recording's work is kept; the retry reads the transcript again
            _write_results(available=available, transcript=None, started=started)
        raise
    _write_results(available=available, transcript=transcript, started=started)
    if status == Recording.Status.AVAILABLE and not transcript.present:
        _transcribe(session_id=session_id, unless_transcribed=transcript.present is None)
    return status


@dataclass
class _Decoded:
    """A claimed recording that hashed and decoded: what ``_finish_available`` writes."""

    recording: Recording
    facts: FileFacts
    info: AudioInfo


def _write_results(*, available: _Decoded | None, transcript: _ProvidedTranscript | None, started: float) -> None:
    try:
        with transaction.atomic():
            if available is not None:
                _finish_available(recording=available.recording, facts=available.facts, info=available.info)
            if transcript is not None and transcript.problem:
                _note_transcript_problem(transcript.session_id, transcript.key, transcript.problem)
            if transcript is not None and transcript.parsed is not None:
                _transcript_write(
                    session_id=transcript.session_id,
                    parsed=transcript.parsed,
                    source=Transcript.Source.PROVIDED,
                    file=transcript.key,
                    checksum=transcript.checksum,
                )
    except Exception:
        if available is not None:
            # Give the claim back (if the database lets us) so that the task's retry takes it again at once.
            with contextlib.suppress(DatabaseError):
                Recording.objects.filter(pk=available.recording.pk, status=Recording.Status.PROCESSING).update(
                    status=Recording.Status.PENDING, updated_at=timezone.now()
                )
        raise
    if available is not None:
        metrics.INGESTS.labels("ok").inc()
        metrics.INGEST_SECONDS.observe(time.monotonic() - started)


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
    """Take the session's recording (pending, or claimed by a worker whose lease ran out) with one conditional
    UPDATE; None when there is none to take. The UPDATE returns the row where the database can (PostgreSQL,
    SQLite >= 3.35): one statement instead of an UPDATE and a SELECT."""
    now = timezone.now()
    stale = now - claim_lease()
    if connection.features.can_return_columns_from_insert:
        status, updated_at = _field("status"), _field("updated_at")
        with connection.cursor() as cursor:
            cursor.execute(
                _claim_sql(),
                [
                    status.get_db_prep_value(Recording.Status.PROCESSING, connection),
                    updated_at.get_db_prep_value(now, connection),
                    _field("session_id").get_db_prep_value(session_id, connection),
                    status.get_db_prep_value(Recording.Status.PENDING, connection),
                    status.get_db_prep_value(Recording.Status.PROCESSING, connection),
                    updated_at.get_db_prep_value(stale, connection),
                ],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        pk, file, attempts = row
        loaded = {
            "id": pk,
            "session_id": session_id,
            "file": file,
            "attempts": attempts,
            "status": Recording.Status.PROCESSING,
            "updated_at": now,
        }
        # from_db takes the values in the model's field order; the fields not given are deferred (loaded if read).
        names = [f.attname for f in Recording._meta.concrete_fields if f.attname in loaded]
        return Recording.from_db(connection.alias, names, [loaded[name] for name in names])
    claimable = Q(status=Recording.Status.PENDING) | Q(status=Recording.Status.PROCESSING, updated_at__lt=stale)
    claimed = Recording.objects.filter(claimable, session_id=session_id).update(
        status=Recording.Status.PROCESSING, attempts=F("attempts") + 1, updated_at=now
    )
    return Recording.objects.get(session_id=session_id) if claimed == 1 else None


_CLAIM_COLUMNS = ("status", "updated_at", "session_id", "attempts", "id", "file")


@cache
def _claim_sql() -> str:
    """``_claim``'s UPDATE ... RETURNING, written from the model's own table and column names."""
    quote = connection.ops.quote_name
    table = quote(Recording._meta.db_table)
    status, updated_at, session_id, attempts, pk, file = (quote(str(_field(name).column)) for name in _CLAIM_COLUMNS)
    return (
        f"UPDATE {table} SET {status} = %s, {attempts} = {attempts} + 1, {updated_at} = %s "  # noqa: S608  # model names
        f"WHERE {session_id} = %s AND ({status} = %s OR ({status} = %s AND {updated_at} < %s)) "
        f"RETURNING {pk}, {file}, {attempts}"
    )


def _field(name: str) -> Field[Any, Any]:
    return sql.concrete_field(Recording, name)


def _process_recording(*, recording: Recording, started: float) -> tuple[str, _Decoded | None]:
    """Hash and decode the claimed recording, outside any transaction. A problem with the file itself is recorded
    at once; a sound file's results are returned, for ``_write_results`` to write with the transcript."""
    scanner = WavScanner()
    try:
        with local_recording(recording.file, scanner=scanner) as (path, facts):
            info = _describe_audio(path, scanner)
    except (IngestFailed, AudioError) as exc:
        _finish_failed(recording=recording, reason=str(exc))
        logger.warning("ingest of %s failed: %s", recording.session_id, exc)
        # Counted once its transaction has committed; a transient error (retried) is neither ok nor failed.
        metrics.INGESTS.labels("failed").inc()
        metrics.INGEST_SECONDS.observe(time.monotonic() - started)
        return Recording.Status.FAILED, None
    except Exception:
        # Transient or unexpected: give the claim back so the retry (or the periodic retry job) can take it.
        Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.PENDING, updated_at=timezone.now())
        raise
    return Recording.Status.AVAILABLE, _Decoded(recording=recording, facts=facts, info=info)


def _describe_audio(path: Path, scanner: WavScanner) -> AudioInfo:
    """The audio's facts: from the scan made while hashing (a PCM WAV), else by decoding the file."""
    return scanner.result() if scanner.accepted else probe_audio(path)


def _finish_available(*, recording: Recording, facts: FileFacts, info: AudioInfo) -> None:
    """Write a decoded recording's facts and the session's recording status; inside ``_write_results``'s
    transaction. Two UPDATEs whose SQL is written once (``sql.update_sql``): building them through the ORM cost more
    than running them."""
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
    recording.updated_at = now
    session_fields = _session_fields()
    with connection.cursor() as cursor:
        cursor.execute(
            sql.update_sql(Recording, _AVAILABLE_FIELDS, vendor=connection.vendor),
            [
                *(_field(name).get_db_prep_save(getattr(recording, name), connection) for name in _AVAILABLE_FIELDS),
                recording.pk,
            ],
        )
        # The session's own duration (from its events) wins over the recording's: COALESCE(duration_ms, %s).
        cursor.execute(
            sql.update_sql(
                CallSession,
                ("recording_status", "duration_ms", "updated_at"),
                keep_first="duration_ms",
                vendor=connection.vendor,
            ),
            [
                session_fields["recording_status"].get_db_prep_save(CallSession.RecordingStatus.AVAILABLE, connection),
                session_fields["duration_ms"].get_db_prep_save(info.duration_ms, connection),
                session_fields["updated_at"].get_db_prep_save(now, connection),
                session_fields["id"].get_db_prep_value(recording.session_id, connection),
            ],
        )


@cache
def _session_fields() -> dict[str, Field[Any, Any]]:
    return {field.name: field for field in CallSession._meta.concrete_fields}


_AVAILABLE_FIELDS = (
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
)


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


@dataclass
class _ProvidedTranscript:
    """What the session folder's transcript file means for the session, read and parsed but not yet written."""

    session_id: uuid.UUID
    # Whether the session has a transcript (or will, once ``parsed`` is written); None: there is no file to read,
    # and only speech-to-text needs to know, which then asks the database itself.
    present: bool | None
    key: str = ""
    parsed: ParsedTranscript | None = None  # to write, with ``checksum``
    checksum: str = ""
    problem: str = ""  # why the file was not used, for a timeline event


def _read_provided_transcript(*, session_id: uuid.UUID) -> _ProvidedTranscript:
    """Read and parse the folder's transcript file, if any, outside any transaction."""
    folder = inspect_session_folder(session_id=session_id, read_meta=False)
    if folder is None or folder.transcript is None:
        return _ProvidedTranscript(session_id=session_id, present=None)
    key = folder.transcript
    # The session's current transcript, if any, in one query: its file and checksum.
    with connection.cursor() as cursor:
        cursor.execute(
            sql.select_sql(Transcript, ("file", "checksum"), "session", vendor=connection.vendor),
            [_transcript_fields()["session"].get_db_prep_value(session_id, connection)],
        )
        current_file, current_checksum = cursor.fetchone() or ("", "")
    if current_file and current_file.rsplit("/", 1)[-1] in folder.files:
        # An uploaded transcript is the session's transcript even when older files share the folder.
        key = current_file
    storage = recordings_storage()
    try:
        if storage.size(key) > MAX_TRANSCRIPT_BYTES:
            problem = f"larger than {MAX_TRANSCRIPT_BYTES // 1024 // 1024} MiB"
            return _ProvidedTranscript(session_id=session_id, present=False, key=key, problem=problem)
        with storage.open(key, "rb") as handle:
            raw = handle.read(MAX_TRANSCRIPT_BYTES + 1)
    except FileNotFoundError:
        return _ProvidedTranscript(session_id=session_id, present=False, key=key)
    except (OSError, BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"Could not read {key}: {exc}") from exc
    checksum = hashlib.sha256(raw).hexdigest()
    if checksum == current_checksum:  # already parsed (the session has one transcript row at most)
        return _ProvidedTranscript(session_id=session_id, present=True, key=key)
    try:
        parsed = parse_transcript(raw=raw, filename=key)
    except TranscriptError as exc:
        return _ProvidedTranscript(session_id=session_id, present=False, key=key, problem=str(exc))
    return _ProvidedTranscript(session_id=session_id, present=True, key=key, parsed=parsed, checksum=checksum)


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
    """Replace the session's transcript and its segments in one transaction, search index included."""
    with transaction.atomic():
        return _transcript_write(session_id=session_id, parsed=parsed, source=source, file=file, checksum=checksum)


_TRANSCRIPT_COLUMNS = (
    "session",
    "file",
    "text",
    "language",
    "source",
    "encoding",
    "had_replacements",
    "checksum",
    "created_at",
    "updated_at",
)
_SEGMENT_COLUMNS = ("transcript", "position", "speaker", "start_ms", "end_ms", "text")


def _transcript_write(
    *, session_id: uuid.UUID, parsed: ParsedTranscript, source: str, file: str, checksum: str
) -> Transcript:
    """``transcript_save``'s writes, inside the caller's transaction: three statements, written once (``calls.sql``).

    The transcript row is written with INSERT ... ON CONFLICT (session) DO UPDATE: the session's one transcript is
    created or replaced in one statement, and a concurrent writer of the same session's transcript waits on that
    row until this transaction ends (SQLite: transactions are IMMEDIATE, one writer at a time), so its segments
    never mix with these. On PostgreSQL the search vector is computed in the same statement. The segments go in
    with one ``executemany``.
    """
    now = timezone.now()
    transcript = Transcript(
        session_id=session_id,
        text=parsed.text,
        language=parsed.language,
        source=source,
        encoding=parsed.encoding,
        had_replacements=parsed.had_replacements,
        file=file,
        checksum=checksum,
        created_at=now,
        updated_at=now,
    )
    fields = _transcript_fields()
    params = [
        fields[name].get_db_prep_save(getattr(transcript, fields[name].attname), connection)
        for name in _TRANSCRIPT_COLUMNS
    ]
    search = connection.vendor == "postgresql"
    if search:
        params += [settings.SEARCH_CONFIG, parsed.text]
    returning = connection.features.can_return_columns_from_insert  # SQLite >= 3.35, PostgreSQL
    upsert = sql.upsert_sql(
        Transcript,
        _TRANSCRIPT_COLUMNS,
        conflict="session",
        keep=("created_at",),
        search_vector="search_vector" if search else "",
        returning=returning,
        vendor=connection.vendor,
    )
    with connection.cursor() as cursor:
        cursor.execute(upsert, params)
        if returning:
            transcript.pk = cursor.fetchone()[0]
        else:
            transcript.pk = Transcript.objects.filter(session_id=session_id).values_list("pk", flat=True).get()
        cursor.execute(sql.delete_sql(TranscriptSegment, "transcript", vendor=connection.vendor), [transcript.pk])
        if parsed.segments:
            # Integers and text only: the driver takes them as they are, no field needs to prepare them.
            cursor.executemany(
                sql.insert_sql(TranscriptSegment, _SEGMENT_COLUMNS, vendor=connection.vendor),
                [
                    (
                        transcript.pk,
                        i,
                        segment.speaker[:64],
                        segment.start_ms,
                        # The segment table refuses an end before its start; parsers already mend those, this guards.
                        (
                            max(segment.end_ms, segment.start_ms)
                            if segment.end_ms is not None and segment.start_ms is not None
                            else segment.end_ms
                        ),
                        segment.text,
                    )
                    for i, segment in enumerate(parsed.segments)
                ],
            )
    return transcript


@cache
def _transcript_fields() -> dict[str, Field[Any, Any]]:
    return {name: sql.concrete_field(Transcript, name) for name in _TRANSCRIPT_COLUMNS}


def _transcribe(*, session_id: uuid.UUID, unless_transcribed: bool = False) -> None:
    """Speech-to-text for a recording without a provided transcript; with ``unless_transcribed``, only when the
    session has no transcript text yet (uploaded, or transcribed by an earlier run)."""
    backend = asr.get_backend()
    if backend is None:
        return
    if unless_transcribed and Transcript.objects.filter(session_id=session_id).exclude(text="").exists():
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
