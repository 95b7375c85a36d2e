from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from calls.models import CallEvent, CallSession, Note, Recording, Source, StorageFolder, Transcript, TranscriptSegment
from calls.services import source_create


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields or ()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventInline(ReadOnlyInline):
    model = CallEvent
    fields = ("occurred_at", "type", "event_id", "status_before", "status_after", "data")


class NoteInline(ReadOnlyInline):
    model = Note
    fields = ("created_at", "author", "body")


@admin.register(CallSession)
class CallSessionAdmin(admin.ModelAdmin[CallSession]):
    list_display = ("id", "source", "external_id", "owner", "team", "status", "recording_status", "created_at")
    list_filter = ("status", "origin", "recording_status", "direction", "auto_created", "team", "source")
    list_select_related = ("owner", "team")
    search_fields = ("=id", "external_id", "from_number", "to_number")
    raw_id_fields = ("owner", "campaign", "contact")
    readonly_fields = ("id", "origin", "auto_created", "created_at", "updated_at", "last_event_at")
    date_hierarchy = "created_at"
    inlines = [EventInline, NoteInline]
    show_full_result_count = False  # a COUNT(*) over every call on each page view is what makes admin slow


@admin.register(CallEvent)
class CallEventAdmin(admin.ModelAdmin[CallEvent]):
    list_display = ("session", "type", "occurred_at", "status_before", "status_after", "event_id")
    list_filter = ("type",)
    search_fields = ("=session__id", "event_id")
    raw_id_fields = ("session",)
    show_full_result_count = False


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin[Recording]):
    list_display = ("session", "status", "format", "duration_ms", "size_bytes", "channels", "updated_at")
    list_filter = ("status", "format", "channels")
    search_fields = ("=session__id", "sha256", "file")
    raw_id_fields = ("session",)


class SegmentInline(admin.TabularInline[TranscriptSegment, Transcript]):
    model = TranscriptSegment
    extra = 0
    fields = ("position", "speaker", "start_ms", "end_ms", "text")


@admin.register(Transcript)
class TranscriptAdmin(admin.ModelAdmin[Transcript]):
    list_display = ("session", "source", "language", "encoding", "had_replacements", "updated_at")
    list_filter = ("source", "encoding", "had_replacements")
    search_fields = ("=session__id",)
    raw_id_fields = ("session",)
    inlines = [SegmentInline]


@admin.register(TranscriptSegment)
class TranscriptSegmentAdmin(admin.ModelAdmin[TranscriptSegment]):
    list_display = ("transcript", "position", "speaker", "start_ms", "end_ms")
    raw_id_fields = ("transcript",)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin[Note]):
    list_display = ("session", "author", "created_at")
    search_fields = ("=session__id", "body")
    raw_id_fields = ("session", "author")


class SourceAddForm(forms.ModelForm[Source]):
    class Meta:
        model = Source
        fields = ("name", "default_owner", "default_team", "signing_secret")


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin[Source]):
    list_display = ("name", "user", "default_owner", "default_team", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name",)
    raw_id_fields = ("default_owner",)
    readonly_fields = ("user", "created_at")

    def get_form(self, request: HttpRequest, obj: Source | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = SourceAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new integration needs its service user and first token; the key can be shown only now.
        source, key = source_create(
            name=obj.name,
            default_owner=obj.default_owner,
            default_team=obj.default_team,
            signing_secret=obj.signing_secret,
        )
        obj.pk, obj.user = source.pk, source.user
        messages.warning(request, f"API token for {source.name} (shown once, copy it now): {key}")


@admin.register(StorageFolder)
class StorageFolderAdmin(admin.ModelAdmin[StorageFolder]):
    """The orphan sweep's ledger; deleting an entry makes the next sweep look at that folder again."""

    list_display = ("session_id", "state", "checked_at")
    list_filter = ("state",)
    search_fields = ("=session_id",)
    readonly_fields = ("session_id", "state", "checked_signature", "checked_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
