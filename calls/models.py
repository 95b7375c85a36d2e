"""Call sessions and everything that hangs off them: events, recording, transcript, notes, integrations.

A session's id is a UUID minted by Callbook and handed back to whoever reports the call, so the voice agent,
the media server and the CRM all use one id.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import F, Q

from calls.states import ACTIVE, TERMINAL_EVENT_TYPES, Status


class Source(models.Model):
    """An integration (voice-agent deployment, telephony provider, dialer) that reports calls.

    It authenticates as its own service user (role ``integration``) with that user's API tokens, and sees only
    the sessions whose ``source`` is its ``name``.
    """

    name = models.SlugField(max_length=64, unique=True, help_text="Written into each session's `source`.")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="integration")
    default_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Owner of sessions this integration reports without naming one.",
    )
    default_team = models.ForeignKey("crm.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # HMAC needs the secret itself, so it is stored as given; leave empty to accept unsigned bodies.
    signing_secret = models.CharField(max_length=128, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "integration"

    def __str__(self) -> str:
        return self.name


class CallSession(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    class Origin(models.TextChoices):
        API = "api", "Created through the API"
        DIRECT = "direct", "Reported by an integration's first event"
        CAMPAIGN = "campaign", "Dialed by a campaign run"
        ADOPTED = "adopted", "Adopted from an orphaned recording"

    class RecordingStatus(models.TextChoices):
        NONE = "none", "No recording yet"
        PENDING = "pending", "Being processed"
        AVAILABLE = "available", "Available"
        ABSENT = "absent", "Not recorded"
        FAILED = "failed", "Failed"

    Status = Status

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=64, default="manual", help_text="The integration that reported it.")
    external_id = models.CharField(
        max_length=255, blank=True, default="", help_text="The integration's own call id (e.g. SIP Call-ID)."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="call_sessions"
    )
    team = models.ForeignKey("crm.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="call_sessions")
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.PROTECT, null=True, blank=True, related_name="call_sessions"
    )
    contact = models.ForeignKey(
        "campaigns.Contact", on_delete=models.PROTECT, null=True, blank=True, related_name="call_sessions"
    )
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.INBOUND)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.API)
    auto_created = models.BooleanField(default=False)
    from_number = models.CharField(max_length=64, blank=True)
    to_number = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True, help_text="Talk time, answer to hang-up.")
    end_reason = models.CharField(max_length=255, blank=True)
    recording_status = models.CharField(max_length=16, choices=RecordingStatus.choices, default=RecordingStatus.NONE)
    metadata = models.JSONField(default=dict, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Idempotent create: one row per call of an integration, even when two requests race.
            models.UniqueConstraint(
                fields=["source", "external_id"], condition=~Q(external_id=""), name="session_unique_external_id"
            ),
            models.CheckConstraint(condition=Q(status__in=Status.values), name="session_status_valid"),
            models.CheckConstraint(condition=Q(direction__in=["inbound", "outbound"]), name="session_direction_valid"),
            models.CheckConstraint(
                condition=Q(origin__in=["api", "direct", "campaign", "adopted"]), name="session_origin_valid"
            ),
            models.CheckConstraint(
                condition=Q(recording_status__in=["none", "pending", "available", "absent", "failed"]),
                name="session_recording_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(started_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="session_ends_after_start",
            ),
            models.CheckConstraint(condition=~Q(source=""), name="session_source_not_empty"),
        ]
        indexes = [
            # An agent's call list: their sessions, newest first.
            models.Index(fields=["owner", "-created_at"], name="session_owner_recent_idx"),
            # A manager's call list: the team's sessions, newest first.
            models.Index(fields=["team", "-created_at"], name="session_team_recent_idx"),
            # An integration's sessions, and the external-id lookup's prefix.
            models.Index(fields=["source", "-created_at"], name="session_source_recent_idx"),
            # expire_stale_sessions: live sessions that went quiet.
            models.Index(
                fields=["last_event_at"], condition=Q(status__in=sorted(ACTIVE)), name="session_active_quiet_idx"
            ),
            models.Index(fields=["campaign", "-created_at"], name="session_campaign_recent_idx"),
            models.Index(fields=["started_at"], name="session_started_idx"),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class CallEvent(models.Model):
    """The session's append-only timeline. A repeated event is stored once (see the constraints)."""

    session = models.ForeignKey(CallSession, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255, blank=True, default="", help_text="The provider's id for it.")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(default=dict, blank=True)
    # What the event did to the status: empty when it was recorded without moving it (late, unknown type).
    status_before = models.CharField(max_length=16, blank=True)
    status_after = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "event_id"], condition=~Q(event_id=""), name="event_unique_provider_id"
            ),
            # A second BYE (or any terminal event of the same kind) is the same event again.
            models.UniqueConstraint(
                fields=["session", "type"],
                condition=Q(type__in=sorted(TERMINAL_EVENT_TYPES)),
                name="event_unique_terminal_type",
            ),
        ]
        indexes = [models.Index(fields=["session", "occurred_at"], name="event_session_timeline_idx")]

    def __str__(self) -> str:
        return f"{self.type} @ {self.occurred_at.isoformat()}"


class Recording(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending ingest"
        PROCESSING = "processing", "Being ingested"
        AVAILABLE = "available", "Available"
        FAILED = "failed", "Failed"
        # The file was removed by the retention policy; the row and its facts stay.
        DELETED = "deleted", "Deleted by retention"

    session = models.OneToOneField(CallSession, on_delete=models.CASCADE, related_name="recording")
    # The key in the recordings storage, always under sessions/<session id>/.
    file = models.CharField(max_length=512)
    format = models.CharField(max_length=16, blank=True, help_text="Container: wav, mp3, ogg, flac, ...")
    codec = models.CharField(max_length=32, blank=True)
    content_type = models.CharField(max_length=64, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Peak amplitude (0..1) per bucket, for drawing the waveform without touching the audio again.
    waveform = models.JSONField(default=list, blank=True)
    # Milliseconds of speech per channel; for dual-channel calls, each side's talk time.
    talk_ms = models.JSONField(default=list, blank=True)
    ingested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "processing", "available", "failed", "deleted"]),
                name="recording_status_valid",
            ),
        ]
        indexes = [
            # retry_failed_ingests and `ingest --pending`: the few recordings not yet available.
            models.Index(
                fields=["status", "updated_at"],
                condition=Q(status__in=["pending", "processing", "failed"]),
                name="recording_unfinished_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.file


class Transcript(models.Model):
    class Source(models.TextChoices):
        PROVIDED = "provided", "Provided with the call"
        ASR = "asr", "Speech-to-text"

    session = models.OneToOneField(CallSession, on_delete=models.CASCADE, related_name="transcript")
    file = models.CharField(max_length=512, blank=True, help_text="Key of the original file, when there is one.")
    text = models.TextField(blank=True)
    language = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.PROVIDED)
    encoding = models.CharField(max_length=32, blank=True, help_text="How the file was decoded.")
    had_replacements = models.BooleanField(default=False, help_text="Undecodable bytes were replaced.")
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the file it was parsed from.")
    # Filled on PostgreSQL only (full-text search, GIN index created by migration); unused on SQLite.
    search_vector = SearchVectorField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Transcript of {self.session_id}"


class TranscriptSegment(models.Model):
    transcript = models.ForeignKey(Transcript, on_delete=models.CASCADE, related_name="segments")
    position = models.PositiveIntegerField()
    speaker = models.CharField(max_length=64, blank=True)
    start_ms = models.PositiveBigIntegerField(null=True, blank=True)
    end_ms = models.PositiveBigIntegerField(null=True, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["transcript", "position"], name="segment_unique_position"),
            models.CheckConstraint(
                condition=Q(start_ms__isnull=True) | Q(end_ms__isnull=True) | Q(end_ms__gte=F("start_ms")),
                name="segment_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.speaker}: {self.text[:40]}"


class Note(models.Model):
    session = models.ForeignKey(CallSession, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="call_notes")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["session", "created_at"], name="note_session_idx")]

    def __str__(self) -> str:
        return f"Note by {self.author_id} on {self.session_id}"


class StorageFolder(models.Model):
    """The sweep's ledger: each ``sessions/<id>/`` folder it has looked at and what it found.

    A second sweep over an unchanged store lists it and skips every folder already in here, which is what keeps
    it a small fraction of the first.
    """

    class State(models.TextChoices):
        HAS_SESSION = "has_session", "Has a session row"
        ADOPTED = "adopted", "Adopted by the sweep"
        NO_AUDIO = "no_audio", "No audio file yet"

    session_id = models.UUIDField(primary_key=True)
    state = models.CharField(max_length=16, choices=State.choices)
    # What the folder looked like when checked (its mtime on local storage); a different one means look again.
    checked_signature = models.CharField(max_length=64, blank=True)
    checked_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["has_session", "adopted", "no_audio"]), name="storage_folder_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}: {self.state}"
