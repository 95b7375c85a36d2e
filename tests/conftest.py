"""Shared fixtures. The cast, as in every endpoint test:

- alice: agent, owner of the thing under test, team "Sales"
- bob: agent, alice's teammate
- carol: manager of "Sales"
- charlie: agent in "Other team" (an outsider)
- dave: manager of "Other team" (an outsider with a manager's role)
- admin: sees everything
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.test import Client
from rest_framework.test import APIClient

from calls.models import Source
from crm.models import Team, User
from tests.factories import AdminFactory, ManagerFactory, TeamFactory, UserFactory, make_integration, make_token

REQUIRE_ALL = os.environ.get("CALLBOOK_REQUIRE_ALL") == "1"
ROOT = Path(__file__).resolve().parents[1]
# Tasks this test run sends go to a queue of its own, and its workers consume only that one: two runs on one
# checkout (or one machine's Redis) never take each other's tasks.
TEST_QUEUE = f"callbook-test-{os.getpid()}"
WORKER_COMMAND = [
    *(sys.executable, "-m", "celery", "-A", "crm", "worker", "--pool", "solo", "--loglevel", "INFO"),
    *("--queues", TEST_QUEUE, "--without-mingle", "--without-gossip"),
]


def pytest_configure(config: pytest.Config) -> None:
    from crm.celery import app as celery_app

    celery_app.conf.task_default_queue = TEST_QUEUE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://... (as .ci/run does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip_pg)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CALLBOOK_REQUIRE_ALL=1 (CI on PostgreSQL + Redis) a skipped test is a failed test."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but CALLBOOK_REQUIRE_ALL=1 requires every test to run: {reason}"


@pytest.fixture(autouse=True)
def _isolated_storage(settings: Any, tmp_path: Path) -> Path:
    """Each test gets its own recordings folder, and static files that need no collectstatic."""
    root = tmp_path / "recordings"
    root.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "recordings": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": root}},
    }
    settings.RECORDINGS_ROOT = root
    return root


@pytest.fixture
def recordings_root(_isolated_storage: Path) -> Path:
    return _isolated_storage


@pytest.fixture
def sales_team(db: None) -> Team:
    return TeamFactory.create(name="Sales")


@pytest.fixture
def other_team(db: None) -> Team:
    return TeamFactory.create(name="Other team")


@pytest.fixture
def carol(sales_team: Team) -> User:
    return ManagerFactory.create(username="carol", team=sales_team)


@pytest.fixture
def alice(sales_team: Team, carol: User) -> User:
    return UserFactory.create(username="alice", team=sales_team)


@pytest.fixture
def bob(sales_team: Team, carol: User) -> User:
    return UserFactory.create(username="bob", team=sales_team)


@pytest.fixture
def dave(other_team: Team) -> User:
    return ManagerFactory.create(username="dave", team=other_team)


@pytest.fixture
def charlie(other_team: Team, dave: User) -> User:
    return UserFactory.create(username="charlie", team=other_team)


@pytest.fixture
def admin_user(db: None) -> User:
    return AdminFactory.create(username="admin")


def _client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def client_for() -> Any:
    """Browser client signed in as the given user."""
    return _client_for


@pytest.fixture
def integration(alice: User) -> tuple[Source, str]:
    """Integration "pipecat-prod" whose sessions default to alice; with its token key."""
    return make_integration("pipecat-prod", owner=alice)


@pytest.fixture
def integration_client(integration: tuple[Source, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {integration[1]}")
    return client


@pytest.fixture
def api_client_for() -> Any:
    """API client authenticated with a real bearer token of the given user."""

    def make(user: User) -> APIClient:
        _, key = make_token(user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make


def _test_database_url() -> str:
    """DATABASE_URL of the database the tests run on (pytest-django's test database, not the real one)."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


def purge_test_queue() -> int:
    """Drop what earlier tests left on this run's queue (tasks queued on commit that no worker took: a run's
    next tick, an ingest), so that a worker started now runs its own test's tasks only. Returns how many."""
    from kombu import Queue

    from crm.celery import app

    with app.connection_for_write() as connection:
        return int(Queue(TEST_QUEUE, channel=connection.default_channel).purge() or 0)


@pytest.fixture
def celery_worker(django_db_setup: None, django_db_blocker: Any, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real `celery worker` process on the configured broker, using the test database and storage.

    Rows a test wants the worker to see must be committed: use it with ``transactional_db``.
    """
    from django.conf import settings

    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "RECORDINGS_ROOT": str(settings.RECORDINGS_ROOT),
        # Tasks the worker itself sends (a sweep queueing ingests) stay on this run's queue too.
        "CELERY_TASK_DEFAULT_QUEUE": TEST_QUEUE,
    }
    purge_test_queue()
    with log.open("w") as out:
        proc = subprocess.Popen(
            WORKER_COMMAND,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -15):
            print(f"worker log:\n{log.read_text()[-3000:]}")
