from __future__ import annotations

import socket
from typing import Any

from celery import shared_task
from django.core.management import call_command
from django.db import connection


@shared_task(acks_late=True)
def clear_expired_login_sessions() -> None:
    """Beat: drop expired browser login sessions (Django's clearsessions)."""
    call_command("clearsessions")


@shared_task(acks_late=True)
def worker_ping(token: str) -> dict[str, Any]:
    """Round trip through the broker: proves a worker is consuming and can reach the database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (db_ok,) = cursor.fetchone()
    return {"token": token, "worker": socket.gethostname(), "database": db_ok == 1}
