"""Readiness checks: each answers ``None`` when healthy, else the reason it is not."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection
from kombu import Connection

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return None


def check_broker() -> str | None:
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
    with Connection(
        settings.CELERY_BROKER_URL,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        connect_timeout=timeout,
    ) as conn:
        # No retries: a readiness probe must answer now, not wait for the broker to come back.
        conn.ensure_connection(max_retries=0, timeout=timeout)
    return None


def check_recordings_storage() -> str | None:
    storage = storages["recordings"]
    if isinstance(storage, FileSystemStorage):
        # A fresh install has no folder until the first recording arrives; creating it is part of being ready.
        root = Path(storage.location)
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            return f"{root} is not writable by this process"
    # Listing the root proves the folder (or bucket) exists and our credentials can read it.
    storage.listdir("")
    return None


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "broker": check_broker,
    "recordings_storage": check_recordings_storage,
}


def _run(name: str, check: Callable[[], str | None]) -> str | None:
    try:
        return check()
    except Exception as exc:  # A failed check is an answer, not a crash: report why.
        logger.warning("readiness check %s failed: %s", name, exc)
        return f"{type(exc).__name__}: {exc}"[:300]


def run_checks() -> dict[str, str | None]:
    """Run the checks concurrently, each bounded by the health-check timeout."""
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS + 1
    results: dict[str, str | None] = {}
    # The database check must run on this thread: Django connections are per thread.
    results["database"] = _run("database", CHECKS["database"])
    pool = ThreadPoolExecutor(max_workers=len(CHECKS))
    futures = {name: pool.submit(_run, name, check) for name, check in CHECKS.items() if name != "database"}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=timeout)
        except FutureTimeout:
            results[name] = f"no answer within {timeout:.0f}s"
    pool.shutdown(wait=False, cancel_futures=True)
    return results
