from __future__ import annotations

from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from calls.maintenance import sessions_expire_stale
from calls.management.commands._progress import progress_bar


class Command(BaseCommand):
    help = "Mark sessions stuck in a live status with no event for a while as abandoned (nothing is deleted)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--minutes",
            type=int,
            default=settings.SESSION_STALE_AFTER_MINUTES,
            help="Quiet time after which a live session counts as abandoned (default: SESSION_STALE_AFTER_MINUTES).",
        )

    def handle(self, *args: Any, minutes: int, **options: Any) -> None:
        if minutes < 1:
            raise CommandError("--minutes must be at least 1.")
        with progress_bar(total=None, label="sessions", stream=self.stderr) as advance:
            count = sessions_expire_stale(older_than=timedelta(minutes=minutes), progress=advance)
        self.stdout.write(f"Marked {count} session(s) abandoned after {minutes} minutes without an event.")
