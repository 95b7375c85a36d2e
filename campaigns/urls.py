"""API routes of the campaigns app, mounted at /api/crm/ beside the calls routes. Ids are taken as any text
and checked by the access helpers in ``campaigns.access``, so a malformed id gets the same JSON 404 as a
missing one; routes answer with or without a trailing slash (a POST must not be bounced by a redirect)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, re_path

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
]
