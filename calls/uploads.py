"""Uploads of recordings and transcripts through the API.

Content is sniffed, never trusted from a file name or a Content-Type: what is not audio is refused with 415 and
stored nowhere. Bodies are streamed to a temporary file with a size cap, never read whole into memory. The file
is saved to storage before the database is touched (storage I/O stays out of transactions); if the database
write then fails, the file is an orphan the sweep attaches later, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from typing import IO

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from calls.ingest import StorageUnavailable, sniff_format, transcript_save
from calls.models import CallEvent, CallSession, Recording, Transcript
from calls.storage import recordings_storage, session_key
from calls.transcripts import ParsedTranscript, TranscriptError, parse_transcript

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024


class UploadRejected(Exception):
    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class RecordingUploadResult:
    recording: Recording
    created: bool


def _too_large(limit: int) -> UploadRejected:
    return UploadRejected(
        f"The upload is larger than the limit of {filesizeformat(limit)}.", status=413, code="too_large"
    )


def recording_upload(*, session: CallSession, body: IO[bytes], declared_length: int | None) -> RecordingUploadResult:
    """Store an audio file as the session's recording and queue its ingest."""
    limit = settings.RECORDING_MAX_UPLOAD_BYTES
    if declared_length is not None and declared_length > limit:
        raise _too_large(limit)
    with tempfile.TemporaryFile(prefix="callbook-upload-") as spool:
        digest, size, head = hashlib.sha256(), 0, b""
        while chunk := body.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            if len(head) < 64:
                head = (head + chunk)[:64]
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise UploadRejected("The upload is empty.", status=400, code="empty")
        sniffed = sniff_format(head)
        if sniffed is None:
            raise UploadRejected(
                "This is not an audio file Callbook accepts (wav, mp3, ogg, opus, flac, webm, m4a); "
                "nothing was stored.",
                status=415,
                code="unsupported_media_type",
            )
        sha256 = digest.hexdigest()
        existing = Recording.objects.filter(session=session).first()
        retry_states = (Recording.Status.PENDING, Recording.Status.PROCESSING, Recording.Status.AVAILABLE)
        if existing is not None and existing.sha256 == sha256 and existing.status in retry_states:
            # A client's retry of the same bytes, whether or not the first one was ingested yet. (A failed
            # recording is stored again: its file may have vanished, and this brings it back.)
            return RecordingUploadResult(recording=existing, created=False)
        if existing is not None and existing.status == Recording.Status.PROCESSING:
            raise UploadRejected(
                "This session's recording is being processed right now; try again in a minute.",
                status=409,
                code="recording_processing",
            )
        if existing is not None and existing.status == Recording.Status.AVAILABLE:
            raise UploadRejected(
                "This session already has a different recording; recordings are never overwritten.",
                status=409,
                code="recording_exists",
            )
        spool.seek(0)
        key = _save(session_key(session.pk, f"recording.{sniffed[0]}"), File(spool))
    with transaction.atomic():
        recording, created = Recording.objects.update_or_create(
            session=session,
            defaults={
                "file": key,
                "status": Recording.Status.PENDING,
                "failure_reason": "",
                "attempts": 0,
                "content_type": sniffed[1],
                "format": sniffed[0],
                "size_bytes": size,
                "sha256": sha256,
            },
        )
        CallSession.objects.filter(pk=session.pk).update(
            recording_status=CallSession.RecordingStatus.PENDING, updated_at=timezone.now()
        )
        CallEvent.objects.create(
            session=session,
            type="recording_uploaded",
            occurred_at=timezone.now(),
            data={"file": key, "size_bytes": size, "sha256": sha256},
        )
        transaction.on_commit(lambda: _queue(session))
    return RecordingUploadResult(recording=recording, created=created or existing is not None)


def _save(name: str, content: File[bytes]) -> str:
    """Save to the recordings storage; a storage that does not answer is the server's problem (503), not the
    client's, and nothing is recorded in the database."""
    try:
        return recordings_storage().save(name, content)
    except (OSError, BotoCoreError, ClientError) as exc:
        logger.warning("recordings storage unavailable saving %s: %s", name, exc)
        raise StorageUnavailable(str(exc)) from exc


def _queue(session: CallSession) -> None:
    from calls.tasks import ingest_enqueue  # noqa: PLC0415  # tasks import the ingest this module feeds

    ingest_enqueue(session_id=session.pk)


TRANSCRIPT_TYPES = {
    "text/vtt": "vtt",
    "application/x-subrip": "srt",
    "text/srt": "srt",
    "application/json": "json",
    "text/plain": "txt",
}


def transcript_upload(*, session: CallSession, body: IO[bytes], extension: str | None) -> Transcript:
    """Parse and store a transcript file as the session's transcript (replacing a provided or ASR one)."""
    limit = settings.TRANSCRIPT_MAX_UPLOAD_BYTES
    raw = body.read(limit + 1)
    if len(raw) > limit:
        raise _too_large(limit)
    if not raw.strip():
        raise UploadRejected("The transcript is empty.", status=400, code="empty")
    ext = extension if extension in {"txt", "json", "vtt", "srt"} else "txt"
    try:
        parsed: ParsedTranscript = parse_transcript(raw=raw, filename=f"transcript.{ext}")
    except TranscriptError as exc:
        raise UploadRejected(f"The transcript could not be read: {exc}", status=400, code="invalid_transcript") from exc
    key = _save(session_key(session.pk, f"transcript.{parsed.format}"), ContentFile(raw))
    transcript = transcript_save(
        session_id=session.pk,
        parsed=parsed,
        source=Transcript.Source.PROVIDED,
        file=key,
        checksum=hashlib.sha256(raw).hexdigest(),
    )
    CallEvent.objects.create(
        session=session,
        type="transcript_uploaded",
        occurred_at=timezone.now(),
        data={"file": key, "segments": len(parsed.segments), "encoding": parsed.encoding},
    )
    return transcript
