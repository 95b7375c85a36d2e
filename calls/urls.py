"""API routes of the calls app, mounted at /api/crm/. Session routes answer with or without a trailing slash
(no redirect: a POST must not be bounced), and take any text as the id so that a malformed one gets the same
JSON 404 as a missing one."""

from __future__ import annotations

from django.urls import re_path

from calls import apis

SID = r"(?P<session_id>[^/]+)"

api_urlpatterns = [
    re_path(r"^sessions/?$", apis.SessionListCreateApi.as_view(), name="api-session-list"),
    re_path(
        r"^sessions/by-external/(?P<source>[^/]+)/(?P<external_id>[^/].*?)/?$",
        apis.SessionByExternalIdApi.as_view(),
        name="api-session-by-external",
    ),
    re_path(rf"^sessions/{SID}/?$", apis.SessionDetailApi.as_view(), name="api-session-detail"),
    re_path(rf"^sessions/{SID}/events/?$", apis.SessionEventsApi.as_view(), name="api-session-events"),
    re_path(rf"^sessions/{SID}/notes/?$", apis.SessionNotesApi.as_view(), name="api-session-notes"),
    # At most 19 digits, as a bigint: a longer run of digits is no note, and past 4300 digits Python's int()
    # refuses it with a ValueError (a 500) instead of the 404 it is.
    re_path(
        rf"^sessions/{SID}/notes/(?P<note_id>[0-9]{{1,19}})/?$",
        apis.SessionNoteDetailApi.as_view(),
        name="api-session-note-detail",
    ),
    re_path(rf"^sessions/{SID}/recording/?$", apis.SessionRecordingApi.as_view(), name="api-session-recording"),
    re_path(rf"^sessions/{SID}/transcript/?$", apis.SessionTranscriptApi.as_view(), name="api-session-transcript"),
    re_path(r"^events/?$", apis.EventWebhookApi.as_view(), name="api-events"),
]
