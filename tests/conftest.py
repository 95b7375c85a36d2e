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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from crm.models import Team, User
from tests.factories import AdminFactory, ManagerFactory, TeamFactory, UserFactory, make_token

REQUIRE_ALL = os.environ.get("CALLBOOK_REQUIRE_ALL") == "1"


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
def api_client_for() -> Any:
    """API client authenticated with a real bearer token of the given user."""

    def make(user: User) -> APIClient:
        _, key = make_token(user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make
