"""Operations beyond the counters: a Celery worker's own metrics endpoint and JSON logs (a real prefork worker),
Sentry reporting when configured (and never loaded when not), and database connections that heal after the
server dropped them."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from calls.models import Recording
from calls.tasks import ingest_enqueue
from crm import logs
from tests.conftest import ROOT, TEST_QUEUE, WORKER_COMMAND, _test_database_url, purge_test_queue
from tests.crm.test_metrics import free_port, get, increment_in_a_process, pending_recording, sample, scrape, wav_bytes
from tests.factories import UserFactory


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "crm.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- The worker's metrics and logs -------------------------------------------------------------------------


@pytest.fixture
def prefork_worker(
    django_db_setup: None, recordings_root: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """A real `celery worker` with the prefork pool (two children), multiprocess metrics and its metrics
    endpoint behind a token; a file of an earlier run waits in its metrics directory."""
    directory = tmp_path / "prometheus"
    increment_in_a_process(directory, 5)
    port = free_port()
    log = tmp_path / "worker.log"
    command = [*("prefork" if part == "solo" else part for part in WORKER_COMMAND), "--concurrency", "2"]
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "RECORDINGS_ROOT": str(recordings_root),
        "CELERY_TASK_DEFAULT_QUEUE": TEST_QUEUE,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "CELERY_METRICS_PORT": str(port),
        "CELERY_METRICS_ADDRESS": "127.0.0.1",
        "METRICS_TOKEN": "worker-scrape-token",
        "LOG_LEVEL": "INFO",
        "TRANSCRIPTION_BACKEND": "none",
    }
    purge_test_queue()
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc, port, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_prefork_worker_serves_every_childs_metrics_and_logs_json_with_the_task_context(
    prefork_worker: tuple[subprocess.Popen[str], int, Path], recordings_root: Path
):
    _, port, log = prefork_worker
    owner = UserFactory.create()
    good = pending_recording(recordings_root, owner, wav_bytes())
    bad = pending_recording(recordings_root, owner, b"not audio at all" * 10)
    with logs.log_context(request_id="req-from-the-web-1"):
        assert ingest_enqueue(session_id=good)
        assert ingest_enqueue(session_id=bad)
    deadline = time.monotonic() + 90
    while set(Recording.objects.filter(session_id__in=[good, bad]).values_list("status", flat=True)) != {
        Recording.Status.AVAILABLE,
        Recording.Status.FAILED,
    }:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)

    url = f"http://127.0.0.1:{port}/metrics"
    assert get(url)[0] == 404
    assert get(url, {"Authorization": "Bearer wrong"})[0] == 404
    task = "calls.tasks.ingest_session"
    # The counters are written by the child after the task's result; give the last one a moment.
    deadline = time.monotonic() + 10
    while True:
        status, body = get(url, {"Authorization": "Bearer worker-scrape-token"})
        assert status == 200
        samples = scrape(body)
        if sample(samples, "callbook_celery_tasks_finished_total", task=task, result="succeeded") == 2:
            break
        assert time.monotonic() < deadline, body.decode()[-3000:]
        time.sleep(0.2)
    assert sample(samples, "callbook_ingests_total", result="ok") == 1
    assert sample(samples, "callbook_ingests_total", result="failed") == 1
    assert sample(samples, "callbook_celery_tasks_started_total", task=task) == 2
    assert sample(samples, "callbook_celery_task_seconds_count", task=task) == 2
    # What an earlier run left in the directory was cleared when the worker started.
    assert not sample(samples, "callbook_sessions_created_total", origin="api")
    # The worker serves no backlog gauges: the web's /metrics measures those once for everyone.
    assert not any(name.startswith("callbook_ingest_backlog") for name, _ in samples)

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [failed] = [line for line in lines if line["message"].startswith(f"ingest of {bad} failed")]
    assert (failed["level"], failed["logger"]) == ("WARNING", "calls.ingest")
    assert (failed["task_name"], failed["session_id"]) == (task, str(bad))
    assert uuid.UUID(failed["task_id"])
    assert failed["request_id"] == "req-from-the-web-1"  # the request that queued it
    # Celery's own lines are JSON too, with the task they are about.
    succeeded = [line for line in lines if line["logger"] == "celery.app.trace" and "succeeded" in line["message"]]
    assert len(succeeded) == 2
    assert {line["task_name"] for line in succeeded} == {task}


# --- Sentry ------------------------------------------------------------------------------------------------


class _Collector(BaseHTTPRequestHandler):
    received: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.received.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:  # http.server's name
        """The test's output is not the place for its requests."""


@pytest.fixture
def fake_sentry() -> Iterator[tuple[str, list[bytes]]]:
    """A local stand-in for Sentry's ingest endpoint; yields a DSN pointing at it and what it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://public-key@127.0.0.1:{server.server_address[1]}/1", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


RAISE_IN_A_REQUEST_AND_A_TASK = """
from unittest import mock
import django
django.setup()
import sentry_sdk
from django.contrib.auth.views import LoginView
from django.test import Client
from calls import maintenance, tasks

def broken(self, request, *args, **kwargs):
    raise RuntimeError("sentry-probe-request")

with mock.patch.object(LoginView, "dispatch", broken):
    client = Client(raise_request_exception=False, HTTP_HOST="localhost")
    client.cookies["sessionid"] = "topsecret-session-cookie"
    response = client.get("/accounts/login/", headers={"X-Request-ID": "sentry-req-1"})
    assert response.status_code == 500, response.status_code
with mock.patch.object(maintenance, "recordings_apply_retention", side_effect=ValueError("sentry-probe-task")):
    assert tasks.apply_recording_retention.apply().failed()
sentry_sdk.flush(timeout=10)
"""


def events(received: list[bytes]) -> list[dict[str, Any]]:
    """The events inside the envelopes received (one JSON header line, then item header / payload pairs)."""
    found = []
    for envelope in received:
        for line in envelope.splitlines()[1:]:
            item = json.loads(line)
            if "exception" in item:
                found.append(item)
    return found


def test_it_reports_an_unhandled_error_of_a_request_and_of_a_task_to_sentry(fake_sentry: tuple[str, list[bytes]]):
    dsn, received = fake_sentry
    env = {"SENTRY_DSN": dsn, "SENTRY_ENVIRONMENT": "ci-test", "SENTRY_RELEASE": "callbook@test"}
    result = run_python(RAISE_IN_A_REQUEST_AND_A_TASK, env)
    assert result.returncode == 0, result.stderr[-3000:]
    reported = {event["exception"]["values"][-1]["value"]: event for event in events(received)}
    assert {"sentry-probe-request", "sentry-probe-task"} <= set(reported), (received, result.stderr[-3000:])
    request = reported["sentry-probe-request"]
    assert (request["environment"], request["release"]) == ("ci-test", "callbook@test")
    assert request["exception"]["values"][-1]["type"] == "RuntimeError"
    assert request["tags"]["request_id"] == "sentry-req-1"
    task = reported["sentry-probe-task"]
    assert task["tags"]["task_name"] == "calls.tasks.apply_recording_retention"
    # send_default_pii is off: no cookie value leaves the process.
    assert not any(b"topsecret-session-cookie" in envelope for envelope in received)


def test_it_never_loads_sentry_without_a_dsn():
    code = (
        "import sys, django\ndjango.setup()\nfrom django.test import Client\nimport crm.celery\n"
        "assert Client().get('/healthz').status_code == 200\nprint('sentry_sdk' in sys.modules)"
    )
    result = run_python(code, {"SENTRY_DSN": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "False"


# --- Database connections ----------------------------------------------------------------------------------

PRINT_DATABASE = """
import django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(db["CONN_MAX_AGE"], db["CONN_HEALTH_CHECKS"])
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "postgres://callbook@127.0.0.1:1/callbook"}, "60 True"),
        ({"DATABASE_URL": "postgres://callbook@127.0.0.1:1/callbook", "DATABASE_CONN_MAX_AGE": "0"}, "0 True"),
        ({"DATABASE_URL": "sqlite:////tmp/callbook-settings-test.sqlite3"}, "0 True"),
        ({"DATABASE_URL": "sqlite:////tmp/callbook-settings-test.sqlite3", "DATABASE_CONN_MAX_AGE": "30"}, "30 True"),
    ],
)
def test_it_keeps_connections_and_checks_them_before_use(env: dict[str, str], expected: str):
    result = run_python(PRINT_DATABASE, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == expected


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_replaces_a_connection_the_server_dropped_at_the_next_request(alice, client_for):
    import psycopg
    from django.db import close_old_connections, connection

    client = client_for(alice)
    assert client.get("/calls/").status_code == 200
    assert connection.connection is not None
    dropped = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [dropped])
    # What the WSGI handler does as each request starts (Django's test client leaves it out).
    close_old_connections()
    assert client.get("/calls/").status_code == 200
    assert connection.connection.info.backend_pid != dropped
