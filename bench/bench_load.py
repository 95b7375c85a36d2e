"""Load: 32 concurrent voice agents creating sessions and posting their events through gunicorn on PostgreSQL,
against a bare DRF endpoint of the same server in the same run; then a check that nothing was lost.

Each client is a voice agent placing one call after another: ``POST /api/crm/sessions/`` (a new external id),
then ``initiated``, ``ringing``, ``answered``, ``completed`` with provider event ids. A fifth of the event posts
are duplicates (the same event id sent again, as a webhook retry would); one call in ten reports ``answered``
before ``ringing``, and one in ten sends a late ``ringing`` after ``completed`` (out-of-order delivery). The
baseline is ``GET /api/crm/`` (the API root: same token authentication and middleware, no session query) driven
by the same clients, in runs interleaved with the load's. Reported: requests/s and p50/p99 latency
of both, the ratio of requests/s (informative: a write with its locks and status check against a read of one
token), and afterwards, in the database:
- acknowledged events lost (a 201 whose row is missing): must be 0;
- events stored twice (an event id twice in a session, or a second terminal event): must be 0;
- statuses that went backwards (a session's timeline moving it to an earlier status, or a session ending before
  the furthest status its acknowledged events reached): must be 0.

``BENCH_LOAD_SECONDS`` (default 60) and ``BENCH_LOAD_CLIENTS`` (default 32) shorten or shrink the run. The
database: with ``DATABASE_URL=postgres://...`` a dedicated database ``callbook_bench_load`` on that server, created
and dropped here; otherwise a PostgreSQL server of the bench's own (initdb into a temp folder, on a free port of
127.0.0.1, as the ``postgres`` user when run as root), stopped and removed afterwards. Only 127.0.0.1 is
contacted. Exits non-zero on a crash, or when no PostgreSQL can be had; a missed target shows as ``"ok": false``.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _env  # first: puts the project on sys.path
import _server

BENCH_DATABASE = "callbook_bench_load"
SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "60"))
CLIENTS = int(os.environ.get("BENCH_LOAD_CLIENTS", "32"))
# The load runs in ROUNDS parts, each between two runs of the baseline with the same clients (bare, load, bare,
# load, ..., bare): load from outside (other processes, CPU frequency) then weighs on both sides alike.
ROUNDS = 3
BARE_SECONDS = max(2.0, min(10.0, SECONDS / ROUNDS / 4))
DUPLICATE_SHARE = 0.20  # of the event posts
SWAPPED_SHARE = 0.10  # of the calls: "answered" arrives before "ringing"
LATE_SHARE = 0.10  # of the calls: a "ringing" arrives after "completed"
GUNICORN_WORKERS, GUNICORN_THREADS = 3, 4  # the image's defaults (GUNICORN_WORKERS, GUNICORN_THREADS)
# Setup, both baselines, the load, the checks and cleaning up; past this it is a hang, and it aborts.
HARD_LIMIT_SECONDS = int(SECONDS + (ROUNDS + 1) * BARE_SECONDS + 150)
RATIO_TARGET = 0.10  # informative: see the module docstring

# A status's place in a call's life; every terminal status is the end of it.
RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in_progress": 3}
EVENT_RANK = {"initiated": 1, "ringing": 2, "answered": 3, "completed": 4}


CALL_NUMBERS = itertools.count(1)  # next() is atomic under the GIL: every call's external id is new


def rank(status: str) -> int:
    return RANK.get(status, 4)


# --- A PostgreSQL server of the bench's own ----------------------------------------------------------------


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    """Start a throw-away PostgreSQL server on a free port of 127.0.0.1; yields its URL (maintenance database)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    bindir = found[-1].parent if found else (Path(p).parent if (p := shutil.which("initdb")) else None)
    if bindir is None:
        raise SystemExit(
            "bench_load needs PostgreSQL: set DATABASE_URL=postgres://... or install the server (initdb, pg_ctl)"
        )
    # PostgreSQL refuses to run as root: then the cluster belongs to the postgres system user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="callbook-bench-pg-"))
    if as_user:
        pwd.getpwnam("postgres")  # KeyError: no such user, nothing to run the server as
        shutil.chown(folder, user="postgres")
    port = _server.free_port()
    data, log = folder / "data", folder / "server.log"

    def run(*args: str) -> None:
        subprocess.run([*as_user, str(bindir / args[0]), *args[1:]], check=True, capture_output=True, timeout=120)

    try:
        run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=100"
        run("pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


# --- The clients --------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one phase measured, merged from every client."""

    label: str
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000 if ordered else float("nan")

    def merge(self, other: Tally) -> None:
        self.ok += other.ok
        self.errors += other.errors
        self.latencies.extend(other.latencies)
        self.first_error = self.first_error or other.first_error
        self.kinds.update(other.kinds)


@dataclass
class Promises:
    """What the server acknowledged, to be found in the database afterwards."""

    sessions: set[str] = field(default_factory=set)
    events: set[tuple[str, str]] = field(default_factory=set)  # (session id, event id) answered 201
    furthest: dict[str, int] = field(default_factory=dict)  # session id -> highest rank its 201 events reached
    posted: int = 0  # event posts, first sends and duplicates
    duplicates_sent: int = 0
    duplicates_answered: int = 0  # duplicates the server answered 200 "duplicate": true
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "callbook-bench-load",
        }
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request(method, path, body=payload, headers=self.headers)
                response = self.conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                # A kept-alive connection the server closed while idle: not a failed request. Sent again once:
                # the server never saw it (and every write here is idempotent besides).
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, raw
        raise AssertionError("unreachable")


def _timed(
    client: Client, tally: Tally, kind: str, *, method: str, path: str, body: object | None = None
) -> tuple[int, bytes]:
    began = time.perf_counter()
    try:
        status, raw = client.send(method, path, body)
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, cut off, or not HTTP
        client.close()
        tally.errors += 1
        tally.first_error = tally.first_error or f"{kind}: {exc!r}"
        return 0, b""
    tally.latencies.append(time.perf_counter() - began)
    tally.kinds[kind] += 1
    if status >= 300:
        tally.errors += 1
        tally.first_error = tally.first_error or f"{kind}: HTTP {status}: {raw[:300]!r}"
    else:
        tally.ok += 1
    return status, raw


def bare_client(port: int, key: str, deadline: float, tally: Tally) -> None:
    """The baseline: the API root, as fast as the server answers."""
    client = Client(port, key)
    try:
        while time.monotonic() < deadline:
            _timed(client, tally, "bare", method="GET", path="/api/crm/")
    finally:
        client.close()


def agent_client(number: int, deadline: float, tally: Tally, *, port: int, key: str, promises: Promises) -> None:
    """A voice agent: one call after another until the deadline."""
    client = Client(port, key)
    chance = random.Random(number)  # noqa: S311  # a reproducible mix, not a secret
    # Every original post is repeated with this probability: duplicates are then DUPLICATE_SHARE of the posts.
    repeat = DUPLICATE_SHARE / (1 - DUPLICATE_SHARE)
    try:
        while time.monotonic() < deadline:
            external_id = f"load-{number}-{next(CALL_NUMBERS)}"
            created = {"source": "bench", "external_id": external_id}
            status, raw = _timed(client, tally, "create", method="POST", path="/api/crm/sessions/", body=created)
            if status != 201:
                continue
            session_id = json.loads(raw)["id"]
            with promises.lock:
                promises.sessions.add(session_id)
            started = datetime.now(UTC) - timedelta(seconds=30)
            order = ["initiated", "ringing", "answered", "completed"]
            if chance.random() < SWAPPED_SHARE:
                order = ["initiated", "answered", "ringing", "completed"]
            plan = [(event_type, f"{external_id}-{event_type}") for event_type in order]
            if chance.random() < LATE_SHARE:
                plan.append(("ringing", f"{external_id}-late-ringing"))
            for event_type, event_id in plan:
                if time.monotonic() >= deadline:
                    break  # the rest of this call is simply never reported: nothing was promised for it
                occurred = started + timedelta(seconds=EVENT_RANK[event_type] * 5)
                body = {"type": event_type, "event_id": event_id, "occurred_at": occurred.isoformat()}
                path = f"/api/crm/sessions/{session_id}/events/"
                status, _ = _timed(client, tally, "event", method="POST", path=path, body=body)
                with promises.lock:
                    promises.posted += 1
                if status == 201:
                    with promises.lock:
                        promises.events.add((session_id, event_id))
                        reached = promises.furthest.get(session_id, 0)
                        promises.furthest[session_id] = max(reached, EVENT_RANK[event_type])
                if chance.random() < repeat:
                    status, raw = _timed(client, tally, "duplicate", method="POST", path=path, body=body)
                    with promises.lock:
                        promises.posted += 1
                        promises.duplicates_sent += 1
                    if status == 200 and json.loads(raw).get("duplicate") is True:
                        with promises.lock:
                            promises.duplicates_answered += 1
                    elif status < 300:
                        tally.errors += 1
                        tally.first_error = (
                            tally.first_error or f"duplicate not recognised: HTTP {status} {raw[:200]!r}"
                        )
    finally:
        client.close()


def phase(label: str, seconds: float, client: Callable[[int, float, Tally], None]) -> Tally:
    """Run CLIENTS threads of ``client(number, deadline, tally)`` for ``seconds``; their tallies merged."""
    tallies = [Tally(label) for _ in range(CLIENTS)]
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(number, deadline, tally), daemon=True)
        for number, tally in enumerate(tallies)
    ]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Tally(label, seconds=time.perf_counter() - began)
    for tally in tallies:
        total.merge(tally)
    return total


def describe(tally: Tally) -> str:
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(tally.kinds.items()))
    text = (
        f"  {tally.label:<12} {tally.rps:8.1f} req/s   p50 {tally.percentile(0.50):7.1f} ms   "
        f"p99 {tally.percentile(0.99):7.1f} ms   {tally.ok} ok, {tally.errors} errors in {tally.seconds:.1f} s "
        f"({kinds})"
    )
    return text + (f"\n    first error: {tally.first_error}" if tally.errors else "")


# --- Afterwards: the database ---------------------------------------------------------------------------------


@dataclass
class Audit:
    lost: int
    twice: int
    backwards: int
    stored_events: int
    late_kept: int  # late events stored without moving the status (the out-of-order ones)


def audit(promises: Promises) -> Audit:
    from django.db.models import Count

    from calls.models import CallEvent, CallSession
    from calls.states import TERMINAL_EVENT_TYPES

    sessions = CallSession.objects.filter(source="bench")
    stored = set(
        CallEvent.objects.filter(session__source="bench").exclude(event_id="").values_list("session_id", "event_id")
    )
    stored_pairs = {(str(session_id), event_id) for session_id, event_id in stored}
    lost = len(promises.events - stored_pairs)
    twice_ids = (
        CallEvent.objects.filter(session__source="bench")
        .exclude(event_id="")
        .values("session_id", "event_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    twice_terminal = (
        CallEvent.objects.filter(session__source="bench", type__in=sorted(TERMINAL_EVENT_TYPES))
        .values("session_id", "type")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    backwards = 0
    final = dict(sessions.values_list("pk", "status"))
    timelines: dict[uuid.UUID, list[tuple[str, str]]] = {}
    for session_pk, before, after in (
        CallEvent.objects.filter(session__source="bench")
        .order_by("id")
        .values_list("session_id", "status_before", "status_after")
    ):
        if after:
            timelines.setdefault(session_pk, []).append((before, after))
    for moves in timelines.values():
        # Each move starts where the last one ended and goes forward.
        previous = "queued"
        for before, after in moves:
            if before != previous or rank(after) <= rank(before):
                backwards += 1
                break
            previous = after
    for session_id, reached in promises.furthest.items():
        status = final.get(uuid.UUID(session_id))
        if status is None or rank(status) < reached:
            backwards += 1
    late_kept = CallEvent.objects.filter(session__source="bench", type="ringing", status_after="").count()
    return Audit(
        lost=lost,
        twice=twice_ids + twice_terminal,
        backwards=backwards,
        stored_events=len(stored_pairs),
        late_kept=late_kept,
    )


# --- Main ---------------------------------------------------------------------------------------------------


def seed() -> str:
    from crm.models import Team, User
    from crm.services import api_token_create

    team = Team.objects.create(name="Load team")
    user = User.objects.create(username="load-agent", role=User.Role.AGENT, team=team)
    return api_token_create(user=user, name="bench-load")[1]


def run(database_server: str | None) -> int:
    from django.db import connections

    settings = {"DATABASE_URL": database_server} if database_server else {}
    with contextlib.ExitStack() as stack:
        if database_server:
            # bench_environment creates the bench database on the server DATABASE_URL names.
            stack.enter_context(_patched_environ(settings))
        bench = stack.enter_context(_env.bench_environment(database=BENCH_DATABASE))
        _env.setup_django()
        print(f"Callbook load bench: {_env.vendor()}; {_env.load_note()}", flush=True)
        key = seed()
        connections.close_all()  # gunicorn gets the database to itself
        log = bench.var_dir / "gunicorn.log"
        port = _server.free_port()
        server = _server.start_gunicorn(
            env=bench.env, port=port, log=log, workers=GUNICORN_WORKERS, threads=GUNICORN_THREADS
        )
        try:
            _server.wait_healthy(server, port, log=log)
            per_round = SECONDS / ROUNDS
            print(
                f"gunicorn -w {GUNICORN_WORKERS} --threads {GUNICORN_THREADS} on 127.0.0.1:{port}; {CLIENTS} clients; "
                f"{ROUNDS} load runs of {per_round:.0f} s, each between baseline runs of {BARE_SECONDS:.0f} s",
                flush=True,
            )
            promises = Promises()

            def baseline(number: int, deadline: float, tally: Tally) -> None:
                bare_client(port, key, deadline, tally)

            def agent(number: int, deadline: float, tally: Tally) -> None:
                agent_client(number, deadline, tally, port=port, key=key, promises=promises)

            # Every worker thread opens its connection and runs both code paths before the clock runs.
            phase("warm-up", 1.0, baseline)
            phase("warm-up", 2.0, agent)
            timeline = [phase("bare", BARE_SECONDS, baseline)]
            for _ in range(ROUNDS):
                timeline += [phase("load", per_round, agent), phase("bare", BARE_SECONDS, baseline)]
        finally:
            _server.kill_group(server)
        if "Traceback" in _server.tail(log, 1_000_000):
            print(f"gunicorn logged errors:\n{_server.tail(log)}")
        bare, load = Tally("bare"), Tally("load")
        for tally in timeline:
            total = bare if tally.label == "bare" else load
            total.merge(tally)
            total.seconds += tally.seconds
        ratios = [
            tally.rps / ((timeline[i - 1].rps + timeline[i + 1].rps) / 2)
            for i, tally in enumerate(timeline)
            if tally.label == "load" and timeline[i - 1].rps and timeline[i + 1].rps
        ]
        for tally in (bare, load):
            print(describe(tally))
        print(f"  load / bare, run by run: {', '.join(f'{ratio:.2f}' for ratio in ratios)}")
        checked = audit(promises)
        connections.close_all()
    report(bare=bare, load=load, promises=promises, checked=checked)
    return 0


@contextlib.contextmanager
def _patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def report(*, bare: Tally, load: Tally, promises: Promises, checked: Audit) -> None:
    # Counted over the whole run, warm-up included: the database holds all of it.
    if promises.posted:
        print(
            f"  {len(promises.sessions)} sessions and {len(promises.events)} events acknowledged; "
            f"{promises.duplicates_sent} duplicates sent ({promises.duplicates_sent / promises.posted:.0%} of event "
            f"posts), {promises.duplicates_answered} answered as duplicates; {checked.stored_events} events stored; "
            f"{checked.late_kept} late events kept without moving the status"
        )
    clean = load.errors == 0 and bare.errors == 0
    _env.result(
        name=f"load: {CLIENTS} clients writing, rps / bare DRF rps",
        value=load.rps,
        baseline=bare.rps,
        unit="req/s",
        target=f">= {RATIO_TARGET:.2f} (informative)",
        ok=clean and bare.rps > 0 and load.rps / bare.rps >= RATIO_TARGET,
        digits=2,
    )
    _env.result(
        name="load: p50 latency / bare p50",
        value=load.percentile(0.50),
        baseline=bare.percentile(0.50),
        unit="ms",
        target="informative",
        ok=clean,
        digits=1,
    )
    _env.result(
        name="load: p99 latency / bare p99",
        value=load.percentile(0.99),
        baseline=bare.percentile(0.99),
        unit="ms",
        target="informative",
        ok=clean,
        digits=1,
    )
    acknowledged = len(promises.events)
    for name, value in (
        ("load: acknowledged events lost", checked.lost),
        ("load: events stored twice", checked.twice),
        ("load: statuses that went backwards", checked.backwards),
    ):
        _env.result(
            name=name,
            value=value,
            baseline=acknowledged,
            unit="events",
            target="== 0",
            ok=value == 0 and acknowledged > 0 and promises.duplicates_answered == promises.duplicates_sent > 0,
        )


def main() -> int:
    began = time.monotonic()
    _env.hard_limit(HARD_LIMIT_SECONDS)
    server = _env.postgres_url()
    if server is not None:
        code = run(None)
    else:
        with private_postgres() as url:
            code = run(url)
    print(f"done in {time.monotonic() - began:.1f} s; {_env.load_note()}")
    return code


if __name__ == "__main__":
    sys.exit(main())
