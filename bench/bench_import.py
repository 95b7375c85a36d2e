"""The contact import (``campaigns.imports``: upload check, then the background import in batches) of a
50,000-row CSV against parsing the same file with Python's csv module.

The file is what a campaign manager exports from a CRM: name, mobile number (national US format, read with the
default region), company, e-mail, a custom "Tier" column; 2 % of the numbers are invalid, 1 % repeat an earlier
row, and 5 % of the rows are contacts the team already has (updated). Baseline: ``csv.reader`` over the same bytes
decoded as UTF-8, every row materialised, the faster of three runs. Measured: ``contact_import_create`` (decode,
sniff, check every row, store the file) plus ``contact_import_start`` and ``contact_import_process`` (the Celery
task's body, in-process: no broker in the measurement), with the report of every row written. Target: at most
400x the parse. The csv module parses in C at about 2 us a row, while every imported row is also a phone number
validated by libphonenumber (pure Python, some 50 us) and two ORM inserts (a contact and its report row), so
100-300x is what a sound import costs; 400x is 0.9 ms a row, 45 s for the file.

Second measurement, against the floor for the writes: a bare ``bulk_create`` of the same 50,000 contacts and
50,000 report rows, with nothing read, checked or planned. Target: the whole import within 3x that floor.

Where the time goes is printed: phone normalisation (libphonenumber), the rest of the row reading and planning,
and the batches' SQL (statement count and time in the database driver).

Everything is throw-away: a temp folder as CALLBOOK_VAR_DIR (SQLite and the stored file there), or with
``DATABASE_URL=postgres://...`` a dedicated database ``callbook_bench_import`` on that server, created and dropped
here. Nothing is contacted but that database. Exits non-zero on a crash only; a missed target shows as
``"ok": false``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # crm, campaigns: the script runs as bench/<file>.py from anywhere

BENCH_DATABASE = "callbook_bench_import"
ROWS = 50_000
RATIO_TARGET = 400.0
FLOOR_TARGET = 3.0
HARD_LIMIT_SECONDS = 170


def postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.split("://", 1)[0] in {"postgres", "postgresql", "pgsql", "psql"} else None


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _pg_admin(url: str, statement: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_with_database(url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(BENCH_DATABASE)))


def bench_env(var_dir: Path, pg: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY_FILE"):
        env.pop(name, None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "crm.settings",
            "CALLBOOK_VAR_DIR": str(var_dir),
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-secret-key-" + os.urandom(16).hex(),
            "LOG_LEVEL": "WARNING",
            "CONTACT_IMPORT_MAX_BYTES": str(100 * 1024 * 1024),
        }
    )
    if pg is not None:
        env["DATABASE_URL"] = _with_database(pg, BENCH_DATABASE)
    return env


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"benchmark exceeded {HARD_LIMIT_SECONDS} s")


def make_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Name", "Mobile", "Company", "E-mail", "Tier"])
    for i in range(rows):
        phone = f"(202) 55{i // 10000 % 10}-{i % 10000:04d}"
        if i % 50 == 17:
            phone = "555-01"  # invalid
        elif i % 100 == 42 and i > 100:
            phone = f"(202) 55{(i - 100) // 10000 % 10}-{(i - 100) % 10000:04d}"  # repeats an earlier row
        writer.writerow(
            [f"Person {i}", phone, f"Company {i % 500}", f"person{i}@example.com", ("gold", "silver")[i % 2]]
        )
    return out.getvalue().encode()


def baseline_parse(raw: bytes) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
        best = min(best, time.perf_counter() - started)
        assert len(rows) == ROWS + 1
    return best


def result(*, name: str, value: float, baseline: float, unit: str, target: str, ok: bool) -> None:
    row = {
        "name": name,
        "value": round(value, 3),
        "baseline": round(baseline, 3),
        "unit": unit,
        "ratio": round(value / baseline, 1) if baseline else 0.0,
        "target": target,
        "ok": ok,
    }
    print("RESULT " + json.dumps(row), flush=True)


@contextmanager
def timed(totals: dict[str, float], key: str, target: Any, name: str) -> Iterator[None]:
    """Adds the time spent in ``target.name`` to ``totals[key]`` while the block runs."""
    original = getattr(target, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - started

    setattr(target, name, wrapper)
    try:
        yield
    finally:
        setattr(target, name, original)


def run() -> None:  # noqa: PLR0915  # one linear script: phases read top to bottom
    from collections import defaultdict

    from django.db import connection

    from campaigns import imports
    from campaigns.models import Contact, ContactImportRow
    from crm.models import Team, User

    team = Team.objects.create(name="Bench team")
    manager = User.objects.create(username="bench-manager", role=User.Role.MANAGER, team=team)
    team.manager = manager
    team.save(update_fields=["manager"])
    raw = make_csv(ROWS)
    # 5 % of the rows are contacts the team already has: those rows update them.
    Contact.objects.bulk_create(
        [
            Contact(team=team, name=f"Old {i}", phone=f"+1202550{i:04d}", timezone="America/New_York")
            for i in range(0, ROWS // 10, 2)
            if i % 50 != 17
        ]
    )
    print(
        f"Callbook contact import bench: {connection.vendor}, {os.cpu_count()} CPUs; {ROWS:,} rows, "
        f"{len(raw) / 1024 / 1024:.1f} MiB",
        flush=True,
    )
    parse = baseline_parse(raw)
    print(f"  baseline, csv.reader over the decoded file (faster of 3): {parse:.3f} s")

    totals: dict[str, float] = defaultdict(float)
    statements = {"n": 0, "seconds": 0.0}

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements["n"] += 1
            statements["seconds"] += time.perf_counter() - started

    def no_broker(*, import_id: int) -> bool:
        return True  # the task's body runs in-process below

    with (
        timed(totals, "phone_normalize", imports, "phone_normalize"),
        timed(totals, "read_rows", imports, "_read_row"),
        timed(totals, "plan", imports, "_plan"),
        timed(totals, "commit_batches", imports, "_commit_batch"),
        connection.execute_wrapper(count),
    ):
        imports.contact_import_enqueue = no_broker
        started = time.perf_counter()
        contact_import, _ = imports.contact_import_create(
            actor=manager, team=team, raw=raw, filename="bench.csv", default_region="US"
        )
        uploaded = time.perf_counter() - started
        imports.contact_import_start(actor=manager, contact_import=contact_import)
        outcome = imports.contact_import_process(import_id=contact_import.pk, time_budget=3600)
        elapsed = time.perf_counter() - started
    contact_import.refresh_from_db()
    assert outcome == "completed", (outcome, contact_import.error)
    assert contact_import.processed_rows == ROWS
    assert ContactImportRow.objects.filter(contact_import=contact_import).count() == ROWS
    print(
        f"  import: {elapsed:.2f} s ({ROWS / elapsed:,.0f} rows/s): upload check and storage {uploaded:.2f} s; "
        f"imported {contact_import.imported:,}, updated {contact_import.updated:,}, skipped {contact_import.skipped:,}"
    )
    reading = totals["read_rows"] - totals["phone_normalize"]
    planning_sql = totals["plan"]
    writes = totals["commit_batches"] - planning_sql
    print(f"    phone_normalize (libphonenumber):          {totals['phone_normalize']:6.2f} s")
    print(f"    the rest of reading rows through the mapping: {reading:6.2f} s")
    print(f"    planning (existing contacts, do-not-call):  {planning_sql:6.2f} s")
    print(f"    batch writes (contacts, report, counters):  {writes:6.2f} s")
    print(
        f"    {statements['n']} SQL statements ({statements['n'] / (ROWS / imports.BATCH_ROWS):.1f} per batch of "
        f"{imports.BATCH_ROWS}), {statements['seconds']:.2f} s inside the database driver"
    )

    # Informative floor: the same rows written with bare bulk_creates.
    floor_team = Team.objects.create(name="Floor team")
    floor_import = type(contact_import).objects.create(team=floor_team, file="floor.csv", total_rows=ROWS)
    started = time.perf_counter()
    contacts = Contact.objects.bulk_create(
        [Contact(team=floor_team, name=f"Person {i}", phone=f"+1203{i:07d}") for i in range(ROWS)],
        batch_size=imports.BATCH_ROWS,
    )
    ContactImportRow.objects.bulk_create(
        [
            ContactImportRow(contact_import=floor_import, row_number=i + 2, outcome="imported", contact=contact,
                             data={"Name": contact.name})
            for i, contact in enumerate(contacts)
        ],
        batch_size=imports.BATCH_ROWS,
    )  # fmt: skip
    floor = time.perf_counter() - started
    print(f"  floor: bare bulk_create of {ROWS:,} contacts and report rows: {floor:.2f} s")

    result(
        name="contact import, 50k rows / csv parse",
        value=elapsed,
        baseline=parse,
        unit="s",
        target=f"<= {RATIO_TARGET:.0f}x",
        ok=elapsed / parse <= RATIO_TARGET,
    )
    result(
        name="contact import, 50k rows / bare bulk_create",
        value=elapsed,
        baseline=floor,
        unit="s",
        target=f"<= {FLOOR_TARGET:.0f}x",
        ok=elapsed / floor <= FLOOR_TARGET,
    )


def main() -> int:
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(HARD_LIMIT_SECONDS)
    pg = postgres_url()
    with tempfile.TemporaryDirectory(prefix="callbook-bench-import-") as tmp:
        env = bench_env(Path(tmp), pg)
        if pg is not None:
            _pg_admin(pg, "DROP DATABASE IF EXISTS {} WITH (FORCE)")
            _pg_admin(pg, "CREATE DATABASE {}")
        try:
            os.environ.clear()
            os.environ.update(env)
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", interactive=False, verbosity=0)
            run()
        finally:
            if pg is not None:
                from django.db import connections

                connections.close_all()
                _pg_admin(pg, "DROP DATABASE IF EXISTS {} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
