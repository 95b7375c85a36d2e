from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from calls.ingest import session_ingest
from calls.management.commands._progress import progress_bar
from calls.models import Recording
from calls.selectors import parse_session_id


class Command(BaseCommand):
    help = "Ingest recordings and transcripts now, in this process: one session, or every pending recording."

    def add_arguments(self, parser: ArgumentParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--session", help="A session id.")
        target.add_argument("--pending", action="store_true", help="Every recording not yet ingested.")
        parser.add_argument("--failed", action="store_true", help="With --pending: failed recordings too.")

    def handle(self, *args: Any, session: str | None, pending: bool, failed: bool, **options: Any) -> None:
        if session:
            session_id = parse_session_id(session)
            if session_id is None:
                raise CommandError(f"{session!r} is not a session id (expected 8-4-4-4-12 hexadecimal).")
            if not Recording.objects.filter(session_id=session_id).exists():
                raise CommandError(f"Session {session_id} has no recording to ingest.")
            Recording.objects.filter(session_id=session_id, status=Recording.Status.FAILED).update(
                status=Recording.Status.PENDING
            )
            ids = [session_id]
        else:
            if failed:
                Recording.objects.filter(status=Recording.Status.FAILED).update(status=Recording.Status.PENDING)
            ids = list(Recording.objects.filter(status=Recording.Status.PENDING).values_list("session_id", flat=True))
        outcomes: dict[str, int] = {}
        with progress_bar(total=len(ids), label="ingest", stream=self.stderr) as advance:
            for session_id in ids:
                status = session_ingest(session_id=session_id) or "no recording"
                outcomes[status] = outcomes.get(status, 0) + 1
                if status == Recording.Status.FAILED:
                    reason = Recording.objects.get(session_id=session_id).failure_reason
                    self.stderr.write(f"{session_id}: failed: {reason}")
                advance(1)
        summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items())) or "nothing to do"
        self.stdout.write(f"Ingested {len(ids)} session(s): {summary}.")
