from __future__ import annotations

import secrets
from argparse import ArgumentParser
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.core.management.base import BaseCommand, CommandError

from crm.tasks import worker_ping


class Command(BaseCommand):
    help = "Send a ping task through the broker and wait for a worker to answer it."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for the answer.")

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        token = secrets.token_hex(8)
        try:
            result = worker_ping.delay(token).get(timeout=timeout)
        except CeleryTimeout:
            raise CommandError(
                f"No worker answered within {timeout:.0f}s: is `celery -A crm worker` running?"
            ) from None
        except Exception as exc:
            raise CommandError(f"Could not reach the broker: {exc}") from exc
        if result.get("token") != token:
            raise CommandError(f"Unexpected answer from the worker: {result!r}")
        self.stdout.write(f"Worker {result['worker']} answered; database reachable: {result['database']}.")
