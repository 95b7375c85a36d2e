"""The application's own Prometheus metrics. Every counter is defined here, once, so the names on the
dashboards and in docs/operations.md are the names in the code; services increment them where the thing
happens (after the transaction that made it real has committed, where it matters).

Exposition (``/metrics``, multiprocess mode under gunicorn, the worker's own endpoint) is configured in
``crm/settings.py`` and documented in docs/operations.md. The gauges of what is waiting (ingest backlog, broker
queue length) are measured when ``/metrics`` is scraped, by ``crm.observability.BacklogCollector``.

This module imports nothing of Django: the gunicorn master imports it for the multiprocess helpers below.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Multiprocess mode (PROMETHEUS_MULTIPROC_DIR): prometheus_client opens its files there as soon as a metric
# without labels is defined below, so the directory must exist before that. A blank value counts as unset, as
# every setting does; prometheus_client would otherwise take its mere presence for multiprocess mode and write
# into the current directory.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _MULTIPROC_DIR:
    Path(_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

from prometheus_client import Counter, Histogram  # noqa: E402  # after the directory exists

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
RECORDINGS_DELETED = Counter("callbook_recordings_deleted", "Recording files deleted by the retention policy.")
DIALS = Counter(
    "callbook_dials", "Campaign dial attempts, by outcome (started, completed, no_answer, busy, failed).", ["outcome"]
)
RUN_TRANSITIONS = Counter("callbook_run_transitions", "Campaign runs entering a state, by state.", ["state"])
RUN_BREAKER_TRIPS = Counter("callbook_run_breaker_trips", "Campaign runs paused by their circuit breaker.")
CONTACTS_IMPORTED = Counter(
    "callbook_contact_import_rows", "Contact import rows, by outcome (imported, updated, skipped).", ["outcome"]
)

# Celery, from its signals (crm/celery_signals.py): in the process that runs the task.
TASKS_STARTED = Counter("callbook_celery_tasks_started", "Celery tasks started, by task name.", ["task"])
TASKS_FINISHED = Counter(
    "callbook_celery_tasks_finished",
    "Celery task runs that ended, by task name and result (succeeded, failed, retried).",
    ["task", "result"],
)
TASK_SECONDS = Histogram(
    "callbook_celery_task_seconds",
    "Run time of Celery tasks, by task name.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800),
)


# --- Multiprocess mode ------------------------------------------------------------------------------------


def multiprocess_dir() -> str:
    """The directory of multiprocess mode, or "" when each process keeps its metrics in memory."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


_OWN_FILE = re.compile(r"_(\d+)\.db$")


def multiprocess_dir_reset() -> int:
    """Delete the files that processes of an earlier run left in the multiprocess directory (they would be
    added to this run's totals forever); the calling process's own files stay, as it may hold them open.
    Called by the gunicorn master and the Celery worker's main process before they start their children.
    Answers how many files were deleted."""
    folder = multiprocess_dir()
    if not folder:
        return 0
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    deleted = 0
    for file in path.glob("*.db"):
        match = _OWN_FILE.search(file.name)
        if match is None or int(match.group(1)) != os.getpid():
            file.unlink(missing_ok=True)
            deleted += 1
    return deleted


def multiprocess_mark_dead(pid: int) -> None:
    """Forget the live gauges of a child that exited (counters and histograms keep counting its work)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess  # noqa: PLC0415  # only in multiprocess mode

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
