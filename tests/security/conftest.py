from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.security.world import World, build_world

# What Schemathesis finds in the campaigns app, which was being written while these tests were: reported to its
# authors, theirs to fix. Strict: an operation that conforms again fails here as XPASS, and its entry goes.
CAMPAIGN_SCHEMA_FINDINGS = {
    "GET /api/crm/campaigns/": "a paginated answer ({next, previous, results}) documented as a bare array",
    "POST /api/crm/campaigns/": 'window_start/window_end ("09:00:00") documented as format "time", which needs '
    "an offset",
    "GET /api/crm/campaigns/{campaign_id}/": "window_start/window_end without an offset, documented as time",
    "PATCH /api/crm/campaigns/{campaign_id}/": "window_start/window_end without an offset, documented as time",
    "GET /api/crm/campaigns/{campaign_id}/runs/": "a paginated answer documented as a bare array",
    "GET /api/crm/imports/{import_id}/rows/": "a paginated answer documented as a bare array",
    "GET /api/crm/runs/{run_id}/dials/": "a paginated answer documented as a bare array",
    "GET /api/crm/runs/{run_id}/log/": "a paginated answer documented as a bare array",
    "POST /api/crm/runs/{run_id}/pause/": "400 (an unknown form field) is not among its documented answers",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not item.nodeid.startswith("tests/security/test_schemathesis.py::"):
            continue
        operation = item.name.partition("[")[2].removesuffix("]")
        if operation in CAMPAIGN_SCHEMA_FINDINGS:
            reason = f"campaigns finding, reported: {CAMPAIGN_SCHEMA_FINDINGS[operation]}"
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # These tests create a dozen users each; proper hashing would cost a second per test. The login throttle
    # tests that check real passwords still go through the same hasher machinery.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _own_media_root(settings: Any, tmp_path: Path) -> None:
    # Contact imports keep their CSV in the default storage: each test's own, so no file outlives it.
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def world(db: None) -> World:
    return build_world()
