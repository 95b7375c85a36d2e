"""The calls list page (``/calls/``) at 100,000 sessions against the same page at 100 sessions.

Two teams of identical shape (a manager, eight agents, the same mix of statuses, directions, durations and
recordings, spread over the same 70 days) differ only in their number of calls. The small team (100 calls) is
seeded first and its manager's pages are measured while the database holds those 100 sessions only; then the big
team's 100,000 calls are bulk-created and its manager's pages are measured; then the big team's calls are deleted
and the small team's pages measured again. The baseline is the mean of the two small-database measurements, which
bracket the big one in time, so a machine that got busier or quieter meanwhile weighs on both sides alike. Each
page is rendered in-process with Django's test ``Client`` (the whole stack: session, middleware, form, query,
template), after a warm-up, as the median of ROUNDS requests (the pages taking turns). A request's cost is this
process's CPU time outside database calls plus the wall time of those calls: what the page itself costs, whatever
else the machine is busy with (wall time on a shared 2-core machine moved by 3x between runs). The pages:

- the default page (newest first, 50 rows);
- a filtered page (``status=completed&status=busy&direction=outbound``, 50 rows);
- a deep keyset page: the 50 rows after the 90,000th call (after the 50th for the small team: its last page).

Target for each: the page at 100,000 sessions costs < 2x the page at 100 (ratio = big / small), with the same
number of queries. A control request that reads no calls (an invalid filter: form and template only) is timed in
both phases, to show how much the machine itself drifted between them.

Informative: the small team's pages again, once the database holds the big team too (a small team among large
ones). There the database may scan the created_at index past every other team's calls before it finds 50 of
this manager's; see the notes printed with it.

Everything is throw-away: a temp folder as CALLBOOK_VAR_DIR (SQLite there), or with ``DATABASE_URL=postgres://...``
a dedicated database ``callbook_bench_list`` on that server, created and dropped here. Only 127.0.0.1 is contacted.
Exits non-zero on a crash only; a missed target shows as ``"ok": false``.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import _env  # first: puts the project on sys.path

BENCH_DATABASE = "callbook_bench_list"
BIG, SMALL = 100_000, 100
AGENTS = 8
SPREAD = timedelta(days=70)
BATCH = 2_000
WARMUP = 5
ROUNDS = 25
TARGET = 2.0
DEEP = {BIG: 90_000, SMALL: 49}  # the cursor row's position (from 0) for the deep page
ROW_RE = re.compile(r'<tr data-href="/calls/')
# The whole script must stay well under 3 minutes; past this it is a hang, and it aborts.
HARD_LIMIT_SECONDS = 170


# --- Data --------------------------------------------------------------------------------------------------


@dataclass
class TeamSetup:
    calls: int
    manager: Any  # crm.models.User
    deep_cursor: str


def seed_team(name: str, calls: int) -> TeamSetup:
    """The team, its manager and agents, and ``calls`` sessions in one transaction (an SQLite commit per batch
    would mostly measure the disk)."""
    from django.db import transaction

    with transaction.atomic():
        return _seed_team(name, calls)


def analyze() -> None:
    """What autovacuum (PostgreSQL) or ``PRAGMA optimize`` (SQLite) does for a live database: fresh statistics."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _seed_team(name: str, calls: int) -> TeamSetup:
    from django.db.models import F
    from django.utils import timezone

    from calls.models import CallSession
    from calls.reports import Cursor
    from crm.models import Team, User

    team = Team.objects.create(name=name)
    manager = User.objects.create(username=f"{name}-manager", role=User.Role.MANAGER, team=team, first_name="M")
    team.manager = manager
    team.save(update_fields=["manager"])
    agents = [
        User.objects.create(username=f"{name}-agent-{i}", role=User.Role.AGENT, team=team, first_name=f"Agent {i}")
        for i in range(AGENTS)
    ]
    now = timezone.now()
    step = SPREAD / calls
    statuses = ["completed"] * 7 + ["busy", "no_answer", "failed"]
    batch: list[CallSession] = []
    for i in range(calls):
        started = now - SPREAD + step * i
        status = statuses[i % len(statuses)]
        answered = status == "completed"
        batch.append(
            CallSession(
                source="bench",
                external_id=f"{name}-{i}",
                owner=agents[i % AGENTS],
                team=team,
                direction=CallSession.Direction.OUTBOUND if i % 3 else CallSession.Direction.INBOUND,
                status=status,
                from_number="+14155550100",
                to_number=f"+1415{i % 10_000_000:07d}",
                started_at=started,
                answered_at=started + timedelta(seconds=4) if answered else None,
                ended_at=started + timedelta(seconds=4 + (i % 300)),
                duration_ms=(i % 300) * 1000 if answered else 0,
                end_reason=status,
                recording_status=(
                    CallSession.RecordingStatus.AVAILABLE if i % 10 == 0 else CallSession.RecordingStatus.NONE
                ),
                last_event_at=started,
            )
        )
        if len(batch) == BATCH:
            CallSession.objects.bulk_create(batch)
            batch = []
    if batch:
        CallSession.objects.bulk_create(batch)
    # auto_now_add stamped every row "now": give each the time its call started, as the API would have.
    CallSession.objects.filter(team=team).update(created_at=F("started_at"))
    analyze()
    created_at, pk = (
        CallSession.objects.filter(team=team)
        .order_by("-created_at", "-id")
        .values_list("created_at", "id")[DEEP[calls]]
    )
    cursor = Cursor(sort="-created", value=created_at, pk=pk).encode()
    return TeamSetup(calls=calls, manager=manager, deep_cursor=cursor)


def setup_django() -> None:
    from django.core.management import call_command
    from django.test.utils import override_settings

    _env.setup_django(migrate=False)  # migrated below, once the overrides are in place
    # Templates name static files; without collectstatic's manifest, serve their plain names.
    override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
    call_command("migrate", interactive=False, verbosity=0)


# --- Measurement -------------------------------------------------------------------------------------------

PAGES = {
    "default page": "/calls/",
    "filtered page": "/calls/?status=completed&status=busy&direction=outbound",
    "deep keyset page": "/calls/?cursor={cursor}",
}
CONTROL = "/calls/?direction=sideways"  # an invalid filter: the form and the page, no call read
ROWS = 50


@dataclass
class Figure:
    ms: float  # median cost per request (see the module's docstring)
    queries: int


def measure(setup: TeamSetup) -> dict[str, Figure]:
    """Each page of ``setup``'s manager, and the control request: median of ROUNDS, the pages taking turns."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(setup.manager)
    paths = {label: template.format(cursor=setup.deep_cursor) for label, template in PAGES.items()}
    paths["control"] = CONTROL

    in_db = _DatabaseTime()

    def get(label: str) -> float:
        in_db.reset()
        began = time.process_time()
        with connection.execute_wrapper(in_db):
            response = client.get(paths[label])
        # This process's CPU outside the database calls, plus the wall time of those calls: the page's own cost,
        # not the time other processes on the machine took from it.
        elapsed = time.process_time() - began - in_db.cpu + in_db.wall
        if response.status_code != 200:
            raise RuntimeError(f"GET {paths[label]} answered {response.status_code}")
        rows = len(ROW_RE.findall(response.content.decode()))
        if rows != (0 if label == "control" else ROWS):
            raise RuntimeError(f"GET {paths[label]} listed {rows} calls")
        return elapsed

    queries = {}
    for label in paths:
        with CaptureQueriesContext(connection) as captured:
            get(label)
        queries[label] = len(captured)
        for _ in range(WARMUP):
            get(label)
    timings: dict[str, list[float]] = {label: [] for label in paths}
    for _ in range(ROUNDS):
        for label in paths:
            timings[label].append(get(label))
    return {
        label: Figure(ms=round(statistics.median(values) * 1000, 2), queries=queries[label])
        for label, values in timings.items()
    }


class _DatabaseTime:
    """An execute_wrapper adding up the wall time and this process's CPU time spent in database calls."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def reset(self) -> None:
        self.wall = self.cpu = 0.0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return execute(sql, params, many, context)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


def show(title: str, figures: dict[str, Figure]) -> None:
    print(f"  {title}")
    for label, figure in figures.items():
        print(f"    {label:<18} {figure.ms:7.2f} ms  {figure.queries} queries", flush=True)


def explain(setup: TeamSetup) -> None:
    """The database's plan for a manager's default page: which index serves it."""
    from django.db import connection

    from calls.reports import CallListQuery, call_list_page

    with connection.execute_wrapper(_print_plan):
        call_list_page(user=setup.manager, query=CallListQuery())


def _print_plan(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    from django.db import connection

    if sql.lstrip().upper().startswith("SELECT") and "calls_callsession" in sql:
        prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        cursor = context["cursor"]
        cursor.execute(prefix + sql, params)
        plan = [str(row[-1]) for row in cursor.fetchall()]
        print("    " + "\n    ".join(line[:150] for line in plan[:14]))
    return execute(sql, params, many, context)


# --- Report ------------------------------------------------------------------------------------------------


def remove_team_calls(setup: TeamSetup) -> None:
    """Back to a small database: the big team's sessions go (they have no events, recordings or notes)."""
    from django.db import connection

    from calls.models import CallSession

    with connection.cursor() as cursor:
        table = CallSession._meta.db_table  # the model's own name; the value is a parameter
        cursor.execute(f"DELETE FROM {table} WHERE team_id = %s", [setup.manager.team_id])  # noqa: S608
        # Dead rows and index entries would otherwise still be walked (PostgreSQL) or kept in the file (SQLite).
        cursor.execute("VACUUM")
    analyze()


def run() -> tuple[dict[str, Figure], dict[str, Figure], dict[str, Figure], dict[str, Figure]]:
    from django.db import connection

    began = time.monotonic()
    setup_django()
    small = seed_team("small", SMALL)
    print(
        f"Callbook list page bench: {connection.vendor} ({connection.settings_dict['NAME']}), {os.cpu_count()} CPUs; "
        f"median of {ROUNDS} requests after {WARMUP} warm-up ones, in-process test Client",
        flush=True,
    )
    alone = measure(small)
    show(f"{SMALL} sessions in the database, the small team's manager:", alone)
    seeded = time.monotonic()
    big = seed_team("big", BIG)
    print(f"  (bulk-created {BIG:,} sessions in {time.monotonic() - seeded:.1f} s)")
    print("  plan of the big team's default page:")
    explain(big)
    at_scale = measure(big)
    show(f"{BIG + SMALL:,} sessions in the database, the big team's manager:", at_scale)
    among = measure(small)
    show(f"{BIG + SMALL:,} sessions in the database, the small team's manager (informative):", among)
    print("  plan of the small team's default page, among the big team's calls:")
    explain(small)
    remove_team_calls(big)
    again = measure(small)
    show(f"{SMALL} sessions in the database again (the big team's deleted), the small team's manager:", again)
    print(f"  set up and measured in {time.monotonic() - began:.1f} s")
    return alone, at_scale, among, again


def main() -> int:
    began = time.monotonic()
    _env.hard_limit(HARD_LIMIT_SECONDS)
    # TIME_ZONE unset: the pages render in the default zone, the same whatever the caller's environment says.
    with _env.bench_environment(database=BENCH_DATABASE, unset=("TIME_ZONE",)):
        before, at_scale, among, after = run()
    # The baseline is measured before the big team's calls exist and again after they are deleted: the mean of the
    # two brackets whatever the machine's speed did in between (the control request shows how much that was).
    alone = {
        label: Figure(ms=round((before[label].ms + after[label].ms) / 2, 2), queries=before[label].queries)
        for label in before
    }
    print(
        "control request (no call read), before / at 100k / after: "
        f"{before['control'].ms} / {at_scale['control'].ms} / {after['control'].ms} ms"
    )
    for label in PAGES:
        big, small = at_scale[label], alone[label]
        ratio = big.ms / small.ms if small.ms else float("inf")
        _env.result(
            name=f"list {label}: {BIG // 1000}k / {SMALL} sessions",
            value=big.ms,
            baseline=small.ms,
            unit="ms",
            target=f"< {TARGET:.2f}",
            ok=ratio < TARGET and big.queries == small.queries == after[label].queries,
            digits=2,
        )
    crowded = among["default page"]
    _env.result(
        name=f"list default page, {SMALL}-call team among {BIG // 1000}k",
        value=crowded.ms,
        baseline=alone["default page"].ms,
        unit="ms",
        target=f"< {TARGET:.2f} (informative)",
        ok=crowded.ms / alone["default page"].ms < TARGET if alone["default page"].ms else False,
        digits=2,
    )
    print(f"done in {time.monotonic() - began:.1f} s; {_env.load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
