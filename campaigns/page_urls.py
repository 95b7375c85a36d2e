"""Page routes of the campaigns app. Ids are taken as any text and checked by the access helpers, so a
malformed id gets the same helpful 404 page as a missing one."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

page_urlpatterns: list[URLPattern | URLResolver] = [
    # Campaigns and runs (campaigns/views/campaigns.py, campaigns/views/runs.py).
    # Contacts, imports and the do-not-call list (campaigns/views/contacts.py).
]
