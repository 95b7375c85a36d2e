"""The session endpoints' JSON, built from the rows of ``calls.selectors`` (``.values()`` dicts).

The DRF output serializers in ``calls.serializers`` stay the documented schema (drf-spectacular reads them) and
still render what the write endpoints return; the GETs use these plain functions instead, because a
ModelSerializer builds its fields anew for every instance and walks them one by one, which cost more than the
queries. The output must be the serializers' to the byte: the same keys in the same order, the same value
formats. tests/calls/test_presenters.py compares the two on rich sessions; change both together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from rest_framework import ISO_8601
from rest_framework.fields import DateTimeField
from rest_framework.request import Request
from rest_framework.settings import api_settings

from calls.models import Recording
from calls.selectors import Row, SessionDetailRows

# Stands in for a session id while a URL is reversed once per response; see _url_maker.
_ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"

AnyRequest = Request | HttpRequest | None


def _url_maker(request: AnyRequest, url_name: str) -> Callable[[str], str]:
    """``request.build_absolute_uri(reverse(url_name, session_id=...))`` as the serializers build it, per id.

    Reversing and building an absolute URI cost some 20 µs; a page of 50 rows needs 50 of them. Both only
    substitute the id into the pattern and prepend the scheme, host and script prefix; quoting is per character
    and leaves a UUID's hex digits and dashes alone, so the URL of any id is the placeholder's with the id in its
    place. rpartition: the id is in the path, after anything the host could hold.
    """
    path = reverse(url_name, kwargs={"session_id": _ID_PLACEHOLDER})
    url = request.build_absolute_uri(path) if request is not None else path
    head, _, tail = url.rpartition(_ID_PLACEHOLDER)
    return lambda session_id: f"{head}{session_id}{tail}"


def _datetime_renderer() -> Callable[[datetime | None], Any]:
    """DRF's ``DateTimeField.to_representation`` with the settings read once per response, not per value.

    DRF converts an aware datetime to the current time zone and writes it with ``isoformat()``, "+00:00" as "Z".
    Any other configuration (USE_TZ off, another DATETIME_FORMAT) goes to DRF's own field, as does a value it
    would treat otherwise (naive, or out of range once converted), so that it comes out or fails as it does there.
    """
    field = DateTimeField()

    def drf(value: datetime | None) -> Any:
        return None if value is None else field.to_representation(value)

    output_format = api_settings.DATETIME_FORMAT
    if not settings.USE_TZ or not isinstance(output_format, str) or output_format.lower() != ISO_8601:
        return drf
    zone = timezone.get_current_timezone()

    def render(value: datetime | None) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:  # never read from the database with USE_TZ on
            return drf(value)
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:
            return drf(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return render


class _Render:
    """What rendering needs from the request and the settings, worked out once per response."""

    __slots__ = ("datetime", "session_url")

    def __init__(self, request: AnyRequest) -> None:
        self.datetime = _datetime_renderer()
        self.session_url = _url_maker(request, "api-session-detail")


def _session(row: Row, render: _Render) -> dict[str, Any]:
    """CallSessionOutputSerializer's fields, in its order."""
    dt = render.datetime
    session_id = str(row["id"])
    return {
        "id": session_id,
        "url": render.session_url(session_id),
        "source": row["source"],
        "external_id": row["external_id"],
        "owner": row["owner__username"],
        "team": row["team__name"],
        "campaign": row["campaign_id"],
        "contact": row["contact_id"],
        "direction": row["direction"],
        "status": row["status"],
        "origin": row["origin"],
        "auto_created": row["auto_created"],
        "from_number": row["from_number"],
        "to_number": row["to_number"],
        "started_at": dt(row["started_at"]),
        "answered_at": dt(row["answered_at"]),
        "ended_at": dt(row["ended_at"]),
        "duration_ms": row["duration_ms"],
        "end_reason": row["end_reason"],
        "recording_status": row["recording_status"],
        "metadata": row["metadata"],
        "last_event_at": dt(row["last_event_at"]),
        "created_at": dt(row["created_at"]),
        "updated_at": dt(row["updated_at"]),
    }


def present_session_list(rows: Iterable[Row], *, request: AnyRequest) -> list[dict[str, Any]]:
    """``CallSessionOutputSerializer(many=True)`` of ``call_session_rows`` rows."""
    render = _Render(request)
    return [_session(row, render) for row in rows]


def _absolute_url(request: AnyRequest, url_name: str, session_id: str) -> str:
    path = reverse(url_name, kwargs={"session_id": session_id})
    return request.build_absolute_uri(path) if request is not None else path


def _recording(row: Row, *, session_id: str, request: AnyRequest, render: _Render) -> dict[str, Any] | None:
    """RecordingOutputSerializer's fields, or None when the session has no recording row."""
    if row["recording__id"] is None:
        return None
    status = row["recording__status"]
    available = status == Recording.Status.AVAILABLE
    return {
        "status": status,
        "format": row["recording__format"],
        "codec": row["recording__codec"],
        "content_type": row["recording__content_type"],
        "duration_ms": row["recording__duration_ms"],
        "size_bytes": row["recording__size_bytes"],
        "sha256": row["recording__sha256"],
        "channels": row["recording__channels"],
        "sample_rate": row["recording__sample_rate"],
        "failure_reason": row["recording__failure_reason"],
        "ingested_at": render.datetime(row["recording__ingested_at"]),
        "stream_url": _absolute_url(request, "api-session-recording", session_id) if available else None,
    }


def _transcript(row: Row, segments: list[Row], render: _Render) -> dict[str, Any] | None:
    """TranscriptOutputSerializer's fields (segments as TranscriptSegmentOutputSerializer's), or None."""
    if row["transcript__id"] is None:
        return None
    return {
        "text": row["transcript__text"],
        "language": row["transcript__language"],
        "source": row["transcript__source"],
        "encoding": row["transcript__encoding"],
        "had_replacements": row["transcript__had_replacements"],
        "segments": [
            {
                "position": segment["position"],
                "speaker": segment["speaker"],
                "start_ms": segment["start_ms"],
                "end_ms": segment["end_ms"],
                "text": segment["text"],
            }
            for segment in segments
        ],
        "updated_at": render.datetime(row["transcript__updated_at"]),
    }


def present_session_detail(detail: SessionDetailRows, *, request: AnyRequest, adopted: bool = False) -> dict[str, Any]:
    """``CallSessionDetailOutputSerializer`` of ``call_session_detail_for_user`` rows."""
    render = _Render(request)
    dt = render.datetime
    row = detail.session
    body = _session(row, render)
    body["adopted"] = adopted
    body["recording"] = _recording(row, session_id=body["id"], request=request, render=render)
    body["transcript"] = _transcript(row, detail.segments, render)
    body["events"] = [
        {
            "id": event["id"],
            "type": event["type"],
            "event_id": event["event_id"],
            "occurred_at": dt(event["occurred_at"]),
            "received_at": dt(event["received_at"]),
            "data": event["data"],
            "status_before": event["status_before"],
            "status_after": event["status_after"],
        }
        for event in detail.events
    ]
    body["notes"] = [
        {
            "id": note["id"],
            "author": note["author__username"],
            "body": note["body"],
            "created_at": dt(note["created_at"]),
            "updated_at": dt(note["updated_at"]),
        }
        for note in detail.notes
    ]
    return body
