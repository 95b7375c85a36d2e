from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.security.world import World, build_world


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
