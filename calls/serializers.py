"""API shapes. Input and output serializers are separate: what a client may send is not what it reads back."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from rest_framework import serializers

from calls.models import CallEvent, CallSession, Note, Recording, Transcript, TranscriptSegment

METADATA_MAX_BYTES = 64 * 1024


def _validate_json_object(value: Any) -> None:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")
    if len(json.dumps(value)) > METADATA_MAX_BYTES:
        raise serializers.ValidationError(f"Must be at most {METADATA_MAX_BYTES // 1024} KiB of JSON.")


# --- Output ------------------------------------------------------------------------------------------------


class CallEventOutputSerializer(serializers.ModelSerializer[CallEvent]):
    class Meta:
        model = CallEvent
        fields = ["id", "type", "event_id", "occurred_at", "received_at", "data", "status_before", "status_after"]


class RecordingOutputSerializer(serializers.ModelSerializer[Recording]):
    stream_url = serializers.SerializerMethodField(help_text="Permission-checked audio URL (HTTP Range supported).")

    class Meta:
        model = Recording
        fields = [
            "status",
            "format",
            "codec",
            "content_type",
            "duration_ms",
            "size_bytes",
            "sha256",
            "channels",
            "sample_rate",
            "failure_reason",
            "ingested_at",
            "stream_url",
        ]

    def get_stream_url(self, obj: Recording) -> str | None:
        if obj.status != Recording.Status.AVAILABLE:
            return None
        path = reverse("api-session-recording", kwargs={"session_id": str(obj.session_id)})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class TranscriptSegmentOutputSerializer(serializers.ModelSerializer[TranscriptSegment]):
    class Meta:
        model = TranscriptSegment
        fields = ["position", "speaker", "start_ms", "end_ms", "text"]


class TranscriptOutputSerializer(serializers.ModelSerializer[Transcript]):
    segments = TranscriptSegmentOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Transcript
        fields = ["text", "language", "source", "encoding", "had_replacements", "segments", "updated_at"]


class NoteOutputSerializer(serializers.ModelSerializer[Note]):
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = Note
        fields = ["id", "author", "body", "created_at", "updated_at"]


class CallSessionOutputSerializer(serializers.ModelSerializer[CallSession]):
    url = serializers.SerializerMethodField()
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)
    team = serializers.CharField(source="team.name", read_only=True, allow_null=True, default=None)

    class Meta:
        model = CallSession
        fields = [
            "id",
            "url",
            "source",
            "external_id",
            "owner",
            "team",
            "campaign",
            "contact",
            "direction",
            "status",
            "origin",
            "auto_created",
            "from_number",
            "to_number",
            "started_at",
            "answered_at",
            "ended_at",
            "duration_ms",
            "end_reason",
            "recording_status",
            "metadata",
            "last_event_at",
            "created_at",
            "updated_at",
        ]

    def get_url(self, obj: CallSession) -> str:
        path = reverse("api-session-detail", kwargs={"session_id": str(obj.pk)})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


def _related_or_none(obj: CallSession, name: str) -> Any:
    try:
        return getattr(obj, name)
    except (Recording.DoesNotExist, Transcript.DoesNotExist):
        return None


class CallSessionDetailOutputSerializer(CallSessionOutputSerializer):
    adopted = serializers.SerializerMethodField(help_text="True when this request adopted an orphaned recording.")
    recording = serializers.SerializerMethodField()
    transcript = serializers.SerializerMethodField()
    events = CallEventOutputSerializer(many=True, read_only=True)
    notes = NoteOutputSerializer(many=True, read_only=True)

    class Meta(CallSessionOutputSerializer.Meta):
        fields = [*CallSessionOutputSerializer.Meta.fields, "adopted", "recording", "transcript", "events", "notes"]

    def get_adopted(self, obj: CallSession) -> bool:
        return bool(self.context.get("adopted", False))

    def get_recording(self, obj: CallSession) -> dict[str, Any] | None:
        recording = _related_or_none(obj, "recording")
        return RecordingOutputSerializer(recording, context=self.context).data if recording else None

    def get_transcript(self, obj: CallSession) -> dict[str, Any] | None:
        transcript = _related_or_none(obj, "transcript")
        return TranscriptOutputSerializer(transcript, context=self.context).data if transcript else None


class EventResultOutputSerializer(serializers.Serializer[Any]):
    duplicate = serializers.BooleanField()
    session_id = serializers.UUIDField()
    session_created = serializers.BooleanField(required=False)
    status = serializers.CharField(help_text="The session's status after the event.")
    event = CallEventOutputSerializer()


# --- Input -------------------------------------------------------------------------------------------------


# DRF's metaclass moves declared fields off the class, so `source` and `data` below do not shadow the
# Field/Serializer attributes at run time; the stubs cannot know that.


class CallSessionCreateInputSerializer(serializers.Serializer[Any]):
    source = serializers.SlugField(  # type: ignore[assignment]
        max_length=64, required=False, help_text="Integration name; an integration's token implies its own."
    )
    external_id = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", help_text="The integration's own call id."
    )
    direction = serializers.ChoiceField(choices=CallSession.Direction.choices, required=False)
    owner = serializers.CharField(max_length=150, required=False, help_text="Username (managers and admins).")
    from_number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    to_number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    started_at = serializers.DateTimeField(required=False)
    metadata = serializers.JSONField(required=False, default=dict, validators=[_validate_json_object])


class CallSessionUpdateInputSerializer(serializers.Serializer[Any]):
    direction = serializers.ChoiceField(choices=CallSession.Direction.choices, required=False)
    owner = serializers.CharField(max_length=150, required=False)
    from_number = serializers.CharField(max_length=64, required=False, allow_blank=True)
    to_number = serializers.CharField(max_length=64, required=False, allow_blank=True)
    end_reason = serializers.CharField(max_length=255, required=False, allow_blank=True)
    metadata = serializers.JSONField(required=False, validators=[_validate_json_object])


class CallEventInputSerializer(serializers.Serializer[Any]):
    type = serializers.CharField(
        max_length=32,
        help_text="initiated, ringing, answered, completed (alias: bye), busy, no_answer, failed, canceled; "
        "any other type (transfer, dtmf, hold, ...) is recorded without changing the status.",
    )
    event_id = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", help_text="Provider id: repeats are ignored."
    )
    occurred_at = serializers.DateTimeField(required=False, help_text="When it happened; defaults to now.")
    data = serializers.JSONField(  # type: ignore[assignment]
        required=False, default=dict, validators=[_validate_json_object]
    )


class WebhookEventInputSerializer(CallEventInputSerializer):
    source = serializers.SlugField(max_length=64, required=False)  # type: ignore[assignment]
    external_id = serializers.CharField(max_length=255)
    direction = serializers.ChoiceField(choices=CallSession.Direction.choices, required=False)
    owner = serializers.CharField(max_length=150, required=False)
    from_number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    to_number = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    metadata = serializers.JSONField(required=False, default=dict, validators=[_validate_json_object])


class NoteInputSerializer(serializers.Serializer[Any]):
    body = serializers.CharField(max_length=10_000)


class SessionFilterInputSerializer(serializers.Serializer[Any]):
    status = serializers.MultipleChoiceField(choices=CallSession.Status.choices, required=False)
    direction = serializers.ChoiceField(choices=CallSession.Direction.choices, required=False)
    owner = serializers.CharField(max_length=150, required=False, help_text="Username.")
    team = serializers.CharField(max_length=120, required=False, help_text="Team name.")
    campaign = serializers.IntegerField(required=False, min_value=1)
    source = serializers.CharField(max_length=64, required=False)  # type: ignore[assignment]
    started_after = serializers.DateTimeField(required=False)
    started_before = serializers.DateTimeField(required=False)
    has_recording = serializers.BooleanField(required=False, allow_null=True, default=None)
    q = serializers.CharField(max_length=200, required=False, help_text="Search transcripts and numbers.")
    ordering = serializers.ChoiceField(choices=["-created_at", "created_at"], required=False, default="-created_at")
