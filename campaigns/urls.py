"""API routes of the campaigns app, mounted at /api/crm/ beside the calls routes. Ids are taken as any text
and checked by the access helpers in ``campaigns.access``, so a malformed id gets the same JSON 404 as a
missing one; routes answer with or without a trailing slash (a POST must not be bounced by a redirect)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

api_urlpatterns: list[URLPattern | URLResolver] = [
    # Campaigns and runs (campaigns/api/runs.py).
    # Contacts, imports and the do-not-call list (campaigns/api/contacts.py).
]
