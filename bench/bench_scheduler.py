"""The campaign scheduler's overhead per dial against creating a bare CallSession row, in the same run.

A run of N contacts (calling window always open, limits high enough never to hold it back) is ticked with
``campaigns.scheduler.run_tick`` and a no-op dialer until every contact has been dialed: what is measured is the
scheduler's own work per dial -- the run lock, the due-contact scan, the do-not-call and window checks, the
conditional claim, the CallSession and Dial rows, the log line, the counters and the hand-off bookkeeping.
Baseline: N ``CallSession.objects.create`` calls with the same fields, each in its own transaction, on the same
database. The ratio says how many bare session inserts one dial costs; target <= 3.

Everything is throw-away: a temp folder as CALLBOOK_VAR_DIR (SQLite there). Only the local machine is used.
Exits non-zero on a crash only; a missed target shows as ``"ok": false``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # crm, calls, campaigns: the script runs as bench/<file>.py from anywhere

CONTACTS = 3000
DIALS_PER_TICK = 200
TARGET_RATIO = 3.0


def bench_env(var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RECORDINGS_S3_BUCKET"):
        env.pop(name, None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "crm.settings",
            "CALLBOOK_VAR_DIR": str(var_dir),
            "RECORDINGS_ROOT": str(var_dir / "recordings"),
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-secret-key-" + os.urandom(16).hex(),
            "LOG_LEVEL": "WARNING",
            "CAMPAIGN_MAX_DIALS_PER_TICK": str(DIALS_PER_TICK),
        }
    )
    return env


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="callbook-bench-scheduler-") as tmp:
        os.environ.clear()
        os.environ.update(bench_env(Path(tmp)))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        result = measure()
    print("RESULT " + json.dumps(result))
    return 0


def measure() -> dict[str, Any]:
    import datetime as dt

    from calls.models import CallSession
    from campaigns.dialers.base import Dialer, DialRequest
    from campaigns.models import Campaign, Contact, Dial
    from campaigns.runs import run_launch
    from campaigns.scheduler import run_tick
    from crm.models import Team, User

    class NoopDialer(Dialer):
        name = "noop"

        def __init__(self) -> None:
            self.settings = {}

        @classmethod
        def validate_settings(cls, raw: Any) -> dict[str, Any]:
            return {}

        def source_name(self) -> str:
            return "bench-agent"

        def dial(self, request: DialRequest) -> None:
            return None

    team = Team.objects.create(name="Bench")
    manager = User.objects.create(username="bench-manager", role=User.Role.MANAGER, team=team)
    team.manager = manager
    team.save(update_fields=["manager"])
    campaign = Campaign.objects.create(
        name="Bench",
        team=team,
        manager=manager,
        caller_id="+12025550100",
        window_start=dt.time(0, 0),
        window_end=dt.time.max,
        max_concurrent_calls=30000,
        max_calls_per_minute=30000,
    )
    Contact.objects.bulk_create(
        Contact(team=team, name=f"Contact {n}", phone=f"+1202{n:07d}", timezone="America/New_York")
        for n in range(CONTACTS)
    )
    campaign.contacts.set(Contact.objects.filter(team=team))
    run = run_launch(actor=manager, campaign=campaign)
    dialer = NoopDialer()

    started = time.perf_counter()
    ticks = 0
    while Dial.objects.filter(run=run).count() < CONTACTS:
        run_tick(run_id=run.pk, dialer=dialer)
        ticks += 1
        if ticks > CONTACTS:
            raise RuntimeError("the scheduler stopped dialing")
    scheduler_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for n in range(CONTACTS):
        CallSession.objects.create(
            source="bench-agent",
            owner=manager,
            team=team,
            campaign=campaign,
            direction=CallSession.Direction.OUTBOUND,
            origin=CallSession.Origin.CAMPAIGN,
            from_number="+12025550100",
            to_number=f"+1303{n:07d}",
            metadata={"run": run.pk, "attempt": 1},
        )
    bare_seconds = time.perf_counter() - started

    per_dial_us = scheduler_seconds / CONTACTS * 1e6
    per_row_us = bare_seconds / CONTACTS * 1e6
    ratio = per_dial_us / per_row_us
    print(f"  {CONTACTS} dials in {ticks} ticks: {scheduler_seconds:.2f} s ({per_dial_us:.0f} us per dial)")
    print(f"  {CONTACTS} bare CallSession inserts: {bare_seconds:.2f} s ({per_row_us:.0f} us per row)")
    return {
        "name": f"scheduler per dial vs bare session insert ({CONTACTS} contacts, SQLite)",
        "value": round(per_dial_us),
        "baseline": round(per_row_us),
        "unit": "us",
        "ratio": round(ratio, 2),
        "target": f"<= {TARGET_RATIO:g}x",
        "ok": ratio <= TARGET_RATIO,
    }


if __name__ == "__main__":
    sys.exit(main())
