from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from calls.maintenance import list_session_folders, orphans_sweep
from calls.management.commands._progress import progress_bar


class Command(BaseCommand):
    help = (
        "Sweep the recordings storage: adopt every sessions/<id>/ folder that has audio but no session, attach "
        "late recordings to existing sessions, and queue their ingest."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report what would be adopted; change nothing.")

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        total = len(list_session_folders()) if self.stderr.isatty() else None
        with progress_bar(total=total, label="folders", stream=self.stderr) as advance:
            report = orphans_sweep(dry_run=dry_run, progress=advance)
        verb = "Would adopt" if dry_run else "Adopted"
        for session_id in report.adopted:
            self.stdout.write(f"{verb} {session_id}")
        for name in report.not_session_ids:
            self.stderr.write(f"Skipped sessions/{name}/: not a session id")
        self.stdout.write(("Dry run: " if dry_run else "") + report.summary() + ".")
