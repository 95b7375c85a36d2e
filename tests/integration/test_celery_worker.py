"""A task goes through a real `celery worker` process on the configured broker (filesystem or Redis)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from crm.tasks import worker_ping

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.worker


@pytest.fixture
def celery_worker_process() -> Iterator[subprocess.Popen[str]]:
    log = ROOT / "var" / "test" / f"worker-{os.getpid()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "crm", "worker", "--pool", "solo", "--loglevel", "INFO"],
            cwd=ROOT,
            env=os.environ.copy(),
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


def test_it_runs_a_task_through_a_real_worker_and_observes_its_result(celery_worker_process):
    token = secrets.token_hex(8)
    result = worker_ping.delay(token).get(timeout=60)
    assert result["token"] == token
    assert result["database"] is True
    broker = settings.CELERY_BROKER_URL.split("://")[0]
    assert broker in {"filesystem", "redis"}
    if os.environ.get("CALLBOOK_REQUIRE_ALL") == "1":
        # CI's second pass must really have gone through Redis, not the embedded broker.
        assert broker == "redis", settings.CELERY_BROKER_URL
