"""Session API under gunicorn, against a bare DRF endpoint of the same server in the same run.

Measures the requests/s of ``GET /api/crm/sessions/<id>`` (a session with 10 events, 2 notes, a recording and a
transcript) and of ``GET /api/crm/sessions/?page_size=50`` against ``GET /api/crm/`` (the API root: same token
authentication, same middleware, no session query), and counts the list endpoint's queries at page sizes 10, 50
and 200 in-process. Targets: detail >= 60 % of the bare endpoint's req/s; list page of 50 >= 30 % (informative);
list queries constant in the page size; detail queries constant in the number of events and notes.

Everything is throw-away: a temp folder as CALLBOOK_VAR_DIR (SQLite there), or with
``DATABASE_URL=postgres://...`` a dedicated database ``callbook_bench`` on that server, created and dropped here.
Only 127.0.0.1 is contacted. Exits non-zero on a crash only; a missed target shows as ``"ok": false``.
"""

from __future__ import annotations

import itertools
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import _env  # first: puts the project on sys.path
import _server

BENCH_DATABASE = "callbook_bench"
SESSIONS = 2_000
# The bulk sessions' timeline: (event type, seconds after start, status before, status after).
BULK_TIMELINE = (
    ("initiated", 0, "queued", "initiated"),
    ("answered", 5, "initiated", "in_progress"),
    ("completed", 65, "in_progress", "completed"),
)
# The load generator: per endpoint at most this many requests or seconds in all, whichever comes first, spread
# over ROUNDS short runs interleaved with runs of the bare endpoint (see main).
THREADS = 4
MAX_REQUESTS = 2_000
MAX_SECONDS = 10.0
ROUNDS = 4
WARMUP_REQUESTS = 100
# The whole script must stay well under 3 minutes on 2 cores; past this it is a hang, and it aborts.
HARD_LIMIT_SECONDS = 170

DETAIL_TARGET = 0.60
LIST_TARGET = 0.30  # informative: a page of 50 serialised rows is not expected to cost what one row does


# --- Data --------------------------------------------------------------------------------------------------


@dataclass
class Seed:
    key: str
    detail_id: str  # 10 events, 2 notes, a recording and a transcript
    lean_id: str  # 1 event, 1 note, 1 segment: the detail's query count must not depend on how much it holds


def seed() -> Seed:
    from django.utils import timezone

    from calls.models import CallEvent, CallSession, Recording, Transcript, TranscriptSegment
    from calls.services import EventInput, SessionInput, call_event_record, call_session_create, note_create
    from crm.models import Team, User
    from crm.services import api_token_create

    team = Team.objects.create(name="Bench team")
    user = User.objects.create(username="bench-agent", role=User.Role.AGENT, team=team, first_name="Bench")
    _, key = api_token_create(user=user, name="bench")

    # Bulk rows for the list: completed calls with a plausible timeline; services would take minutes for 2,000.
    now = timezone.now()
    sessions: list[CallSession] = []
    events: list[CallEvent] = []
    for i in range(SESSIONS):
        started = now - timedelta(minutes=SESSIONS - i)
        session = CallSession(
            source="pipecat-prod",
            external_id=f"bench-{i}",
            owner=user,
            team=team,
            direction=CallSession.Direction.OUTBOUND if i % 3 else CallSession.Direction.INBOUND,
            status=CallSession.Status.COMPLETED,
            from_number="+14155550100",
            to_number=f"+1415555{i:04d}",
            started_at=started,
            answered_at=started + timedelta(seconds=5),
            ended_at=started + timedelta(seconds=65),
            duration_ms=60_000,
            end_reason="completed",
            last_event_at=started + timedelta(seconds=65),
            recording_status=(
                CallSession.RecordingStatus.AVAILABLE if i % 10 == 0 else CallSession.RecordingStatus.NONE
            ),
            metadata={"agent": "pipecat", "campaign": "spring", "attempt": i % 4},
        )
        sessions.append(session)
        events.extend(
            CallEvent(
                session=session,
                type=event_type,
                occurred_at=started + timedelta(seconds=offset),
                data={"sip_code": 200},
                status_before=before,
                status_after=after,
            )
            for event_type, offset, before, after in BULK_TIMELINE
        )
    CallSession.objects.bulk_create(sessions, batch_size=500)
    CallEvent.objects.bulk_create(events, batch_size=2_000)
    Recording.objects.bulk_create(
        [
            Recording(
                session=session,
                file=f"sessions/{session.pk}/recording.wav",
                format="wav",
                content_type="audio/wav",
                status=Recording.Status.AVAILABLE,
                duration_ms=60_000,
            )
            for session in sessions[::10]
        ]
    )

    # The detail session goes through the services, as a voice agent's calls would.
    detail, _ = call_session_create(
        actor=user,
        data=SessionInput(source="pipecat-prod", external_id="bench-detail", from_number="+14155550100"),
    )
    start = timezone.now() - timedelta(minutes=2)
    detail_events = ["initiated", "ringing", "answered", "dtmf", "hold", "unhold", "transfer", "dtmf", "speech", "bye"]
    for i, event_type in enumerate(detail_events):
        call_event_record(
            session_id=detail.pk,
            event=EventInput(
                type=event_type, event_id=f"evt-{i}", occurred_at=start + timedelta(seconds=5 * i), data={"n": i}
            ),
        )
    note_create(author=user, session=detail, body="Asked for the enterprise pricing sheet.")
    note_create(author=user, session=detail, body="Call back on Thursday after 2 pm.")
    Recording.objects.create(
        session=detail,
        file=f"sessions/{detail.pk}/recording.wav",
        format="wav",
        content_type="audio/wav",
        status=Recording.Status.AVAILABLE,
        duration_ms=45_000,
    )
    transcript = Transcript.objects.create(session=detail, text="Hello ... talk to you Thursday.", language="en")
    TranscriptSegment.objects.bulk_create(
        [
            TranscriptSegment(
                transcript=transcript, position=i, speaker="agent" if i % 2 else "caller", text=f"Line {i}."
            )
            for i in range(6)
        ]
    )

    # Same shape (recording, transcript, a note), one row of each: only the row counts differ from the detail one.
    lean, _ = call_session_create(actor=user, data=SessionInput(source="pipecat-prod", external_id="bench-lean"))
    call_event_record(session_id=lean.pk, event=EventInput(type="initiated"))
    note_create(author=user, session=lean, body="Left a voicemail.")
    Recording.objects.create(session=lean, file=f"sessions/{lean.pk}/recording.wav", status=Recording.Status.AVAILABLE)
    lean_transcript = Transcript.objects.create(session=lean, text="Hello.", language="en")
    TranscriptSegment.objects.create(transcript=lean_transcript, position=0, speaker="caller", text="Hello.")
    return Seed(key=key, detail_id=str(detail.pk), lean_id=str(lean.pk))


# --- Query counts (in-process, as the test suite counts them) ----------------------------------------------


def count_queries(data: Seed) -> dict[str, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST="127.0.0.1")  # ALLOWED_HOSTS is what gunicorn gets: 127.0.0.1 only
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {data.key}")
    # The first authenticated request writes the token's last_used_at (once a minute): keep it out of the counts.
    client.get("/api/crm/")

    def count(path: str, expect: dict[str, int] | None = None) -> int:
        # Per request in the steady state: the first request of a kind on a database connection also prepares its
        # statement (PostgreSQL's PREPARE, once per connection: see calls/selectors.py), which the rest reuse.
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: {response.content[:500]!r}")
        # The answer must hold what the figures claim to measure (rows, events, notes).
        body = response.json()
        for key, wanted in (expect or {}).items():
            if len(body[key]) != wanted:
                raise RuntimeError(f"GET {path} returned {len(body[key])} {key}, not {wanted}")
        return len(queries)

    counts = {
        f"list page_size={size}": count(f"/api/crm/sessions/?page_size={size}", {"results": size})
        for size in (10, 50, 200)
    }
    counts["detail, 10 events/2 notes/6 segments"] = count(
        f"/api/crm/sessions/{data.detail_id}", {"events": 10, "notes": 2}
    )
    counts["detail, 1 event/1 note/1 segment"] = count(f"/api/crm/sessions/{data.lean_id}", {"events": 1, "notes": 1})
    counts["bare API root"] = count("/api/crm/")
    connection.close()  # gunicorn gets the database to itself
    return counts


# --- Load generator ----------------------------------------------------------------------------------------


class RawHttpClient:
    """A minimal HTTP/1.1 GET client over one socket.

    http.client spends more CPU per request than the endpoint under test on a small machine, and that cost lands
    in both numbers of a ratio and pulls it toward 1; this one parses only the status line and Content-Length.
    It reconnects when the server closes (gunicorn's sync workers close after every response).
    """

    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def get(self) -> tuple[int, bytes]:
        reused = self.sock is not None
        try:
            return self._get()
        except ConnectionError:
            if not reused:
                raise
            # A kept-alive connection the server closed while idle: that is not a failed request, retry once.
            self.close()
            return self._get()

    def _get(self) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = self.sock
        sock.sendall(self.request)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response headers")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed in the middle of the body")
                body += chunk
            if headers.get(b"connection") == b"close":
                self.close()
        else:  # no length: the body runs to the end of the connection
            while chunk := sock.recv(65536):
                body += chunk
            self.close()
        return status, body


@dataclass
class Run:
    label: str
    path: str
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""
    cpu: float = 0.0  # CPU seconds of the server's processes (gunicorn workers, PostgreSQL backends) in the run

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000 if ordered else float("nan")


def _request_bytes(path: str, key: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        "Accept: application/json\r\nUser-Agent: callbook-bench\r\n\r\n"
    ).encode()


def load(port: int, key: str, label: str, path: str, *, max_requests: int, max_seconds: float) -> Run:
    """THREADS clients, each on its own connection, until max_requests are done or max_seconds have passed."""
    run = Run(label=label, path=path)
    request = _request_bytes(path, key)
    tickets = itertools.count()  # next() on it is atomic under the GIL: no lock per request
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        http = RawHttpClient(port, request)
        latencies: list[float] = []
        ok = errors = 0
        error = ""
        try:
            while next(tickets) < max_requests and time.monotonic() < deadline:
                began = time.perf_counter()
                try:
                    status, body = http.get()
                except (OSError, ValueError, IndexError) as exc:  # refused, reset, timed out, or not HTTP
                    http.close()
                    errors += 1
                    error = error or repr(exc)
                    continue
                latencies.append(time.perf_counter() - began)
                if status == 200:
                    ok += 1
                else:
                    errors += 1
                    error = error or f"HTTP {status}: {body[:300]!r}"
        finally:
            http.close()
            with lock:
                run.ok += ok
                run.errors += errors
                run.latencies.extend(latencies)
                run.first_error = run.first_error or error

    threads = [threading.Thread(target=client, daemon=True) for _ in range(THREADS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - began
    return run


def warm_up(port: int, key: str, path: str) -> None:
    """Every gunicorn worker imports its code paths and opens its connection before the clock runs."""
    warm = load(port, key, "warm-up", path, max_requests=WARMUP_REQUESTS, max_seconds=MAX_SECONDS)
    if warm.errors:
        raise RuntimeError(f"GET {path} fails under load: {warm.first_error}")


def merged(label: str, runs: list[Run]) -> Run:
    total = Run(label=label, path=runs[0].path)
    for run in runs:
        total.ok += run.ok
        total.errors += run.errors
        total.seconds += run.seconds
        total.latencies.extend(run.latencies)
        total.first_error = total.first_error or run.first_error
        total.cpu += run.cpu
    return total


def describe(run: Run) -> str:
    text = (
        f"{run.label:<26} {run.rps:8.1f} req/s   p50 {run.percentile(0.50):6.1f} ms   "
        f"p99 {run.percentile(0.99):6.1f} ms   {run.ok} ok, {run.errors} errors in {run.seconds:.1f} s"
    )
    return text + (f"\n    first error: {run.first_error}" if run.errors else "")


# --- Report ------------------------------------------------------------------------------------------------


ENDPOINTS = ("bare DRF (API root)", "session detail", "session list, page of 50")
BARE, DETAIL, LISTING = ENDPOINTS


def prepare() -> tuple[Seed, dict[str, int]]:
    """Migrate and seed the bench database in this process, and count queries; os.environ is the bench's."""
    from django.db import connection

    began = time.monotonic()
    _env.setup_django()
    data = seed()
    if connection.vendor == "postgresql":
        # Production databases have statistics (autovacuum); a freshly seeded one does not, and without them the
        # planner walks every one of the agent's sessions.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(
        f"Callbook session API bench: {_env.vendor()}, {SESSIONS} sessions x {len(BULK_TIMELINE)} events; "
        f"migrated and seeded in {time.monotonic() - began:.1f} s; {_env.load_note()}",
        flush=True,
    )
    queries = count_queries(data)
    print("Queries per request (in-process, Django test client):")
    for label, number in queries.items():
        print(f"  {label:<40} {number}")
    return data, queries


def measure(port: int, data: Seed, server_pids: Callable[[], list[int]]) -> list[Run]:
    paths = {
        BARE: "/api/crm/",
        DETAIL: f"/api/crm/sessions/{data.detail_id}",
        LISTING: "/api/crm/sessions/?page_size=50",
    }
    per_run, seconds = MAX_REQUESTS // ROUNDS, MAX_SECONDS / ROUNDS
    print(
        f"gunicorn -w 2 --threads 1 on 127.0.0.1:{port}; {THREADS} client threads; per endpoint {ROUNDS} runs "
        f"of at most {per_run} requests or {seconds:.1f} s, after {WARMUP_REQUESTS} warm-up requests",
        flush=True,
    )
    for path in paths.values():
        warm_up(port, data.key, path)
    # Short runs, each measured one between two bare ones (bare, detail, bare, list, bare, ...): load from outside
    # (other processes on the machine, CPU frequency) then weighs on both sides of each ratio alike.
    plan = [BARE, *itertools.chain.from_iterable((DETAIL, BARE, LISTING, BARE) for _ in range(ROUNDS))]
    timeline = []
    for label in plan:
        pids = server_pids()  # the workers and their database sessions, all started by the warm-up
        cpu_before = _env.cpu_seconds(pids)
        run = load(port, data.key, label, paths[label], max_requests=per_run, max_seconds=seconds)
        run.cpu = _env.cpu_seconds(pids) - cpu_before
        timeline.append(run)
    return timeline


def report(timeline: list[Run], queries: dict[str, int]) -> None:
    totals = {label: merged(label, [run for run in timeline if run.label == label]) for label in ENDPOINTS}
    for run in totals.values():
        print("  " + describe(run))
    for label in (DETAIL, LISTING):
        # Each run against the mean of the two bare runs around it: how steady the ratio stayed.
        ratios = [
            run.rps / statistics.mean((timeline[i - 1].rps, timeline[i + 1].rps))
            for i, run in enumerate(timeline)
            if run.label == label
        ]
        print(f"  {label} / bare DRF, run by run: {', '.join(f'{ratio:.2f}' for ratio in ratios)}")
    # Wall-clock req/s on a shared machine move with whatever else runs on it; the server's own CPU time per
    # request (gunicorn workers + PostgreSQL backends; the load generator and gunicorn's master left out) does not.
    per_request = {label: run.cpu / run.ok * 1000 if run.ok else 0.0 for label, run in totals.items()}
    print(
        "  server CPU per request (gunicorn workers + database backends): "
        + ", ".join(f"{label} {ms:.2f} ms" for label, ms in per_request.items())
    )

    clean = all(run.errors == 0 for run in totals.values())  # an endpoint that errs has no valid req/s
    base = round(totals[BARE].rps, 1)
    for label, name, target, note in (
        (DETAIL, "session detail rps / bare DRF rps", DETAIL_TARGET, ""),
        (LISTING, "session list (50) rps / bare DRF rps", LIST_TARGET, " (informative)"),
    ):
        value = round(totals[label].rps, 1)
        ratio = round(value / base, 2) if base else 0.0
        _env.result(
            name=name,
            value=value,
            baseline=base,
            unit="req/s",
            target=f">= {target:.2f}{note}",
            ok=ratio >= target and clean,
            digits=2,
        )
    if per_request[BARE] and per_request[DETAIL]:
        # Requests per server CPU-second, detail against bare: the same ratio as req/s with the machine's other
        # work taken out (a server with the CPU to itself serves 1 / CPU-per-request).
        detail_per_cpu, bare_per_cpu = 1000 / per_request[DETAIL], 1000 / per_request[BARE]
        _env.result(
            name="session detail / bare DRF, requests per server CPU-s",
            value=detail_per_cpu,
            baseline=bare_per_cpu,
            unit="req/CPU-s",
            target=f">= {DETAIL_TARGET:.2f} (informative)",
            ok=detail_per_cpu >= DETAIL_TARGET * bare_per_cpu and clean,
            digits=2,
        )
    q10, q200 = queries["list page_size=10"], queries["list page_size=200"]
    _env.result(
        name="list queries at page_size 200 vs 10",
        value=q200,
        baseline=q10,
        unit="queries",
        target="== 1.00",
        ok=q200 == q10,
    )
    rich, lean = queries["detail, 10 events/2 notes/6 segments"], queries["detail, 1 event/1 note/1 segment"]
    _env.result(
        name="detail queries, 10 events vs 1 event",
        value=rich,
        baseline=lean,
        unit="queries",
        target="== 1.00",
        ok=rich == lean,
    )


def main() -> int:
    began = time.monotonic()
    _env.hard_limit(HARD_LIMIT_SECONDS)
    server = None
    with _env.bench_environment(database=BENCH_DATABASE) as bench:
        log = bench.var_dir / "gunicorn.log"
        try:
            # Django in this process reads the same settings as the server it starts.
            data, queries = prepare()
            port = _server.free_port()
            server = _server.start_gunicorn(env=bench.env, port=port, log=log, workers=2, threads=1)
            _server.wait_healthy(server, port, log=log)
            pgid, database = server.pid, bench.postgres

            def server_pids() -> list[int]:
                return _env.group_pids(pgid) + (_env.pg_backend_pids(database) if database else [])

            timeline = measure(port, data, server_pids)
        finally:
            if server is not None:
                _server.kill_group(server)
        if "Traceback" in _server.tail(log, 1_000_000):
            print(f"gunicorn logged errors:\n{_server.tail(log)}")
    report(timeline, queries)
    print(f"done in {time.monotonic() - began:.1f} s; {_env.load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
