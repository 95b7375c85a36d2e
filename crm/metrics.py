"""The application's own Prometheus metrics. Every counter is defined here, once, so the names on the
dashboards and in docs/operations.md are the names in the code; services increment them where the thing
happens (after the transaction that made it real has committed, where it matters).

Exposition (``/metrics``, multiprocess mode under gunicorn, the worker's own endpoint) is configured in
``crm/settings.py`` and documented in docs/operations.md.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SESSIONS_CREATED = Counter(
    "callbook_sessions_created",
    "Call sessions created, by origin (api, direct, campaign, adopted).",
    ["origin"],
)
SESSIONS_AUTO_CREATED = Counter(
    "callbook_sessions_auto_created", "Sessions created by an integration's first event for an unknown call."
)
SESSIONS_ADOPTED = Counter(
    "callbook_sessions_adopted", "Orphaned recordings adopted into sessions, by how (view, sweep).", ["via"]
)
SESSIONS_EXPIRED = Counter("callbook_sessions_expired", "Stale sessions moved to abandoned.")
EVENTS_RECORDED = Counter("callbook_events_recorded", "Call events stored, by type.", ["type"])
EVENTS_DUPLICATE = Counter("callbook_events_duplicate", "Call events received again and stored once.")
INGESTS = Counter("callbook_ingests", "Session ingests finished, by result (ok, failed).", ["result"])
INGEST_SECONDS = Histogram(
    "callbook_ingest_seconds",
    "Time to ingest one session's files.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DIALS = Counter(
    "callbook_dials", "Campaign dial attempts, by outcome (started, completed, no_answer, busy, failed).", ["outcome"]
)
RUN_TRANSITIONS = Counter("callbook_run_transitions", "Campaign runs entering a state, by state.", ["state"])
CONTACTS_IMPORTED = Counter(
    "callbook_contact_import_rows", "Contact import rows, by outcome (imported, updated, skipped).", ["outcome"]
)
