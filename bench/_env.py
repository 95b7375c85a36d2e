"""What every benchmark needs around its measurement: a throw-away environment, Django, and the result line.

A benchmark script does::

    import _env  # puts the project on sys.path; then crm, calls, ... import as usual

    def main() -> int:
        _env.hard_limit(170)  # a hang aborts instead of holding the machine
        with _env.bench_environment(database="callbook_bench_mine") as bench:
            _env.setup_django()  # django.setup() + migrate, in the bench database
            ...  # seed, measure; bench.env is the environment to hand to a server or worker it starts
        _env.result(name="...", value=..., baseline=..., unit="s", target="<= 3.00", ok=...)
        return 0

``bench_environment`` makes a temp folder for CALLBOOK_VAR_DIR (SQLite goes there) and, with
``DATABASE_URL=postgres://...`` set, a dedicated database of the given name on that server, dropped again on the
way out (also after a crash, and one left over by an interrupted run is dropped first). It replaces
``os.environ`` with the bench's own (no shared cache, broker, S3 bucket or secret file from the caller's
environment: nothing outside the temp folders and the bench database is touched) and restores it afterwards.
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # crm, calls, tests: the scripts run as bench/<file>.py from anywhere

# Variables of the caller's environment that would reach outside the bench's own temp folders and database.
OUTSIDE = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "RECORDINGS_S3_BUCKET",
    "STATIC_ROOT",
    "SECRET_KEY_FILE",  # would win over the SECRET_KEY set here
)


def postgres_url() -> str | None:
    """The PostgreSQL server asked for by DATABASE_URL; any other URL is ignored (bench data goes to a temp DB)."""
    url = os.environ.get("DATABASE_URL", "")
    return url if url.split("://", 1)[0] in {"postgres", "postgresql", "pgsql", "psql"} else None


def redis_broker_url() -> str | None:
    """The Redis broker asked for by CELERY_BROKER_URL, if any; without one the embedded filesystem broker."""
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.split("://", 1)[0] in {"redis", "rediss"} else None


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _pg_admin(url: str, statement: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    # The maintenance database: the one named in DATABASE_URL may not exist, and the bench one is being dropped.
    with psycopg.connect(with_database(url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(database)))


def pg_recreate(url: str, database: str) -> None:
    pg_drop(url, database)  # left over from an interrupted run
    _pg_admin(url, "CREATE DATABASE {}", database)


def pg_drop(url: str, database: str) -> None:
    # FORCE: a server or worker killed mid-request may leave a backend behind for a moment.
    _pg_admin(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", database)


def tmpfs_parent(min_free: int = 2 * 1024**3) -> str | None:
    """The shared-memory folder when it is writable with ``min_free`` bytes free, else None (the default temp).

    For a store of files the bench writes and reads back: both sides of a ratio read it from memory either way
    (warm page, dentry and inode caches), but tmpfs has no write-back running in the background while the clock
    runs, and removing 100,000 folders there is instant (on a disk mounted with ``discard``, minutes).
    """
    shm = Path("/dev/shm")  # noqa: S108  # only a parent: the store is a private mkdtemp folder in it
    try:
        stats = os.statvfs(shm)
    except OSError:
        return None
    room = stats.f_bavail * stats.f_frsize
    return str(shm) if os.access(shm, os.W_OK) and room > min_free else None


@dataclass(frozen=True)
class BenchEnvironment:
    env: dict[str, str]  # the environment in force (also in os.environ): hand it to servers and workers
    var_dir: Path  # CALLBOOK_VAR_DIR
    recordings: Path  # RECORDINGS_ROOT
    postgres: str | None  # the bench database's URL, or None on SQLite


@contextlib.contextmanager
def bench_environment(
    *,
    database: str,
    recordings_on_tmpfs: bool = False,
    broker: str | None = None,
    settings: Mapping[str, str] | None = None,
    unset: tuple[str, ...] = (),
) -> Iterator[BenchEnvironment]:
    """A throw-away Callbook environment, in force in ``os.environ`` while the block runs.

    ``database``: the PostgreSQL database to create (when DATABASE_URL names a PostgreSQL server) and drop.
    ``recordings_on_tmpfs``: RECORDINGS_ROOT in a temp folder on tmpfs when there is one (see ``tmpfs_parent``).
    ``broker``: a Redis CELERY_BROKER_URL for workers the bench starts (``redis_broker_url()``); else the embedded
    filesystem broker under the temp folder. ``settings``: more variables (they win); ``unset``: more to remove.
    Django's connections are closed before the database is dropped, if Django was set up.
    """
    saved = dict(os.environ)
    pg = postgres_url()
    with contextlib.ExitStack() as stack:
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{database}-")))
        store = var_dir
        if recordings_on_tmpfs:
            store = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{database}-store-", dir=tmpfs_parent()))
            )
        env = {name: value for name, value in saved.items() if name not in OUTSIDE and name not in unset}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "crm.settings",
                "CALLBOOK_VAR_DIR": str(var_dir),
                "RECORDINGS_ROOT": str(store / "recordings"),
                "DEBUG": "0",
                "SECRET_KEY": "bench-only-secret-key-" + os.urandom(16).hex(),
                "SECURE_SSL_REDIRECT": "false",
                "ALLOWED_HOSTS": "127.0.0.1,testserver",
                "LOG_LEVEL": "WARNING",
                "TRANSCRIPTION_BACKEND": "none",
            }
        )
        (var_dir / "staticfiles").mkdir()  # whitenoise warns about a missing STATIC_ROOT
        if broker is not None:
            env["CELERY_BROKER_URL"] = broker
            # Results still go to files under the temp folder, whose folder the settings create only for the
            # filesystem broker: without it a worker on Redis refuses to start.
            (var_dir / "celery" / "results").mkdir(parents=True, exist_ok=True)
        if pg is not None:
            env["DATABASE_URL"] = with_database(pg, database)
        env.update(settings or {})
        try:
            if pg is not None:
                pg_recreate(pg, database)
            os.environ.clear()
            os.environ.update(env)
            yield BenchEnvironment(
                env=env,
                var_dir=var_dir,
                recordings=store / "recordings",
                postgres=env.get("DATABASE_URL") if pg else None,
            )
        finally:
            if "django" in sys.modules:
                from django.db import connections

                with contextlib.suppress(Exception):  # not set up: nothing to close
                    connections.close_all()
            if pg is not None:
                pg_drop(pg, database)
            os.environ.clear()
            os.environ.update(saved)


def setup_django(*, migrate: bool = True) -> None:
    """django.setup() with the bench's environment, the schema migrated into the bench database, and the process
    prepared as a worker's is (``freeze_startup_objects``)."""
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("migrate", interactive=False, verbosity=0)
    # What a Celery worker process does once it is set up, so that in-process figures are the worker's.
    from crm.celery_signals import freeze_startup_objects

    freeze_startup_objects()


def vendor() -> str:
    """The database in use, for the header line: ``postgresql (callbook_bench_x)`` or ``sqlite (/tmp/...)``."""
    from django.db import connection

    return f"{connection.vendor} ({connection.settings_dict['NAME']})"


class Budget:
    """Time left in a script bound to ``seconds``, less ``reserve`` kept for cleaning up."""

    def __init__(self, seconds: float, *, reserve: float = 15.0) -> None:
        self.deadline = time.monotonic() + seconds
        self.reserve = reserve

    def left(self) -> float:
        return self.deadline - time.monotonic() - self.reserve


def hard_limit(seconds: int) -> None:
    """Abort the script with TimeoutError after ``seconds``: past its bound it is a hang, not a measurement."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"benchmark exceeded {seconds} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)


def result(*, name: str, value: float, baseline: float, unit: str, target: str, ok: bool, digits: int = 3) -> None:
    """One measurement as the ``RESULT {...}`` line bench/run.py collects."""
    row = {
        "name": name,
        "value": round(value, digits),
        "baseline": round(baseline, digits),
        "unit": unit,
        "ratio": round(value / baseline, digits) if baseline else 0.0,
        "target": target,
        "ok": ok,
    }
    print("RESULT " + json.dumps(row), flush=True)


def load_note() -> str:
    """The machine's load while measuring (``uptime``'s averages): other work on it moves every timing."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by the processes ``pids`` (those that ended meanwhile count as 0).

    Linux only (``/proc``); elsewhere 0. Unlike wall time, it hardly moves with what else the machine runs.
    """
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ...": comm may hold spaces and parentheses; utime and stime are fields 14 and 15.
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (a server started with ``start_new_session=True`` and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def pg_backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving the database of ``database_url`` (the server must be local)."""
    import psycopg

    database = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(with_database(database_url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database]).fetchall()
    return [int(pid) for (pid,) in rows]
