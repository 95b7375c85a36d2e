"""Fault tests: real processes, real failures.

A test here runs Callbook as it is deployed (``gunicorn crm.wsgi``, ``celery -A crm worker`` and ``celery -A crm
beat`` as separate processes, DEBUG off, static files collected) on the test database and a recordings folder of
its own, sends it real HTTP, and breaks something underneath it: SIGKILL of a process group, a broker, database or
S3 server that stops answering. Each process lives in its own process group, so a SIGKILL reaches gunicorn's and
Celery's children too, and every process a test started is killed when it ends, whatever happened.

Servers a test kills are always private ones, started on free ports of 127.0.0.1 for that test: the machine's
shared PostgreSQL and Redis are never stopped (other suites use them). Every test uses a Celery queue of its own.

Which broker a test needs:
- the configured one (filesystem in the embedded pass, Redis in CI's second pass) for what holds on both;
- ``needs_network_broker`` marks what only a broker server can show (a broker that goes away, redelivery of
  unacknowledged messages): those skip on the embedded filesystem broker, with the reason, and run in CI's
  second pass, where a skip would be a failure.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.conf import settings

from tests.conftest import ROOT, TEST_QUEUE, _test_database_url

T = TypeVar("T")

STARTUP_TIMEOUT = 90.0  # a cold Celery start on a busy 2-core machine takes a while
SECRET = "reliability-tests-secret-key-0123456789abcdef-not-for-production"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: fault test: real processes killed and servers stopped")


def _network_broker() -> bool:
    return not str(settings.CELERY_BROKER_URL).startswith("filesystem://")


needs_network_broker = pytest.mark.skipif(
    not _network_broker(),
    reason=(
        "needs a broker server (Redis): the embedded filesystem broker is a local folder that cannot become "
        "unreachable, and it deletes a message when a worker reads it, so there is no unacknowledged message "
        "to redeliver; runs in CI's second pass (CELERY_BROKER_URL=redis://...)"
    ),
)


# --- Small tools ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``probe`` until it answers something truthy (returned) or ``timeout`` seconds pass (test fails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tail(log: Path, size: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


# --- HTTP ----------------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def fetch(
    port: int,
    method: str,
    path: str,
    *,
    token: str | None = None,
    cookie: str | None = None,
    json_body: Any = None,
    body: bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Response:
    """One request on a fresh connection to 127.0.0.1:``port``. Raises OSError when no whole answer arrives
    (refused, reset, or cut off mid-answer by a process killed while it answered)."""
    headers = {"Accept": "application/json" if path.startswith("/api/") else "text/html", **(headers or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={cookie}"
    if json_body is not None:
        body = json.dumps(json_body).encode()
        content_type = "application/json"
    if content_type is not None:
        headers["Content-Type"] = content_type
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except http.client.HTTPException as exc:  # IncompleteRead, RemoteDisconnected (also an OSError), BadStatusLine
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
    return Response(
        status=response.status,
        headers={k.lower(): v for k, v in response.getheaders()},
        body=raw,
        elapsed=time.monotonic() - started,
    )


def session_cookie(user: Any) -> str:
    """A signed-in browser session of ``user``, stored in the test database (which the servers share)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


# --- Processes -----------------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, size: int = 4000) -> str:
        return tail(self.log, size)

    def children(self) -> list[int]:
        """Pids of this process's direct children (Linux)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs; zombies do not count (PID 1 may never reap orphans)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces or parentheses, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class Processes:
    """Every process a test starts, each leading its own process group; all are SIGKILLed at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Proc] = []
        self._count = 0

    def start(self, name: str, command: list[str], *, env: dict[str, str], cwd: Path = ROOT) -> Proc:
        self._count += 1
        log = self.folder / f"{self._count:02d}-{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = Proc(name=name, popen=popen, log=log)
        # Registered before any wait, so that a process that never gets ready is still cleaned up.
        self.started.append(proc)
        return proc

    def kill(self, proc: Proc) -> None:
        """SIGKILL the process group (no graceful shutdown, nothing flushed) and wait until none of it runs."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=15)
        wait_until(lambda: not _group_alive(proc.pid), timeout=15, what=f"process group of {proc.name} to die")

    def kill_all(self) -> None:
        for proc in self.started:  # all of them first: one that will not die must not spare the others
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=15)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    folder = tmp_path / "logs"
    folder.mkdir()
    procs = Processes(folder)
    try:
        yield procs
    finally:
        procs.kill_all()


@pytest.fixture(scope="session")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Collected static files: with DEBUG off, as deployed, pages need whitenoise's manifest."""
    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, "STATIC_ROOT": str(root), "DEBUG": "0", "SECRET_KEY": SECRET}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    return root


@dataclass
class Stack:
    """One deployment of Callbook: its environment, and its web server, worker and beat on demand.

    ``env`` is what every process of it gets; change it before starting a process (e.g. to point the broker at
    a private Redis). The web server keeps its port across restarts, as a deployment does.
    """

    processes: Processes
    env: dict[str, str]
    queue: str
    port: int = field(default_factory=free_port)
    schedule: Path | None = None

    def start_web(self, *, workers: int = 2) -> Proc:
        command = [
            *(sys.executable, "-m", "gunicorn", "crm.wsgi:application", "--bind", f"127.0.0.1:{self.port}"),
            *("--workers", str(workers), "--timeout", "60", "--graceful-timeout", "5"),
        ]
        proc = self.processes.start("web", command, env=self.env)

        def healthy() -> bool:
            if not proc.alive():
                pytest.fail(f"gunicorn exited with {proc.popen.returncode}:\n{proc.tail()}")
            try:
                return fetch(self.port, "GET", "/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_until(healthy, timeout=STARTUP_TIMEOUT, what="gunicorn to answer /healthz", interval=0.2)
        return proc

    def start_worker(self, *, pool: str = "solo", concurrency: int = 1, wait: bool = True) -> Proc:
        command = [
            *(sys.executable, "-m", "celery", "-A", "crm", "worker", "--loglevel", "INFO"),
            *("--pool", pool, "--concurrency", str(concurrency), "--queues", self.queue),
            *("--hostname", f"{self.queue}-{len(self.processes.started)}@%h", "--without-mingle", "--without-gossip"),
        ]
        proc = self.processes.start("worker", command, env=self.env)
        if wait:
            self.wait_worker_ready(proc)
        return proc

    def wait_worker_ready(self, proc: Proc) -> None:
        def ready() -> bool:
            if not proc.alive():
                pytest.fail(f"celery worker exited with {proc.popen.returncode}:\n{proc.tail()}")
            return "ready." in proc.tail(100_000)

        wait_until(ready, timeout=STARTUP_TIMEOUT, what="the celery worker to be ready", interval=0.2)

    def start_beat(self) -> Proc:
        # A schedule file of its own: beat starts with every entry's clock at zero, as in a fresh deployment.
        self.schedule = self.processes.folder / f"beat-schedule-{uuid.uuid4().hex[:8]}"
        command = [
            *(sys.executable, "-m", "celery", "-A", "crm", "beat", "--loglevel", "INFO"),
            *("--schedule", str(self.schedule)),
        ]
        proc = self.processes.start("beat", command, env=self.env)

        def started() -> bool:
            if not proc.alive():
                pytest.fail(f"celery beat exited with {proc.popen.returncode}:\n{proc.tail()}")
            return "beat: Starting..." in proc.tail(100_000)

        wait_until(started, timeout=STARTUP_TIMEOUT, what="celery beat to start", interval=0.2)
        return proc


def app_env(*, database_url: str, recordings_root: Path, queue: str, static_root: Path) -> dict[str, str]:
    """The environment of a production-like deployment on the test's database, storage and queue."""
    return {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "STATIC_ROOT": str(static_root),
        "DATABASE_URL": database_url,
        "RECORDINGS_ROOT": str(recordings_root),
        # Tasks the processes send (an upload queueing its ingest, beat's jobs) stay on this test's queue.
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "TRANSCRIPTION_BACKEND": "none",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def stack(processes: Processes, recordings_root: Path, static_root: Path, settings: Any) -> Iterator[Stack]:
    """A deployment on the test database (use ``django_db(transaction=True)``) and the test's recordings folder."""
    queue = f"{TEST_QUEUE}-{uuid.uuid4().hex[:8]}"
    # The test process signs its session cookies with the servers' key.
    settings.SECRET_KEY = SECRET
    env = app_env(
        database_url=_test_database_url(), recordings_root=recordings_root, queue=queue, static_root=static_root
    )
    deployment = Stack(processes=processes, env=env, queue=queue)
    yield deployment
    processes.kill_all()
    broker = deployment.env.get("CELERY_BROKER_URL", "")
    if broker.startswith("redis://") and broker == os.environ.get("CELERY_BROKER_URL"):
        _forget_queue(broker, queue)


def _forget_queue(broker_url: str, queue: str) -> None:
    """Drop what the killed processes left in the shared Redis for this test's queue: messages nobody will consume
    (beat's, once the worker is gone) and those held unacknowledged by killed workers, which a worker of another
    suite would otherwise put back into this queue once their visibility timeout passed."""
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
    client.delete(queue)
    for tag, raw in client.hgetall("unacked").items():
        with contextlib.suppress(ValueError, TypeError, IndexError):
            if json.loads(raw)[2] == queue:  # [message, exchange, routing key]
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)


def publish_ingest(session_id: uuid.UUID, *, queue: str, broker_url: str | None = None) -> str:
    """Queue ``ingest_session`` from this process, as an upload would, on ``broker_url`` (else the configured);
    answers the task id."""
    from calls.tasks import ingest_session
    from crm.celery import app

    with app.connection_for_write(broker_url) as connection:
        producer = app.amqp.Producer(connection, auto_declare=False)
        result = ingest_session.apply_async((str(session_id),), queue=queue, producer=producer, ignore_result=True)
    return str(result.id)


# --- Recordings -----------------------------------------------------------------------------------------------


def tone_wav(*, seconds: float = 0.5, frequency: int = 440, rate: int = 8000) -> bytes:
    """A small valid mono 16-bit WAV; a different ``frequency`` gives different bytes (and sha256)."""
    buffer = io.BytesIO()
    period = max(rate // frequency, 2)
    frames = b"".join(
        struct.pack("<h", 8000 if (i % period) < period // 2 else -8000) for i in range(int(seconds * rate))
    )
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


@dataclass
class BlockedRecording:
    """A pending recording whose file is a named pipe: an ingest that opens it blocks, mid-way through its
    claim, until ``unblock`` puts the real bytes in its place. What a slow or hung storage read looks like,
    with no timing to guess and no hook in the code under test."""

    session_id: uuid.UUID
    path: Path
    audio: bytes

    def unblock(self) -> None:
        staged = self.path.with_name("staged.wav")
        staged.write_bytes(self.audio)
        # Atomic: whoever opens the name next opens the real file. (A reader blocked on the pipe stays blocked:
        # the tests kill it first.)
        os.replace(staged, self.path)


def blocked_recording(recordings_root: Path, *, owner: Any) -> BlockedRecording:
    from calls.models import CallSession, Recording
    from tests.factories import CallSessionFactory

    session = CallSessionFactory.create(owner=owner)
    key = f"sessions/{session.pk}/recording.wav"
    path = recordings_root / key
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    Recording.objects.create(session=session, file=key, status=Recording.Status.PENDING)
    CallSession.objects.filter(pk=session.pk).update(recording_status=CallSession.RecordingStatus.PENDING)
    return BlockedRecording(session_id=session.pk, path=path, audio=tone_wav(frequency=300))


def recording_status(session_id: uuid.UUID) -> str | None:
    from calls.models import Recording

    return Recording.objects.filter(session_id=session_id).values_list("status", flat=True).first()


# --- Private servers ------------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test's own on a free port, without persistence (a restart loses every key)."""

    def __init__(self, processes: Processes, folder: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("needs redis-server (apt install redis-server)")
        self.executable = executable
        self.processes = processes
        self.folder = folder
        self.port = free_port()
        self.proc: Proc | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        command = [
            *(self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(self.folder), "--daemonize", "no"),
        ]
        self.proc = self.processes.start("redis", command, env=dict(os.environ))

        def answers() -> bool:
            if self.proc is not None and not self.proc.alive():
                pytest.fail(f"redis-server exited:\n{self.proc.tail()}")
            try:
                return bool(self.client().ping())
            except Exception:  # redis-py's ConnectionError: not up yet
                return False

        wait_until(answers, timeout=30, what=f"redis-server on port {self.port}")

    def kill(self) -> None:
        assert self.proc is not None
        self.processes.kill(self.proc)
        self.proc = None

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT): the server still accepts connections (the kernel does) but never answers, as a
        frozen machine or a network partition behaves, unlike a dead server that refuses at once."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


@pytest.fixture
def private_redis(processes: Processes, tmp_path: Path) -> PrivateRedis:
    folder = tmp_path / "redis"
    folder.mkdir()
    return PrivateRedis(processes, folder)


def _postgres_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of this test's own: initdb into a temporary folder, pg_ctl to start and stop it.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` system user and its
    commands run through ``runuser``. Authentication is ``trust`` on 127.0.0.1 only.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.as_user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root, and there is no 'postgres' user to run a private PostgreSQL as")
            self.as_user = "postgres"
        # Not under pytest's tmp_path: its folders are private to root, and the server may run as postgres.
        self.folder = Path(tempfile.mkdtemp(prefix="callbook-pg-"))
        if self.as_user is not None:
            shutil.chown(self.folder, user=self.as_user)
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}\n{tail(self.log)}")
        return result

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash: the server's processes quit at once, no checkpoint, connections cut."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def remove(self) -> None:
        if self.data.exists() and self.running():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("needs PostgreSQL's server binaries (initdb, pg_ctl: apt install postgresql)")
    server = PrivatePostgres(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()
