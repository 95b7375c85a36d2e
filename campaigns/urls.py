"""API routes of the campaigns app, mounted at /api/crm/ beside the calls routes. Ids are taken as any text
and checked by the access helpers in ``campaigns.access``, so a malformed id gets the same JSON 404 as a
missing one; routes answer with or without a trailing slash (a POST must not be bounced by a redirect)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, re_path

from campaigns.api import contacts as contact_apis
from campaigns.api import runs

CAMPAIGN_ID = r"(?P<campaign_id>[^/]+)"
RUN_ID = r"(?P<run_id>[^/]+)"

api_urlpatterns: list[URLPattern | URLResolver] = [
    # Campaigns and runs (campaigns/api/runs.py).
    re_path(r"^campaigns/?$", runs.CampaignListCreateApi.as_view(), name="api-campaign-list"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/?$", runs.CampaignDetailApi.as_view(), name="api-campaign-detail"),
    re_path(rf"^campaigns/{CAMPAIGN_ID}/runs/?$", runs.CampaignRunsApi.as_view(), name="api-campaign-runs"),
    re_path(rf"^runs/{RUN_ID}/?$", runs.RunDetailApi.as_view(), name="api-run-detail"),
    re_path(rf"^runs/{RUN_ID}/pause/?$", runs.RunPauseApi.as_view(), name="api-run-pause"),
    re_path(rf"^runs/{RUN_ID}/resume/?$", runs.RunResumeApi.as_view(), name="api-run-resume"),
    re_path(rf"^runs/{RUN_ID}/cancel/?$", runs.RunCancelApi.as_view(), name="api-run-cancel"),
    re_path(rf"^runs/{RUN_ID}/dials/?$", runs.RunDialsApi.as_view(), name="api-run-dials"),
    re_path(rf"^runs/{RUN_ID}/log/?$", runs.RunLogApi.as_view(), name="api-run-log"),
    # Contacts, imports and the do-not-call list (campaigns/api/contacts.py).
    re_path(r"^contacts/?$", contact_apis.ContactListCreateApi.as_view(), name="api-contact-list"),
    re_path(r"^contacts/(?P<contact_id>[^/]+)/?$", contact_apis.ContactDetailApi.as_view(), name="api-contact-detail"),
    re_path(r"^imports/?$", contact_apis.ImportListCreateApi.as_view(), name="api-import-list"),
    re_path(r"^imports/(?P<import_id>[^/]+)/?$", contact_apis.ImportDetailApi.as_view(), name="api-import-detail"),
    re_path(
        r"^imports/(?P<import_id>[^/]+)/preview/?$", contact_apis.ImportPreviewApi.as_view(), name="api-import-preview"
    ),
    re_path(r"^imports/(?P<import_id>[^/]+)/start/?$", contact_apis.ImportStartApi.as_view(), name="api-import-start"),
    re_path(
        r"^imports/(?P<import_id>[^/]+)/cancel/?$", contact_apis.ImportCancelApi.as_view(), name="api-import-cancel"
    ),
    re_path(
        r"^imports/(?P<import_id>[^/]+)/progress/?$",
        contact_apis.ImportProgressApi.as_view(),
        name="api-import-progress",
    ),
    re_path(r"^imports/(?P<import_id>[^/]+)/rows/?$", contact_apis.ImportRowsApi.as_view(), name="api-import-rows"),
    re_path(
        r"^imports/(?P<import_id>[^/]+)/report\.csv$",
        contact_apis.ImportReportCsvApi.as_view(),
        name="api-import-report",
    ),
    re_path(r"^do-not-call/?$", contact_apis.DoNotCallListCreateApi.as_view(), name="api-dnc-list"),
    re_path(r"^do-not-call/(?P<entry_id>[^/]+)/?$", contact_apis.DoNotCallDetailApi.as_view(), name="api-dnc-detail"),
]
