"""Outbound runs end to end through real Celery worker processes and the simulator over real HTTP.

The worker runs the scheduler's ticks and the simulator's calls; the simulator reaches Callbook's API at
pytest-django's live server (CALLBOOK_PUBLIC_URL points the worker at it), so every event, recording and
transcript goes through the same endpoints a real voice agent uses. On the filesystem broker locally, on Redis
in CI's second pass.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from calls.models import CallSession, Recording, Transcript
from campaigns.models import Campaign, Dial, Run, RunContact
from campaigns.tasks import tick_active_runs
from tests.campaigns.run_helpers import ALWAYS_OPEN, launch
from tests.conftest import TEST_QUEUE, WORKER_COMMAND, _test_database_url, purge_test_queue
from tests.factories import CampaignFactory, ContactFactory
from tests.integration.test_restart import _kill, _start, _tail

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Threads, not the solo pool: a run's ticks, its calls and their ingests interleave as they would in production.
THREADED_WORKER = [*WORKER_COMMAND, "--pool", "threads", "--concurrency", "4"]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every worker the test starts; all are killed at the end, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in started:
            _kill(proc)


@pytest.fixture
def worker_env(live_server, recordings_root: Path, tmp_path: Path) -> dict[str, str]:
    purge_test_queue()  # once per test: a worker started later in the test must find this test's tasks
    return {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "RECORDINGS_ROOT": str(recordings_root),
        "CELERY_TASK_DEFAULT_QUEUE": TEST_QUEUE,
        "CALLBOOK_PUBLIC_URL": live_server.url,
        "CAMPAIGN_TICK_INTERVAL_SECONDS": "0.2",
        "CAMPAIGN_DISPATCH_GRACE_SECONDS": "5",
        "TRANSCRIPTION_BACKEND": "none",
    }


def start_worker(env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """A worker process of its own process group (so that _kill reaches its threads), ready to consume."""
    proc = _start(THREADED_WORKER, env=env, log=log, started=started)
    # The whole log, not its tail: a worker that starts on a backlog of queued tasks logs a lot after "ready.".
    wait_for(
        lambda: "ready." in log.read_text(errors="replace") or proc.poll() is not None,
        timeout=60,
        what="no worker",
        log=log,
    )
    if proc.poll() is not None:
        pytest.fail(f"celery worker exited with {proc.returncode}:\n{_tail(log)}")
    return proc


def wait_for(predicate, *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"{what} within {timeout:.0f} s\n{tail}")
        time.sleep(0.25)


def campaign_of(manager_team_size: int, **fields) -> Campaign:
    campaign = CampaignFactory.create(**{**ALWAYS_OPEN, **fields})
    contacts = [
        ContactFactory.create(team=campaign.team, phone=f"+1202555{n:04d}", timezone="UTC")
        for n in range(manager_team_size)
    ]
    campaign.contacts.set(contacts)
    return campaign


def run_state(run_id: int) -> str:
    return Run.objects.values_list("state", flat=True).get(pk=run_id)


def assert_no_contact_dialed_twice_at_once(run: Run) -> dict[int, list[Dial]]:
    by_target: dict[int, list[Dial]] = defaultdict(list)
    for dial in Dial.objects.filter(run=run).order_by("dialed_at", "id"):
        by_target[dial.target_id].append(dial)
    for dials in by_target.values():
        for earlier, later in itertools.pairwise(dials):
            assert earlier.finished_at is not None
            assert earlier.finished_at <= later.dialed_at
        assert [d.attempt for d in dials] == list(range(1, len(dials) + 1))
    return by_target


def test_a_run_of_200_contacts_completes_through_a_real_worker_and_the_simulator(
    worker_env,
    processes,
    tmp_path,
):
    campaign = campaign_of(
        200,
        max_concurrent_calls=25,
        max_calls_per_minute=10_000,
        retry_no_answer_delay=1,
        retry_no_answer_max_attempts=2,
        retry_busy_max_attempts=1,
        retry_failed_max_attempts=1,
        dialer_settings={
            "odds": {"completed": 7, "no_answer": 1, "busy": 1, "failed": 1},
            "ring_seconds": [0, 0.05],
            "min_seconds": 0.05,
            "max_seconds": 0.2,
            "seed": 6,
        },
    )
    log = tmp_path / "worker.log"
    start_worker(worker_env, log, processes)
    started = time.monotonic()
    run = launch(campaign)

    wait_for(lambda: run_state(run.pk) == "completed", timeout=150, what="the run did not complete", log=log)
    elapsed = time.monotonic() - started

    run.refresh_from_db()
    assert run.total == 200
    assert run.completed + run.no_answer + run.busy + run.failed == 200
    assert (run.queued, run.dialing, run.skipped_dnc) == (0, 0, 0)
    assert run.completed > 100  # the odds are 7 in 10
    assert RunContact.objects.filter(run=run).exclude(state="done").count() == 0
    by_target = assert_no_contact_dialed_twice_at_once(run)
    assert len(by_target) == 200
    sessions = CallSession.objects.filter(dial__run=run)
    assert sessions.count() == run.dials == Dial.objects.filter(run=run).count()
    assert set(sessions.values_list("status", flat=True)) <= {"completed", "no_answer", "busy", "failed"}
    assert not Dial.objects.filter(run=run, finished_at__isnull=True).exists()
    # Every answered call's recording and transcript came in over HTTP and are ingested (the worker does that too).
    answered = list(sessions.filter(status="completed").values_list("pk", flat=True))
    assert len(answered) == run.completed
    wait_for(
        lambda: Recording.objects.filter(session__in=answered, status="available").count() == len(answered),
        timeout=120,
        what="the recordings were not all ingested",
        log=log,
    )
    assert Transcript.objects.filter(session__in=answered).count() == len(answered)
    assert not Recording.objects.filter(session__in=sessions.exclude(status="completed")).exists()
    print(f"200-contact run completed in {elapsed:.1f} s with {run.dials} dials")


def test_a_worker_killed_mid_run_is_replaced_and_no_contact_is_lost_or_dialed_twice(
    worker_env,
    processes,
    tmp_path,
):
    campaign = campaign_of(
        60,
        max_concurrent_calls=6,
        max_calls_per_minute=10_000,
        max_call_seconds=8,
        retry_failed_delay=0,
        retry_failed_max_attempts=4,
        dialer_settings={"odds": {"completed": 1}, "ring_seconds": [0.1, 0.3], "min_seconds": 0.4, "max_seconds": 1.2},
    )
    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    first = start_worker(worker_env, first_log, processes)
    run = launch(campaign)
    wait_for(
        lambda: Dial.objects.filter(run=run).count() >= 20, timeout=90, what="the run did not start", log=first_log
    )

    _kill(first)  # SIGKILL: no warm shutdown, whatever it held in memory is gone
    processes.remove(first)
    in_flight_at_kill = set(Dial.objects.filter(run=run, finished_at__isnull=True).values_list("pk", flat=True))
    assert in_flight_at_kill  # the kill caught calls in progress
    assert run_state(run.pk) == "running"

    start_worker(worker_env, second_log, processes)

    def beat_until_done() -> bool:
        # What beat's safety net does every CAMPAIGN_SAFETY_NET_EVERY seconds: tick runs whose chain died.
        tick_active_runs.delay()
        return run_state(run.pk) == "completed"

    wait_for(beat_until_done, timeout=150, what="the run did not complete after the restart", log=second_log)

    run.refresh_from_db()
    by_target = assert_no_contact_dialed_twice_at_once(run)
    assert len(by_target) == 60
    # None forgotten, none called again after it was reached: exactly one completed call per contact.
    for dials in by_target.values():
        assert [d.outcome for d in dials].count("completed") == 1
        assert dials[-1].outcome == "completed"
    assert (run.completed, run.queued, run.dialing) == (60, 0, 0)
    # The calls the dead worker was playing were not left hanging: they ended, as failed or completed.
    assert not Dial.objects.filter(pk__in=in_flight_at_kill, finished_at__isnull=True).exists()
    assert not CallSession.objects.filter(dial__run=run, status__in=["queued", "ringing", "in_progress"]).exists()
