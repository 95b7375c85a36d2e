"""The campaign engine's Prometheus counters move when dials, run transitions and breaker trips happen, and
only once the transaction that made them real has committed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from campaigns.models import Run
from campaigns.scheduler import run_tick
from tests.campaigns.run_helpers import RecordingDialer, campaign_with_contacts, end_call, in_flight, launch

pytestmark = pytest.mark.django_db


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_it_counts_dials_by_outcome_sessions_and_the_breaker_trip(carol, django_capture_on_commit_callbacks):
    campaign = campaign_with_contacts(
        carol, 8, max_concurrent_calls=4, breaker_window=4, breaker_min_dials=4, breaker_failure_rate=0.5
    )
    before = {
        "started": value("callbook_dials_total", outcome="started"),
        "failed": value("callbook_dials_total", outcome="failed"),
        "completed": value("callbook_dials_total", outcome="completed"),
        "sessions": value("callbook_sessions_created_total", origin="campaign"),
        "trips": value("callbook_run_breaker_trips_total"),
        "paused": value("callbook_run_transitions_total", state="paused"),
    }
    with django_capture_on_commit_callbacks(execute=True):
        run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        run_tick(run_id=run.pk, now=t0, dialer=dialer)
    assert value("callbook_dials_total", outcome="started") - before["started"] == 4
    assert value("callbook_sessions_created_total", origin="campaign") - before["sessions"] == 4

    dials = in_flight(run)
    end_call(dials[0].session_id, "completed")
    for dial in dials[1:]:
        end_call(dial.session_id, "failed")
    with django_capture_on_commit_callbacks(execute=True):
        result = run_tick(run_id=run.pk, now=t0 + timedelta(seconds=1), dialer=dialer)

    assert result.breaker_tripped
    run.refresh_from_db()
    assert run.state == Run.State.PAUSED
    assert value("callbook_dials_total", outcome="completed") - before["completed"] == 1
    assert value("callbook_dials_total", outcome="failed") - before["failed"] == 3
    assert value("callbook_run_breaker_trips_total") - before["trips"] == 1
    assert value("callbook_run_transitions_total", state="paused") - before["paused"] == 1


def test_it_counts_nothing_for_a_tick_that_rolled_back(carol):
    # Without executing on-commit callbacks (the test's transaction never commits), nothing is counted.
    campaign = campaign_with_contacts(carol, 3, max_concurrent_calls=3)
    started = value("callbook_dials_total", outcome="started")
    run = launch(campaign)
    run_tick(run_id=run.pk, now=timezone.now(), dialer=RecordingDialer())
    assert len(in_flight(run)) == 3
    assert value("callbook_dials_total", outcome="started") == started
