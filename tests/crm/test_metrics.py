"""Prometheus metrics: the application's counters move when the things they count happen (and only once
those are committed), Celery tasks are counted from their signals, /metrics is protected and serves the text
format, and in multiprocess mode one scrape sees the sum of every process (gunicorn workers included)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from calls import ingest, maintenance, services, tasks
from calls.models import CallSession, Recording
from calls.services import SessionInput
from crm import metrics
from tests.conftest import ROOT
from tests.factories import CallSessionFactory, RecordingFactory

pytestmark = pytest.mark.django_db


# --- Helpers -----------------------------------------------------------------------------------------------


def value(name: str, **labels: str) -> float:
    """This process's current value of a sample (0 when it was never touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much samples moved while the block ran: ``with Delta(...) as moved: ...; moved(name, **labels)``."""

    def __init__(self) -> None:
        self.before: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def watch(self, name: str, **labels: str) -> None:
        self.before[(name, tuple(sorted(labels.items())))] = value(name, **labels)

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return value(name, **labels) - self.before[key]


def delta(*samples: tuple[str, dict[str, str]]) -> Delta:
    moved = Delta()
    for name, labels in samples:
        moved.watch(name, **labels)
    return moved


def wav_bytes(seconds: float = 0.3, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x10" * int(seconds * rate))
    return buffer.getvalue()


def scrape(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text-format scrape, by name and labels (parsing it proves the format)."""
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def no_ingest_queue(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """Adoptions queue an ingest after commit: record it instead of sending it to the broker."""
    queued: list[uuid.UUID] = []

    def enqueue(*, session_id: uuid.UUID) -> bool:
        queued.append(session_id)
        return True

    monkeypatch.setattr(tasks, "ingest_enqueue", enqueue)
    return queued


def orphan_folder(root: Path, meta: bytes | None = None) -> uuid.UUID:
    session_id = uuid.uuid4()
    folder = root / "sessions" / str(session_id)
    folder.mkdir(parents=True)
    (folder / "recording.wav").write_bytes(wav_bytes())
    if meta is not None:
        (folder / "meta.json").write_bytes(meta)
    return session_id


# --- Sessions and events -----------------------------------------------------------------------------------


def test_it_counts_a_session_created_through_the_api_once(alice, api_client_for, django_capture_on_commit_callbacks):
    client = api_client_for(alice)
    moved = delta(("callbook_sessions_created_total", {"origin": "api"}))
    body = {"source": "pipecat-prod", "external_id": "CA-metrics-1"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/crm/sessions/", body, format="json")
    assert response.status_code == 201
    assert moved("callbook_sessions_created_total", origin="api") == 1
    # The same source + external_id answers the existing session: nothing new was created.
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post("/api/crm/sessions/", body, format="json")
    assert again.status_code == 200
    assert moved("callbook_sessions_created_total", origin="api") == 1


def test_it_does_not_count_a_session_whose_transaction_rolled_back(alice, django_capture_on_commit_callbacks):
    moved = delta(("callbook_sessions_created_total", {"origin": "api"}))

    def create_then_fail() -> None:
        with transaction.atomic():
            services.call_session_create(actor=alice, data=SessionInput(external_id="rolled-back"))
            raise RuntimeError("the caller's transaction fails after the row was written")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        create_then_fail()
    assert not CallSession.objects.filter(external_id="rolled-back").exists()
    assert moved("callbook_sessions_created_total", origin="api") == 0


def test_it_counts_the_session_an_integrations_first_event_creates(
    integration_client, django_capture_on_commit_callbacks
):
    moved = delta(
        ("callbook_sessions_created_total", {"origin": "direct"}),
        ("callbook_sessions_auto_created_total", {}),
        ("callbook_events_recorded_total", {"type": "ringing"}),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = integration_client.post(
            "/api/crm/events/", {"external_id": "CA-direct-1", "type": "ringing"}, format="json"
        )
    assert response.status_code == 201, response.content
    assert moved("callbook_sessions_created_total", origin="direct") == 1
    assert moved("callbook_sessions_auto_created_total") == 1
    assert moved("callbook_events_recorded_total", type="ringing") == 1


def test_it_counts_events_by_type_and_a_repeat_as_a_duplicate(
    alice, api_client_for, django_capture_on_commit_callbacks
):
    session = CallSessionFactory.create(owner=alice)
    client = api_client_for(alice)
    url = f"/api/crm/sessions/{session.pk}/events/"
    moved = delta(
        ("callbook_events_recorded_total", {"type": "answered"}),
        ("callbook_events_recorded_total", {"type": "completed"}),
        ("callbook_events_recorded_total", {"type": "other"}),
        ("callbook_events_duplicate_total", {}),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, {"type": "answered", "event_id": "e-1"}, format="json").status_code == 201
        repeat = client.post(url, {"type": "answered", "event_id": "e-1"}, format="json")
        assert client.post(url, {"type": "bye"}, format="json").status_code == 201
        second_bye = client.post(url, {"type": "bye"}, format="json")
        assert client.post(url, {"type": "dtmf-1234"}, format="json").status_code == 201
    assert (repeat.status_code, repeat.json()["duplicate"]) == (200, True)
    assert (second_bye.status_code, second_bye.json()["duplicate"]) == (200, True)
    assert moved("callbook_events_recorded_total", type="answered") == 1
    assert moved("callbook_events_recorded_total", type="completed") == 1
    # Types integrations invent share one label: a client cannot grow the number of series.
    assert moved("callbook_events_recorded_total", type="other") == 1
    assert value("callbook_events_recorded_total", type="dtmf-1234") == 0
    assert moved("callbook_events_duplicate_total") == 2


# --- Adoption, expiry, retention ---------------------------------------------------------------------------


def test_it_counts_an_adoption_by_a_page_view_as_view(
    carol, api_client_for, recordings_root, no_ingest_queue, django_capture_on_commit_callbacks
):
    session_id = orphan_folder(recordings_root)
    moved = delta(
        ("callbook_sessions_adopted_total", {"via": "view"}),
        ("callbook_sessions_adopted_total", {"via": "sweep"}),
        ("callbook_sessions_created_total", {"origin": "adopted"}),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(carol).get(f"/api/crm/sessions/{session_id}")
    assert response.status_code == 200
    assert no_ingest_queue == [session_id]
    assert moved("callbook_sessions_adopted_total", via="view") == 1
    assert moved("callbook_sessions_adopted_total", via="sweep") == 0
    assert moved("callbook_sessions_created_total", origin="adopted") == 1


def test_it_counts_the_sweeps_adoptions_as_sweep(recordings_root, no_ingest_queue, django_capture_on_commit_callbacks):
    orphans = {orphan_folder(recordings_root) for _ in range(3)}
    moved = delta(
        ("callbook_sessions_adopted_total", {"via": "sweep"}),
        ("callbook_sessions_created_total", {"origin": "adopted"}),
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = maintenance.orphans_sweep()
    assert set(report.adopted) == orphans
    assert moved("callbook_sessions_adopted_total", via="sweep") == 3
    assert moved("callbook_sessions_created_total", origin="adopted") == 3
    # A second sweep over the same folders adopts nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        maintenance.orphans_sweep()
    assert moved("callbook_sessions_adopted_total", via="sweep") == 3


def test_it_counts_a_stale_session_expired(alice, django_capture_on_commit_callbacks):
    stale = CallSessionFactory.create(
        owner=alice, status=CallSession.Status.RINGING, last_event_at=timezone.now() - timedelta(hours=10)
    )
    CallSessionFactory.create(owner=alice, status=CallSession.Status.RINGING, last_event_at=timezone.now())
    moved = delta(("callbook_sessions_expired_total", {}), ("callbook_events_recorded_total", {"type": "abandoned"}))
    with django_capture_on_commit_callbacks(execute=True):
        assert maintenance.sessions_expire_stale(older_than=timedelta(hours=1)) == 1
    stale.refresh_from_db()
    assert stale.status == CallSession.Status.ABANDONED
    assert moved("callbook_sessions_expired_total") == 1
    assert moved("callbook_events_recorded_total", type="abandoned") == 1


def test_it_counts_recordings_deleted_by_retention(alice, recordings_root):
    old = RecordingFactory.create(session=CallSessionFactory.create(owner=alice))
    CallSession.objects.filter(pk=old.session_id).update(created_at=timezone.now() - timedelta(days=40))
    (recordings_root / old.file).parent.mkdir(parents=True)
    (recordings_root / old.file).write_bytes(wav_bytes())
    RecordingFactory.create(session=CallSessionFactory.create(owner=alice))  # recent: kept
    moved = delta(("callbook_recordings_deleted_total", {}))
    assert maintenance.recordings_apply_retention(days=30) == 1
    assert moved("callbook_recordings_deleted_total") == 1


# --- Ingest ------------------------------------------------------------------------------------------------


def pending_recording(root: Path, owner: Any, data: bytes) -> uuid.UUID:
    session = CallSessionFactory.create(owner=owner)
    recording = RecordingFactory.create(session=session, status=Recording.Status.PENDING)
    (root / recording.file).parent.mkdir(parents=True, exist_ok=True)
    (root / recording.file).write_bytes(data)
    return session.pk


def test_it_counts_ingests_ok_and_failed_with_their_duration(alice, recordings_root, settings):
    settings.TRANSCRIPTION_BACKEND = "none"
    good = pending_recording(recordings_root, alice, wav_bytes())
    bad = pending_recording(recordings_root, alice, b"this is not audio at all" * 10)
    moved = delta(
        ("callbook_ingests_total", {"result": "ok"}),
        ("callbook_ingests_total", {"result": "failed"}),
        ("callbook_ingest_seconds_count", {}),
    )
    assert ingest.session_ingest(session_id=good) == Recording.Status.AVAILABLE
    assert ingest.session_ingest(session_id=bad) == Recording.Status.FAILED
    # Run again: both are finished, nothing is claimed, nothing counted twice.
    ingest.session_ingest(session_id=good)
    ingest.session_ingest(session_id=bad)
    assert moved("callbook_ingests_total", result="ok") == 1
    assert moved("callbook_ingests_total", result="failed") == 1
    assert moved("callbook_ingest_seconds_count") == 2


def test_it_counts_neither_ok_nor_failed_for_a_transient_error(alice, recordings_root, monkeypatch, settings):
    settings.TRANSCRIPTION_BACKEND = "none"
    session_id = pending_recording(recordings_root, alice, wav_bytes())

    def storage_down(*args: Any) -> Any:
        raise ingest.StorageUnavailable("the bucket did not answer")

    monkeypatch.setattr(ingest, "_describe_audio", storage_down)
    moved = delta(("callbook_ingests_total", {"result": "ok"}), ("callbook_ingests_total", {"result": "failed"}))
    with pytest.raises(ingest.StorageUnavailable):
        ingest.session_ingest(session_id=session_id)
    assert moved("callbook_ingests_total", result="ok") == moved("callbook_ingests_total", result="failed") == 0


# --- Celery tasks ------------------------------------------------------------------------------------------


def test_it_counts_a_task_started_succeeded_and_its_duration():
    task = "calls.tasks.expire_stale_sessions"
    moved = delta(
        ("callbook_celery_tasks_started_total", {"task": task}),
        ("callbook_celery_tasks_finished_total", {"task": task, "result": "succeeded"}),
        ("callbook_celery_task_seconds_count", {"task": task}),
    )
    assert tasks.expire_stale_sessions.apply().get() == 0
    assert moved("callbook_celery_tasks_started_total", task=task) == 1
    assert moved("callbook_celery_tasks_finished_total", task=task, result="succeeded") == 1
    assert moved("callbook_celery_task_seconds_count", task=task) == 1


def test_it_counts_a_failed_task():
    task = "calls.tasks.ingest_session"
    moved = delta(("callbook_celery_tasks_finished_total", {"task": task, "result": "failed"}))
    result = tasks.ingest_session.apply(args=("not-a-session-id",))
    assert result.failed()
    assert moved("callbook_celery_tasks_finished_total", task=task, result="failed") == 1


def test_it_counts_each_retry_of_a_transient_error_then_the_failure(monkeypatch):
    def database_down(**kwargs: Any) -> int:
        raise OperationalError("the database blinked")

    monkeypatch.setattr(maintenance, "ingests_retry", database_down)
    task = "calls.tasks.retry_failed_ingests"
    moved = delta(
        ("callbook_celery_tasks_started_total", {"task": task}),
        ("callbook_celery_tasks_finished_total", {"task": task, "result": "retried"}),
        ("callbook_celery_tasks_finished_total", {"task": task, "result": "failed"}),
    )
    assert tasks.retry_failed_ingests.apply().failed()
    max_retries = tasks.retry_failed_ingests.max_retries
    assert max_retries == 3
    assert moved("callbook_celery_tasks_started_total", task=task) == max_retries + 1
    assert moved("callbook_celery_tasks_finished_total", task=task, result="retried") == max_retries
    assert moved("callbook_celery_tasks_finished_total", task=task, result="failed") == 1


# --- /metrics ----------------------------------------------------------------------------------------------


def test_it_serves_the_text_format_to_loopback_by_default(client, alice, api_client_for):
    api_client_for(alice).get("/api/crm/sessions/")  # a request for the request metrics to show
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "max-age=0" in response["Cache-Control"]
    for name in ("callbook_sessions_created_total", "callbook_ingests_total", "callbook_celery_tasks_started_total"):
        assert f"# TYPE {name} counter".encode() in response.content
    samples = scrape(response.content)
    # django-prometheus: requests by view, method and status, and latencies by view and method.
    by_status = "django_http_responses_total_by_status_view_method_total"
    assert (sample(samples, by_status, status="200", view="api-session-list", method="GET") or 0) >= 1
    latency = "django_http_requests_latency_seconds_by_view_method_count"
    assert (sample(samples, latency, view="api-session-list", method="GET") or 0) >= 1


def test_it_negotiates_openmetrics_when_the_scraper_asks(client):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_it_answers_a_scraper_that_addresses_it_by_ip_over_plain_http(client, settings):
    settings.ALLOWED_HOSTS = ["callbook.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/metrics", HTTP_HOST="10.0.3.7:8000")
    assert response.status_code == 200
    # Anything else at that address is still refused as before.
    assert client.get("/calls/", HTTP_HOST="10.0.3.7:8000").status_code == 400


def test_it_answers_the_same_404_as_an_unknown_address_to_anyone_not_allowed(client):
    denied = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    unknown = client.get("/nothing-here", REMOTE_ADDR="203.0.113.9")
    assert denied.status_code == unknown.status_code == 404
    assert denied.content.replace(b"/metrics", b"/nothing-here") == unknown.content
    assert b"callbook_" not in denied.content
    # Other methods do not tell either.
    assert client.post("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404


def test_it_allows_the_configured_addresses_and_networks(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "2001:db8::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.42.0.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.42.0.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200
    # Loopback is no longer allowed once the list is set.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.1").status_code == 404


def test_it_requires_the_token_when_one_is_set_from_any_address(client, settings):
    settings.METRICS_TOKEN = "scrape-secret-0123456789"
    assert client.get("/metrics").status_code == 404  # loopback alone is not enough any more
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-secret-0123456789").status_code == 404
    ok = client.get("/metrics", REMOTE_ADDR="198.51.100.4", HTTP_AUTHORIZATION="Bearer scrape-secret-0123456789")
    assert ok.status_code == 200
    assert b"# TYPE callbook_sessions_created_total counter" in ok.content


def test_it_refuses_methods_other_than_get_to_an_allowed_scraper(client):
    assert client.post("/metrics").status_code == 405


def test_it_reports_the_ingest_backlog_and_the_queue_length(alice, recordings_root, client, settings):
    from crm.celery import app

    pending_recording(recordings_root, alice, wav_bytes())
    pending_recording(recordings_root, alice, wav_bytes())
    RecordingFactory.create(session=CallSessionFactory.create(owner=alice), status=Recording.Status.PROCESSING)
    Recording.objects.filter(status=Recording.Status.PENDING).update(updated_at=timezone.now() - timedelta(minutes=7))
    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    original = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        for _ in range(3):
            tasks.expire_stale_sessions.delay()
        samples = scrape(client.get("/metrics").content)
    finally:
        with app.connection_for_write() as conn:
            channel: Any = conn.default_channel
            channel.queue_purge(queue)
        app.conf.task_default_queue = original
    assert sample(samples, "callbook_ingest_backlog", status="pending") == 2
    assert sample(samples, "callbook_ingest_backlog", status="processing") == 1
    oldest = sample(samples, "callbook_ingest_backlog_oldest_seconds")
    assert oldest is not None
    assert 7 * 60 <= oldest < 9 * 60
    assert sample(samples, "callbook_queue_length", queue=queue) == 3


def test_it_still_answers_when_the_broker_is_down(client, settings, monkeypatch):
    from crm.celery import app

    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    monkeypatch.setenv("CELERY_BROKER_URL", dead)  # Celery reads the environment before its configuration
    original = app.conf.get("broker_url")
    app.conf["broker_url"] = dead
    # A Redis deployment's settings: no embedded filesystem transport (CELERY_BROKER_TRANSPORT) in front of the URL.
    monkeypatch.setitem(app.conf, "broker_transport", None)
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1}
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 1
    try:
        response = client.get("/metrics")
    finally:
        app.conf["broker_url"] = original
    assert response.status_code == 200
    samples = scrape(response.content)
    assert sample(samples, "callbook_ingest_backlog", status="pending") == 0
    assert not any(name == "callbook_queue_length" for name, _ in samples)


# --- Multiprocess mode -------------------------------------------------------------------------------------

INCREMENT = """
import sys
from crm import metrics
for _ in range(int(sys.argv[1])):
    metrics.SESSIONS_CREATED.labels("api").inc()
metrics.INGEST_SECONDS.observe(0.2)
"""


def increment_in_a_process(directory: Path, times: int) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    result = subprocess.run(
        [sys.executable, "-c", INCREMENT, str(times)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_it_sums_every_process_in_one_scrape_in_multiprocess_mode(client, tmp_path, monkeypatch):
    directory = tmp_path / "prometheus"
    increment_in_a_process(directory, 5)
    increment_in_a_process(directory, 7)
    assert len(list(directory.glob("counter_*.db"))) == 2  # one file per process
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    samples = scrape(client.get("/metrics").content)
    assert sample(samples, "callbook_sessions_created_total", origin="api") == 12
    assert sample(samples, "callbook_ingest_seconds_count") == 2
    assert sample(samples, "callbook_ingest_seconds_bucket", le="0.25") == 2


def test_it_clears_the_files_of_earlier_processes_but_its_own(tmp_path, monkeypatch):
    directory = tmp_path / "prometheus"
    increment_in_a_process(directory, 3)
    mine = directory / f"counter_{os.getpid()}.db"
    mine.write_bytes(b"")
    (directory / "notes.txt").write_text("not a metrics file")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    assert metrics.multiprocess_dir_reset() == 2  # the other process's counter and histogram files
    assert sorted(p.name for p in directory.iterdir()) == sorted([mine.name, "notes.txt"])


def test_it_keeps_metrics_in_memory_when_the_directory_is_blank(tmp_path):
    code = (
        "from crm import metrics\nimport prometheus_client.values as values\n"
        "metrics.SESSIONS_CREATED.labels('api').inc()\nprint(values.ValueClass.__name__)"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": "", "PYTHONPATH": str(ROOT)}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MutexValue"
    assert list(cwd.iterdir()) == []  # nothing written into the current directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # a loopback http URL we built
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_it_sums_every_gunicorn_worker_and_forgets_an_earlier_run(tmp_path):
    directory = tmp_path / "prometheus"
    increment_in_a_process(directory, 5)  # what an earlier run left behind
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "LOG_LEVEL": "INFO"}
    log = tmp_path / "gunicorn.log"
    command = [
        *(sys.executable, "-m", "gunicorn", "crm.wsgi:application", "--config", "python:crm.gunicorn_conf"),
        *("--bind", f"127.0.0.1:{port}", "--workers", "3", "--threads", "2"),
    ]
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        for _ in range(30):
            assert get(f"http://127.0.0.1:{port}/api/crm/")[0] == 401
        status, body = get(f"http://127.0.0.1:{port}/metrics")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert status == 200
    samples = scrape(body)
    served = sample(
        samples, "django_http_responses_total_by_status_view_method_total", status="401", view="api-root", method="GET"
    )
    assert served == 30
    # The counts of the earlier run were cleared when the master started.
    assert not sample(samples, "callbook_sessions_created_total", origin="api")
    # gunicorn's own lines are in the application's format (JSON here), and there is no access log: the
    # application writes one line per request (LOG_LEVEL=INFO).
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert any('"logger": "gunicorn.error"' in line for line in lines)
    assert sum('"logger": "crm.requests"' in line and '"status": 401' in line for line in lines) == 30
    assert not any('"GET /api/crm/ HTTP/1.1" 401' in line for line in lines)


def _healthy(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:  # not listening yet
        return False
