"""Page routes of the campaigns app. Ids are taken as any text and checked by the access helpers, so a
malformed id gets the same helpful 404 page as a missing one."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from campaigns.views import campaigns as campaign_views
from campaigns.views import contact_imports as import_views
from campaigns.views import contacts as contact_views
from campaigns.views import runs as run_views

page_urlpatterns: list[URLPattern | URLResolver] = [
    # Campaigns and runs (campaigns/views/campaigns.py, campaigns/views/runs.py).
    path("campaigns/", campaign_views.campaign_list_view, name="campaign-list"),
    path("campaigns/new/", campaign_views.campaign_create_view, name="campaign-create"),
    path("campaigns/<str:campaign_id>/", campaign_views.campaign_detail, name="campaign-detail"),
    path("campaigns/<str:campaign_id>/edit/", campaign_views.campaign_edit, name="campaign-edit"),
    path("campaigns/<str:campaign_id>/launch/", campaign_views.campaign_launch, name="campaign-launch"),
    path("runs/<str:run_id>/", run_views.run_detail, name="run-detail"),
    path("runs/<str:run_id>/progress.json", run_views.run_progress_json, name="run-progress"),
    path("runs/<str:run_id>/pause/", run_views.run_pause_view, name="run-pause"),
    path("runs/<str:run_id>/resume/", run_views.run_resume_view, name="run-resume"),
    path("runs/<str:run_id>/cancel/", run_views.run_cancel_view, name="run-cancel"),
    path("runs/<str:run_id>/export.csv", run_views.run_export, name="run-export"),
    # Contacts, imports and the do-not-call list (campaigns/views/contacts.py).
    path("contacts/", contact_views.contact_list_view, name="contact-list"),
    path("contacts/new/", contact_views.contact_create_view, name="contact-create"),
    path("contacts/do-not-call/", contact_views.do_not_call_view, name="contact-dnc"),
    path("contacts/do-not-call/<str:entry_id>/remove/", contact_views.do_not_call_remove, name="contact-dnc-remove"),
    path("contacts/imports/", import_views.import_list_view, name="contact-import-list"),
    path("contacts/imports/<str:import_id>/", import_views.import_detail, name="contact-import-detail"),
    path("contacts/imports/<str:import_id>/mapping/", import_views.import_mapping, name="contact-import-mapping"),
    path("contacts/imports/<str:import_id>/start/", import_views.import_start, name="contact-import-start"),
    path("contacts/imports/<str:import_id>/cancel/", import_views.import_cancel, name="contact-import-cancel"),
    path(
        "contacts/imports/<str:import_id>/progress.json",
        import_views.import_progress_json,
        name="contact-import-progress",
    ),
    path("contacts/imports/<str:import_id>/report.csv", import_views.import_report_csv, name="contact-import-report"),
    path("contacts/<str:contact_id>/", contact_views.contact_detail, name="contact-detail"),
    path("contacts/<str:contact_id>/edit/", contact_views.contact_edit, name="contact-edit"),
]
