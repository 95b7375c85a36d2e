"""Ingest: turn the files of a session folder into a complete record (recording properties, hash, status).

``session_ingest`` claims the session's recording with a conditional UPDATE, so two workers given the same id
(a redelivered task, a retry racing the sweep) do the work once. Storage I/O happens outside transactions.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from calls.models import CallSession, Recording
from calls.storage import recordings_storage

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# A claim older than this belongs to a worker that died; its task comes back (acks_late) and may take over.
CLAIM_LEASE = timedelta(minutes=15)


class StorageUnavailable(Exception):
    """The storage did not answer: transient, retried."""


class IngestFailed(Exception):
    """Something about the file itself: permanent, recorded as the recording's failure reason."""


@dataclass
class FileFacts:
    size: int
    sha256: str
    format: str
    content_type: str


# Magic numbers of the containers the folder contract accepts.
_SIGNATURES: list[tuple[int, bytes, str, str]] = [
    (0, b"RIFF", "wav", "audio/wav"),
    (0, b"fLaC", "flac", "audio/flac"),
    (0, b"OggS", "ogg", "audio/ogg"),
    (0, b"ID3", "mp3", "audio/mpeg"),
    (0, b"\x1a\x45\xdf\xa3", "webm", "audio/webm"),
    (4, b"ftyp", "m4a", "audio/mp4"),
]


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


def file_facts(*, key: str) -> FileFacts:
    """Size, streamed SHA-256 and sniffed container of a stored file."""
    storage = recordings_storage()
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with storage.open(key, "rb") as handle:
            while chunk := handle.read(CHUNK):
                if size < 64:
                    head = (head + chunk)[:64]
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise IngestFailed(f"The file {key} is no longer in storage.") from None
    except OSError as exc:
        raise StorageUnavailable(f"Could not read {key}: {exc}") from exc
    if size == 0:
        raise IngestFailed("The recording is empty (0 bytes).")
    sniffed = sniff_format(head)
    if sniffed is None:
        raise IngestFailed("The file is not a recognised audio format (wav, mp3, ogg, opus, flac, webm, m4a).")
    return FileFacts(size=size, sha256=digest.hexdigest(), format=sniffed[0], content_type=sniffed[1])


def _claim(*, session_id: uuid.UUID) -> Recording | None:
    stale = timezone.now() - CLAIM_LEASE
    claimable = Q(status=Recording.Status.PENDING) | Q(status=Recording.Status.PROCESSING, updated_at__lt=stale)
    claimed = Recording.objects.filter(claimable, session_id=session_id).update(
        status=Recording.Status.PROCESSING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if claimed != 1:
        return None
    return Recording.objects.get(session_id=session_id)


def session_ingest(*, session_id: uuid.UUID) -> str:
    """Ingest one session's recording; answers the recording's status afterwards ("" when it has none)."""
    recording = _claim(session_id=session_id)
    if recording is None:
        current = Recording.objects.filter(session_id=session_id).values_list("status", flat=True).first()
        return current or ""
    try:
        facts = file_facts(key=recording.file)
    except IngestFailed as exc:
        _finish(recording=recording, status=Recording.Status.FAILED, reason=str(exc))
        logger.warning("ingest of %s failed: %s", session_id, exc)
        return Recording.Status.FAILED
    except Exception:
        # Transient or unknown: hand the claim back so the retry (or the periodic sweep) can take it.
        Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.PENDING, updated_at=timezone.now())
        raise
    recording.size_bytes = facts.size
    recording.sha256 = facts.sha256
    recording.format = facts.format
    recording.content_type = facts.content_type
    _finish(recording=recording, status=Recording.Status.AVAILABLE, reason="")
    return Recording.Status.AVAILABLE


def _finish(*, recording: Recording, status: str, reason: str) -> None:
    recording.status = status
    recording.failure_reason = reason
    recording.ingested_at = timezone.now()
    session_status = (
        CallSession.RecordingStatus.AVAILABLE
        if status == Recording.Status.AVAILABLE
        else CallSession.RecordingStatus.FAILED
    )
    with transaction.atomic():
        recording.save()
        CallSession.objects.filter(pk=recording.session_id).update(
            recording_status=session_status, updated_at=timezone.now()
        )
