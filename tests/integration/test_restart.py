"""A session created before a restart of every process is served after it.

Real processes, real HTTP: gunicorn (2 workers) and a Celery worker run on the test database; both are killed
with SIGKILL (no graceful shutdown, nothing flushed from memory) and started again, and the session, its events
and its note must come back from the database, with the idempotent create still finding the same row.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm.services import api_token_create
from crm.tasks import worker_ping
from tests.conftest import ROOT, WORKER_COMMAND, _test_database_url
from tests.factories import UserFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

STARTUP_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _start(
    command: list[str], *, env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    # A new session makes the child lead its own process group: one killpg reaches gunicorn's workers too.
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    # Registered before any wait, so that a process that never gets ready is still cleaned up.
    started.append(proc)
    return proc


def _start_gunicorn(
    *, env: dict[str, str], port: int, log: Path, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    proc = _start(
        [sys.executable, "-m", "gunicorn", "crm.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        env=env,
        log=log,
        started=started,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError):
            if _request(port, "GET", "/healthz")[0] == 200:
                return proc
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer /healthz within {STARTUP_TIMEOUT:.0f} s:\n{_tail(log)}")


def _start_worker(*, env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    proc = _start(
        WORKER_COMMAND,
        env=env,
        log=log,
        started=started,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT * 2  # Celery's first start imports a lot; the fixture gives 60 s
    while "ready." not in _tail(log):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"celery worker did not start:\n{_tail(log)}")
        time.sleep(0.2)
    return proc


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs; zombies do not count (PID 1 may never reap orphans)."""
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


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group (gunicorn's master and workers) and wait until none of it runs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    deadline = time.monotonic() + 15
    while Path("/proc").is_dir() and _group_alive(proc.pid):
        assert time.monotonic() < deadline, f"process group {proc.pid} survived SIGKILL"
        time.sleep(0.05)


def _request(
    port: int, method: str, path: str, *, key: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process the test starts; all are killed at the end, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # all of them first: one that will not die must not spare others
        for proc in started:
            _kill(proc)


def test_a_session_created_before_a_restart_of_every_process_is_served_after_it(
    processes: list[subprocess.Popen[bytes]], recordings_root: Path, tmp_path: Path
):
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "RECORDINGS_ROOT": str(recordings_root),
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    user = UserFactory.create(username="restart-agent")
    _, key = api_token_create(user=user, name="restart")
    port = _free_port()

    def start_all(generation: int) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        web = _start_gunicorn(env=env, port=port, log=tmp_path / f"gunicorn-{generation}.log", started=processes)
        worker = _start_worker(env=env, log=tmp_path / f"worker-{generation}.log", started=processes)
        # The worker must be consuming and reach the database, not merely be alive.
        token = secrets.token_hex(8)
        answer = worker_ping.delay(token).get(timeout=60)
        assert (answer["token"], answer["database"]) == (token, True)
        return web, worker

    web, worker = start_all(1)
    status, created = _request(
        port, "POST", "/api/crm/sessions/", key=key, body={"source": "pipecat-prod", "external_id": "restart-1"}
    )
    assert status == 201, created
    session_id = created["id"]
    for event_type in ("initiated", "answered"):
        status, result = _request(
            port, "POST", f"/api/crm/sessions/{session_id}/events/", key=key, body={"type": event_type}
        )
        assert status == 201, result
    status, note = _request(
        port, "POST", f"/api/crm/sessions/{session_id}/notes/", key=key, body={"body": "Customer wants a callback."}
    )
    assert status == 201, note

    for proc in (web, worker):
        _kill(proc)
        processes.remove(proc)
    # Same port on purpose: the new master can only bind it once nothing of the old server is left.
    start_all(2)

    status, session = _request(port, "GET", f"/api/crm/sessions/{session_id}", key=key)
    assert status == 200, session
    assert session["id"] == session_id
    assert session["status"] == "in_progress"
    assert session["source"] == "pipecat-prod"
    assert session["external_id"] == "restart-1"
    assert [event["type"] for event in session["events"]] == ["initiated", "answered"]
    assert [(n["id"], n["author"], n["body"]) for n in session["notes"]] == [
        (note["id"], "restart-agent", "Customer wants a callback.")
    ]

    status, again = _request(
        port, "POST", "/api/crm/sessions/", key=key, body={"source": "pipecat-prod", "external_id": "restart-1"}
    )
    assert status == 200, again
    assert again["id"] == session_id
    assert again["status"] == "in_progress"
