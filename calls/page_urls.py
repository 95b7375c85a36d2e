"""Page routes of the calls app. Session ids are taken as any text and checked by the access helper, so a
malformed id gets the same helpful 404 page as a missing one."""

from __future__ import annotations

from django.urls import path

from calls.views import dashboard, detail, manager
from calls.views import list as list_views

page_urlpatterns = [
    path("", dashboard.dashboard, name="home"),
    path("calls/", list_views.call_list, name="call-list"),
    path("calls/export.csv", list_views.call_export, name="call-export"),
    path("calls/triage/", manager.call_triage, name="call-triage"),
    path("calls/live/", manager.call_live, name="call-live"),
    path("calls/<str:session_id>/", detail.call_detail, name="call-detail"),
    path("calls/<str:session_id>/audio", detail.call_audio, name="call-audio"),
    path("calls/<str:session_id>/notes/", detail.call_note_add, name="call-note-add"),
    path("calls/<str:session_id>/notes/<int:note_id>/", detail.call_note_edit, name="call-note-edit"),
    path("calls/<str:session_id>/adopt/", detail.call_adopt, name="call-adopt"),
    path("calls/<str:session_id>/assign/", manager.call_assign, name="call-assign"),
]
