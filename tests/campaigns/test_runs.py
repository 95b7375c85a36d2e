"""Run control (campaigns/runs.py): launch, pause, resume and cancel, mid-run, with their rules and log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Dial, Run, RunContact, RunLog
from campaigns.run_selectors import run_log_entries, run_progress, run_report
from campaigns.runs import RunError, run_cancel, run_pause, run_resume
from campaigns.scheduler import run_tick
from tests.campaigns.run_helpers import RecordingDialer, campaign_with_contacts, end_call, in_flight, launch
from tests.factories import CampaignFactory, ContactFactory, make_integration

pytestmark = pytest.mark.django_db


def test_it_launches_a_run_with_a_snapshot_of_the_campaigns_contacts(carol):
    campaign = campaign_with_contacts(carol, 3, status=Campaign.Status.DRAFT)
    run = launch(campaign)

    assert (run.state, run.total, run.queued, run.launched_by) == ("running", 3, 3, carol)
    assert run.started_at is not None
    assert RunContact.objects.filter(run=run, state="pending").count() == 3
    entry = RunLog.objects.get(run=run)
    assert (entry.kind, entry.actor) == ("launched", carol)
    assert entry.message.startswith("Launched by carol with 3 contact(s) to call")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE
    # A contact added after the launch is not part of this run.
    campaign.contacts.add(ContactFactory.create(team=campaign.team))
    assert RunContact.objects.filter(run=run).count() == 3


def test_it_selects_the_teams_contacts_by_the_filter_when_there_is_no_list(carol):
    campaign = CampaignFactory.create(manager=carol, contact_filter={"company": "acme", "custom": {"tier": "gold"}})
    gold = ContactFactory.create(team=campaign.team, company="ACME", custom_fields={"tier": "gold"})
    ContactFactory.create(team=campaign.team, company="ACME", custom_fields={"tier": "silver"})
    ContactFactory.create(team=campaign.team, company="Other", custom_fields={"tier": "gold"})
    run = launch(campaign)
    assert list(RunContact.objects.filter(run=run).values_list("contact_id", flat=True)) == [gold.pk]


@pytest.mark.parametrize(
    ("change", "code", "status"),
    [
        ({"status": Campaign.Status.ARCHIVED}, "campaign_archived", 409),
        ({"status": Campaign.Status.PAUSED}, "campaign_paused", 409),
        ({"dialer_settings": {"odds": {"maybe": 1}}}, "invalid_dialer_settings", 400),
        ({"dialer": "http", "dialer_settings": {"url": "https://agent.example/dial"}}, "invalid_dialer_settings", 400),
        ({"contact_filter": {"city": "Paris"}}, "invalid_contact_filter", 400),
    ],
)
def test_it_refuses_to_launch_with_the_reason(carol, change, code, status):
    campaign = CampaignFactory.create(manager=carol, **change)
    if "contact_filter" not in change:
        campaign.contacts.set([ContactFactory.create(team=campaign.team)])
    with pytest.raises(RunError) as caught:
        launch(campaign)
    assert (caught.value.code, caught.value.status) == (code, status)
    assert not Run.objects.exists()


def test_it_refuses_a_campaign_without_contacts_and_a_second_active_run(carol):
    empty = CampaignFactory.create(manager=carol)
    with pytest.raises(RunError, match="no contacts to call") as caught:
        launch(empty)
    assert caught.value.code == "no_contacts"

    campaign = campaign_with_contacts(carol, 1)
    first = launch(campaign)
    with pytest.raises(RunError, match=f"Run {first.pk} of this campaign is still running") as caught:
        launch(campaign)
    assert caught.value.code == "run_active"


def test_it_refuses_an_http_dialer_whose_integration_does_not_exist(carol):
    settings = {"url": "https://agent.example/dial", "signing_secret": "s" * 20, "source": "voice-agent"}
    campaign = campaign_with_contacts(carol, 1, dialer="http", dialer_settings=settings)
    with pytest.raises(RunError) as caught:
        launch(campaign)
    assert caught.value.code == "unknown_source"
    make_integration("voice-agent")
    assert launch(campaign).state == "running"


def test_it_creates_the_simulator_integration_on_first_launch(carol):
    from calls.models import Source

    launch(campaign_with_contacts(carol, 1))
    assert Source.objects.filter(name="simulator", user__role="integration").exists()


def test_pause_stops_new_dials_keeps_reconciling_and_resume_continues(carol):
    campaign = campaign_with_contacts(carol, 6, max_concurrent_calls=2)
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    run_tick(run_id=run.pk, now=t0, dialer=dialer)

    paused = run_pause(actor=carol, run=run, reason="Agent retraining", now=t0 + timedelta(seconds=1))
    assert (paused.state, paused.state_reason) == ("paused", "Paused by carol: Agent retraining")
    for dial in in_flight(run):
        end_call(dial.session_id, "completed")
    result = run_tick(run_id=run.pk, now=t0 + timedelta(seconds=2), dialer=dialer)
    assert (result.reconciled, result.dialed) == (2, 0)
    assert result.next_tick_in is None  # nothing in flight: a paused run sleeps until resumed
    run.refresh_from_db()
    assert (run.completed, run.dialing, run.queued) == (2, 0, 4)

    with pytest.raises(RunError) as caught:
        run_pause(actor=carol, run=run)
    assert caught.value.code == "not_running"

    resumed = run_resume(actor=carol, run=run, now=t0 + timedelta(seconds=3))
    assert resumed.state == "running"
    assert run_tick(run_id=run.pk, now=t0 + timedelta(seconds=4), dialer=dialer).dialed == 2
    log = [(e.kind, e.actor) for e in RunLog.objects.filter(run=run, kind__in=["paused", "resumed"])]
    assert log == [("paused", carol), ("resumed", carol)]


def test_cancel_skips_waiting_contacts_and_lets_calls_in_flight_finish_without_retries(carol):
    campaign = campaign_with_contacts(carol, 5, max_concurrent_calls=2, retry_no_answer_max_attempts=3)
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    run_tick(run_id=run.pk, now=t0, dialer=dialer)

    canceled = run_cancel(actor=carol, run=run, now=t0 + timedelta(seconds=1))

    assert (canceled.state, canceled.finished_at) == ("canceled", None)  # two calls still in flight
    assert canceled.state_reason == (
        "Canceled by carol: 3 waiting contact(s) skipped; 2 call(s) in progress will end on their own"
    )
    skipped = RunContact.objects.filter(run=run, state="skipped")
    assert skipped.count() == 3
    assert set(skipped.values_list("last_outcome", flat=True)) == {"canceled"}
    # A new run must wait for the canceled run's calls to end: a contact is never called by two runs at once.
    with pytest.raises(RunError) as caught:
        launch(campaign)
    assert caught.value.code == "calls_in_flight"

    first, second = in_flight(run)
    end_call(first.session_id, "no_answer")
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=2), dialer=dialer)
    run.refresh_from_db()
    assert (run.no_answer, run.dialing, run.finished_at) == (1, 1, None)  # no retry for a canceled run
    end_call(second.session_id, "completed")
    result = run_tick(run_id=run.pk, now=t0 + timedelta(seconds=3), dialer=dialer)
    run.refresh_from_db()
    assert run.finished_at == t0 + timedelta(seconds=3)
    assert result.next_tick_in is None
    assert len(dialer.requests) == 2
    progress = run_progress(run=run)
    assert (progress["skipped_canceled"], progress["percent"]) == (3, 100.0)

    with pytest.raises(RunError) as caught:
        run_cancel(actor=carol, run=run)
    assert caught.value.code == "run_finished"
    assert launch(campaign).state == "running"


def test_it_refuses_to_resume_a_run_that_is_not_paused(carol):
    run = launch(campaign_with_contacts(carol, 1))
    with pytest.raises(RunError) as caught:
        run_resume(actor=carol, run=run)
    assert caught.value.code == "not_paused"


def test_progress_log_and_report_describe_a_finished_run(carol, alice):
    campaign = campaign_with_contacts(carol, 4, max_concurrent_calls=4, retry_busy_max_attempts=1)
    campaign.agents.set([alice])
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    run_tick(run_id=run.pk, now=t0, dialer=dialer)
    for dial, outcome in zip(in_flight(run), ["completed", "completed", "busy", "no_answer"], strict=True):
        end_call(dial.session_id, outcome)
    Campaign.objects.filter(pk=campaign.pk).update(retry_no_answer_max_attempts=1)
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=90), dialer=dialer)
    run.refresh_from_db()

    progress = run_progress(run=run)
    assert progress["state"] == "completed"
    assert (progress["completed"], progress["busy"], progress["no_answer"], progress["percent"]) == (2, 1, 1, 100.0)
    assert progress["finished_at"] == (t0 + timedelta(seconds=90)).isoformat()
    assert progress["eta"] is None

    report = run_report(run=run)
    assert report["contacts"] == {"completed": 2, "no_answer": 1, "busy": 1, "failed": 0, "canceled": 0, "dnc": 0}
    assert report["dials"]["total"] == 4
    assert (report["answered"], report["answer_rate"]) == (2, 0.5)
    assert report["agents"] == [{"agent": "alice", "dials": 4, "completed": 2}]
    assert run.finished_at is not None
    assert run.started_at is not None
    assert report["duration_seconds"] == pytest.approx((run.finished_at - run.started_at).total_seconds())

    entries = run_log_entries(run=run)
    assert entries[0].kind == "launched"
    assert entries[-1].kind == "completed"
    assert [e.id for e in run_log_entries(run=run, after_id=entries[-3].id)] == [e.id for e in entries[-2:]]
    assert len(run_log_entries(run=run, limit=2)) == 2


def test_it_estimates_the_end_from_the_pace_so_far(carol):
    campaign = campaign_with_contacts(carol, 4, max_concurrent_calls=1)
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = run.started_at
    assert t0 is not None
    assert run_progress(run=run, now=t0)["eta"] is None  # no pace yet
    run_tick(run_id=run.pk, now=t0, dialer=dialer)
    end_call(in_flight(run)[0].session_id, "completed")
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=60), dialer=dialer)
    run.refresh_from_db()
    # One contact a minute so far, three to go (one of them in flight).
    eta = run_progress(run=run, now=t0 + timedelta(seconds=60))["eta"]
    assert eta == (t0 + timedelta(seconds=240)).isoformat()
    assert Dial.objects.filter(run=run).count() == 2
