"""The worker's process setup (crm/celery_signals.py): startup objects leave the garbage collector's scans."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from celery import signals


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process keeps collecting what it made


@pytest.mark.parametrize("signal", [signals.worker_process_init, signals.worker_ready])
def test_a_worker_process_freezes_what_it_started_with(unfrozen: None, signal: object) -> None:
    assert gc.get_freeze_count() == 0
    signal.send(sender=None)  # type: ignore[attr-defined]
    # Django's own modules and classes are among them: many thousands of objects.
    assert gc.get_freeze_count() > 10_000
