"""Campaigns in a browser: a manager launches the demo campaign's run and watches it to the end without reloading,
while a real Celery worker runs the scheduler and the simulator calls Callbook's API back over HTTP; a teammate
follows a finished run read-only; a manager creates a campaign through the form.

The worker is a separate process on the test database and this run's queue; the simulator in it reaches the live
server through CALLBOOK_PUBLIC_URL, as it reaches ``make run``'s server in the demo.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from calls.models import CallSession
from campaigns.demo import seed_campaign
from campaigns.models import Campaign, Run
from campaigns.runs import run_launch
from campaigns.scheduler import run_tick
from tests.browser.conftest import PHONE, screenshot, visible_text
from tests.campaigns.run_helpers import RecordingDialer, end_call, in_flight
from tests.conftest import ROOT, TEST_QUEUE, WORKER_COMMAND, _test_database_url, purge_test_queue
from tests.factories import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Threads: the run's ticks, the simulated calls and the recordings' ingest interleave as under `make run`.
THREADED_WORKER = [*WORKER_COMMAND, "--pool", "threads", "--concurrency", "4"]
FINISH_TIMEOUT_MS = 180_000


@pytest.fixture
def demo_campaign(carol, alice, bob) -> Campaign:
    """The demo campaign, seeded in carol's team as ``seed_demo`` seeds it, with the simulator's calls and the
    retries shortened so that a test run takes seconds rather than minutes."""
    campaign = seed_campaign(team=carol.team, manager=carol, agents=[alice, bob]).campaign
    campaign.dialer_settings = {
        **campaign.dialer_settings,
        "ring_seconds": [0.2, 0.8],
        "min_seconds": 1,
        "max_seconds": 3,
    }
    campaign.retry_no_answer_delay = campaign.retry_busy_delay = campaign.retry_failed_delay = 1
    campaign.max_concurrent_calls = 6
    campaign.save()
    return campaign


@pytest.fixture
def worker(live_server, recordings_root: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "RECORDINGS_ROOT": str(recordings_root),
        "CELERY_TASK_DEFAULT_QUEUE": TEST_QUEUE,
        "CALLBOOK_PUBLIC_URL": live_server.url,
        "CAMPAIGN_TICK_INTERVAL_SECONDS": "0.3",
        "TRANSCRIPTION_BACKEND": "none",
    }
    # The browser fixture allows Django's ORM under Playwright's loop in this process; the worker needs no such thing.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    log = tmp_path / "worker.log"
    purge_test_queue()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            THREADED_WORKER, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def counter(page, name: str) -> int:
    return int(page.locator(f"[data-counter='{name}']").first.inner_text())


def test_a_manager_launches_the_demo_run_and_watches_it_to_the_end_without_reloading(
    demo_campaign, worker, signed_in_page, console, live_server
):
    page = signed_in_page(demo_campaign.manager)
    page.click(".mainnav a:has-text('Campaigns')")
    page.wait_for_url("**/campaigns/")
    page.click(f"a:has-text('{demo_campaign.name}')")
    page.wait_for_url(f"**/campaigns/{demo_campaign.pk}/")
    assert "20 contacts" in visible_text(page)
    page.click("#launch-button")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(campaign=demo_campaign)
    assert page.url == f"{live_server.url}/runs/{run.pk}/"
    assert "launched" in visible_text(page)

    # A mark on this document: a reload or a navigation would give the page a new one without it.
    page.evaluate("() => { window.__sameDocument = true; }")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)

    # Mid-run: calls in the table, the bar moving, the log growing, all without a reload.
    page.wait_for_function(
        "() => document.querySelectorAll('#run-calls tr[data-dial]').length > 0"
        " && Number(document.querySelector('#progress-bar').value) > 0",
        timeout=60_000,
    )
    screenshot(page, "run-live")
    page.wait_for_function(
        "() => Number(document.querySelector('#progress-bar').value) === 100"
        " && document.querySelector('#run-status [data-state]').dataset.state === 'completed'",
        timeout=FINISH_TIMEOUT_MS,
    )
    # The report is swapped in once the run is over.
    page.wait_for_selector("#report-table", timeout=15_000)
    assert navigations == []
    assert page.evaluate("() => window.__sameDocument") is True

    run.refresh_from_db()
    assert run.state == Run.State.COMPLETED
    assert page.locator("#progress-percent").inner_text() == "100"
    for name in ("completed", "no_answer", "busy", "failed", "skipped_dnc", "dials"):
        assert counter(page, name) == getattr(run, name), name
    assert run.skipped_dnc == 1
    assert run.completed + run.no_answer + run.busy + run.failed + run.skipped_dnc == 20
    # The scheduler's last word ("completed") is at the top of the log, as it happened.
    assert "completed" in page.locator("#run-log li").first.inner_text().lower()
    assert page.locator("#relaunch-button").is_visible()
    assert not page.locator("#pause-button").count()

    # The calls link to the recording browser, whose recordings came in from the simulator.
    page.wait_for_function(
        "() => document.querySelector(\"#run-calls tr[data-outcome='completed'][data-recording='available']\")",
        timeout=60_000,
    )
    screenshot(page, "run-finished")
    answered = CallSession.objects.filter(campaign=demo_campaign, status="completed", recording_status="available")
    assert answered.exists()
    session = answered.first()
    assert session is not None
    page.click(f"#run-calls a[href='/calls/{session.pk}/']")
    page.wait_for_url(f"**/calls/{session.pk}/")
    page.wait_for_function(
        "() => document.querySelector('#player') && document.querySelector('#player').readyState >= 1"
    )
    console.assert_clean()


def finished_run(campaign: Campaign) -> Run:
    """The campaign's run driven to its end by the engine in this process (no worker needed)."""
    assert campaign.manager is not None
    run = run_launch(actor=campaign.manager, campaign=campaign)
    outcomes = ["completed", "no_answer", "busy", "completed"]
    for step in range(100):
        for index, dial in enumerate(in_flight(run)):
            end_call(dial.session_id, outcomes[(dial.pk + index) % len(outcomes)])
        now = timezone.now() + timedelta(seconds=60 * step)
        run_tick(run_id=run.pk, now=now, dialer=RecordingDialer(source="simulator"))
        run.refresh_from_db()
        if not run.is_active:
            return run
    raise AssertionError("the run did not finish")


def test_a_teammate_follows_a_finished_run_read_only_on_a_phone(demo_campaign, alice, browser, live_server, console):
    run = finished_run(demo_campaign)
    context = browser.new_context(viewport=PHONE, base_url=live_server.url, locale="en-US", timezone_id="UTC")
    context.on("console", console.on_console)
    try:
        page = context.new_page()
        page.goto("/accounts/login/")
        page.fill("#id_username", alice.username)
        page.fill("#id_password", TEST_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        page.goto(f"/runs/{run.pk}/")
        assert page.locator("#read-only-notice").is_visible()
        assert page.locator("#run-controls form").count() == 0
        assert page.locator("#report-table").is_visible()
        assert page.locator("svg.run-chart rect.chart-bar").count() >= 3
        assert page.locator("#progress-percent").inner_text() == "100"
        screenshot(page, "run-report-phone")
        # A POST she could only forge: refused with the reason, nothing changes.
        response = page.request.post(f"/runs/{run.pk}/cancel/", form={"confirm": "yes"})
        assert response.status == 403
    finally:
        context.close()
    console.assert_clean()


def test_a_manager_creates_a_campaign_and_the_form_explains_a_mistake(carol, signed_in_page, console):
    page = signed_in_page(carol)
    page.goto("/campaigns/new/")
    # Only the chosen dialer's settings are shown.
    assert page.locator("#dialer-simulator").is_visible()
    assert not page.locator("#dialer-http").is_visible()
    page.fill("#id_name", "Browser campaign")
    page.fill("#id_window_start", "10:00")
    page.fill("#id_window_end", "10:00")
    page.click("#save-campaign")
    page.wait_for_selector("#window_end-errors")
    assert "starts and ends at the same time" in page.locator("#window_end-errors").inner_text()
    # The first field in error has the focus.
    assert page.evaluate("() => document.activeElement.id") == "id_window_end"
    page.check("input[name=dialer][value=http]")
    assert page.locator("#dialer-http").is_visible()
    assert not page.locator("#dialer-simulator").is_visible()
    screenshot(page, "campaign-form-error")
    page.check("input[name=dialer][value=simulator]")
    page.fill("#id_window_end", "18:00")
    page.click("#save-campaign")
    page.wait_for_url(re.compile(r"/campaigns/\d+/$"))
    assert "Campaign “Browser campaign” created." in visible_text(page)
    assert page.locator("#launch-button").is_visible()
    console.assert_clean()
