"""The scheduler's tick (campaigns/scheduler/), driven along simulated timelines with an injected ``now``.

Calls end the way a voice agent ends them (events through calls.services); the dialer is a recording stand-in.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from calls.models import CallSession
from campaigns.models import Campaign, Dial, Run, RunContact, RunLog
from campaigns.runs import run_resume
from campaigns.scheduler import run_tick, window_is_open, window_next_opening
from campaigns.scheduler import tick as tick_module
from tests.campaigns.run_helpers import (
    RecordingDialer,
    campaign_with_contacts,
    contact,
    end_call,
    in_flight,
    launch,
)
from tests.factories import CampaignFactory, ContactFactory, DoNotCallFactory

pytestmark = pytest.mark.django_db


def kinds(run: Run) -> list[str]:
    return list(RunLog.objects.filter(run=run).order_by("id").values_list("kind", flat=True))


def messages(run: Run, kind: str) -> list[str]:
    return list(RunLog.objects.filter(run=run, kind=kind).order_by("id").values_list("message", flat=True))


# --- Pacing ------------------------------------------------------------------------------------------------


def test_it_never_exceeds_concurrency_or_rate_over_a_simulated_timeline(carol):
    campaign = campaign_with_contacts(carol, 40, max_concurrent_calls=4, max_calls_per_minute=10)
    run = launch(campaign)
    dialer = RecordingDialer()
    rng = random.Random(7)  # noqa: S311  # call lengths, reproducible
    lengths: dict[int, int] = {}
    start = timezone.now()
    state = ""
    for step in range(600):
        now = start + timedelta(seconds=5 * step)
        for dial in in_flight(run):
            if (now - dial.dialed_at).total_seconds() >= lengths.setdefault(dial.pk, rng.randint(5, 40)):
                end_call(dial.session_id, "completed")
        state = run_tick(run_id=run.pk, now=now, dialer=dialer).state
        run.refresh_from_db()
        # The counters agree with the rows after every tick.
        assert run.dialing == len(in_flight(run)) <= 4
        if state == Run.State.COMPLETED:
            break
    assert state == Run.State.COMPLETED

    dials = list(Dial.objects.filter(run=run).order_by("dialed_at", "id"))
    assert len(dials) == 40
    assert len({dial.target_id for dial in dials}) == 40
    peak_concurrency = peak_rate = 0
    for dial in dials:
        at = dial.dialed_at
        concurrent = sum(1 for d in dials if d.dialed_at <= at and (d.finished_at is None or d.finished_at > at))
        last_minute = sum(1 for d in dials if at - timedelta(seconds=60) < d.dialed_at <= at)
        peak_concurrency, peak_rate = max(peak_concurrency, concurrent), max(peak_rate, last_minute)
    assert peak_concurrency == 4  # never above the limit, and the limit was used
    assert peak_rate == 10
    assert (run.completed, run.queued, run.dialing, run.dials) == (40, 0, 0, 40)


def test_it_caps_the_dials_of_one_tick_by_the_rate_even_with_free_lines(carol):
    campaign = campaign_with_contacts(carol, 10, max_concurrent_calls=10, max_calls_per_minute=3)
    run = launch(campaign)
    dialer = RecordingDialer()
    now = timezone.now()

    assert run_tick(run_id=run.pk, now=now, dialer=dialer).dialed == 3
    assert run_tick(run_id=run.pk, now=now + timedelta(seconds=59), dialer=dialer).dialed == 0
    assert run_tick(run_id=run.pk, now=now + timedelta(seconds=60), dialer=dialer).dialed == 3


# --- Calling windows ---------------------------------------------------------------------------------------


def test_it_dials_each_contact_inside_its_own_local_window(carol):
    campaign = CampaignFactory.create(
        manager=carol,
        window_start=dt.time(9),
        window_end=dt.time(17),
        window_days=[1, 2, 3, 4, 5],
        default_timezone="Europe/Paris",
    )
    tokyo = contact("+81312345678", campaign, name="Yuki", timezone="Asia/Tokyo")
    paris = contact("+33142685300", campaign, name="Amélie", timezone="Europe/Paris")
    new_york = contact("+12125550123", campaign, name="Jordan", timezone="America/New_York")
    unknown = contact("+33142685301", campaign, name="Camille", timezone="")  # the campaign's default: Paris
    campaign.contacts.set([tokyo, paris, new_york, unknown])
    run = launch(campaign)
    dialer = RecordingDialer()

    # Wednesday 08:30 UTC: 17:30 in Tokyo (closed), 09:30 in Paris (open), 03:30 in New York (closed).
    wednesday = dt.datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    result = run_tick(run_id=run.pk, now=wednesday, dialer=dialer)

    assert sorted(request.to_number for request in dialer.requests) == [paris.phone, unknown.phone]
    assert result.postponed == 2
    targets = {t.contact_id: t for t in RunContact.objects.filter(run=run)}
    assert targets[tokyo.pk].state == "pending"
    assert targets[tokyo.pk].next_attempt_at == dt.datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # Thu 09:00 JST
    assert targets[new_york.pk].next_attempt_at == dt.datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # Wed 09:00 EST
    assert targets[tokyo.pk].attempts == 0  # postponed, not dialed and not dropped
    run.refresh_from_db()
    assert run.outside_window == 2
    assert sorted(messages(run, "outside_window")) == [
        "Jordan (+12125550123) is outside the calling window (local time Wed 03:30 America/New_York): "
        "postponed until Wed 2026-11-25 09:00 America/New_York.",
        "Yuki (+81312345678) is outside the calling window (local time Wed 17:30 Asia/Tokyo): "
        "postponed until Thu 2026-11-26 09:00 Asia/Tokyo.",
    ]
    for dial in in_flight(run):
        end_call(dial.session_id, "completed")

    # Later ticks before a contact's window opens do not touch it (nor log it again).
    run_tick(run_id=run.pk, now=wednesday + timedelta(hours=2), dialer=dialer)
    assert len(messages(run, "outside_window")) == 2
    assert len(dialer.requests) == 2

    run_tick(run_id=run.pk, now=dt.datetime(2026, 11, 25, 14, 0, tzinfo=UTC), dialer=dialer)
    assert dialer.requests[-1].to_number == new_york.phone
    run.refresh_from_db()
    assert run.outside_window == 1
    end_call(in_flight(run)[0].session_id, "completed")

    run_tick(run_id=run.pk, now=dt.datetime(2026, 11, 26, 0, 0, tzinfo=UTC), dialer=dialer)
    assert dialer.requests[-1].to_number == tokyo.phone
    end_call(in_flight(run)[0].session_id, "completed")
    assert run_tick(run_id=run.pk, now=dt.datetime(2026, 11, 26, 0, 1, tzinfo=UTC), dialer=dialer).completed
    run.refresh_from_db()
    assert (run.completed, run.outside_window, run.dials) == (4, 0, 4)


FRIDAY_NIGHT = {"window_start": dt.time(22), "window_end": dt.time(2), "window_days": [5]}
PARIS = dt.timezone(dt.timedelta(hours=1))  # a fixed offset keeps the expected values obvious


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        (dt.datetime(2026, 11, 27, 23, 0, tzinfo=PARIS), True),  # Friday 23:00
        (dt.datetime(2026, 11, 28, 1, 30, tzinfo=PARIS), True),  # Saturday 01:30 belongs to Friday's window
        (dt.datetime(2026, 11, 28, 2, 0, tzinfo=PARIS), False),  # the end is exclusive
        (dt.datetime(2026, 11, 28, 23, 0, tzinfo=PARIS), False),  # Saturday night is not a calling night
        (dt.datetime(2026, 11, 27, 21, 59, tzinfo=PARIS), False),
        (dt.datetime(2026, 11, 27, 1, 0, tzinfo=PARIS), False),  # Friday 01:00 belongs to Thursday's window
    ],
)
def test_it_treats_a_window_crossing_midnight_as_part_of_the_day_it_opens(local, is_open):
    assert window_is_open(campaign=Campaign(**FRIDAY_NIGHT), local=local) is is_open


def test_it_finds_the_next_opening_of_windows_across_weekends_midnight_and_dst():
    friday_night = Campaign(**FRIDAY_NIGHT)
    saturday = dt.datetime(2026, 11, 28, 3, 0, tzinfo=PARIS)
    assert window_next_opening(campaign=friday_night, local=saturday) == dt.datetime(2026, 12, 4, 22, tzinfo=PARIS)

    weekdays = Campaign(window_start=dt.time(9), window_end=dt.time(17), window_days=[1, 2, 3, 4, 5])
    friday_evening = dt.datetime(2026, 11, 27, 18, 0, tzinfo=PARIS)
    assert window_next_opening(campaign=weekdays, local=friday_evening) == dt.datetime(2026, 11, 30, 9, tzinfo=PARIS)

    # New York springs forward on Sunday 2026-03-08: 09:00 that day is 13:00 UTC, not 14:00.
    every_day = Campaign(window_start=dt.time(9), window_end=dt.time(17), window_days=[])
    new_york = ZoneInfo("America/New_York")
    saturday_evening = dt.datetime(2026, 3, 7, 18, 0, tzinfo=new_york)
    opening = window_next_opening(campaign=every_day, local=saturday_evening)
    assert opening.astimezone(UTC) == dt.datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


# --- Do not call -------------------------------------------------------------------------------------------


def test_it_skips_do_not_call_numbers_checked_at_dial_time_even_when_added_mid_run(carol, dave):
    campaign = campaign_with_contacts(carol, 0, max_concurrent_calls=1)
    first = contact("+12025550001", campaign, name="First")
    flagged = contact("+12025550002", campaign, name="Flagged", do_not_call=True)
    listed_later = contact("+12025550003", campaign, name="Listed later")
    other_teams_entry = contact("+12025550004", campaign, name="Fine")
    campaign.contacts.set([first, flagged, listed_later, other_teams_entry])
    DoNotCallFactory.create(team=dave.team, phone=other_teams_entry.phone)  # another team's list: not ours
    run = launch(campaign)
    dialer = RecordingDialer()
    now = timezone.now()

    run_tick(run_id=run.pk, now=now, dialer=dialer)
    assert [r.to_number for r in dialer.requests] == [first.phone]
    # Added to the team's list while the run is going.
    DoNotCallFactory.create(team=campaign.team, phone=listed_later.phone, reason="Asked on the phone")
    end_call(in_flight(run)[0].session_id, "completed")
    run_tick(run_id=run.pk, now=now + timedelta(seconds=5), dialer=dialer)

    assert [r.to_number for r in dialer.requests] == [first.phone, other_teams_entry.phone]
    targets = {t.contact_id: t for t in RunContact.objects.filter(run=run)}
    assert (targets[flagged.pk].state, targets[flagged.pk].last_outcome) == ("skipped", "dnc")
    assert (targets[listed_later.pk].state, targets[listed_later.pk].last_outcome) == ("skipped", "dnc")
    assert targets[flagged.pk].attempts == targets[listed_later.pk].attempts == 0
    run.refresh_from_db()
    assert (run.skipped_dnc, run.dials) == (2, 2)
    assert messages(run, "skipped_dnc") == [
        "Skipped Flagged (+12025550002): on its do-not-call flag.",
        "Skipped Listed later (+12025550003): on the team's do-not-call list.",
    ]


# --- Outcomes and retries ----------------------------------------------------------------------------------


def test_it_schedules_retries_per_outcome_with_each_outcomes_delay_and_attempts(carol):
    campaign = campaign_with_contacts(
        carol,
        0,
        max_concurrent_calls=10,
        retry_no_answer_delay=3600,
        retry_no_answer_max_attempts=3,
        retry_busy_delay=600,
        retry_busy_max_attempts=2,
        retry_failed_delay=60,
        retry_failed_max_attempts=1,
    )
    nobody = contact("+12025550011", campaign, name="Nobody home")
    engaged = contact("+12025550012", campaign, name="Engaged")
    broken = contact("+12025550013", campaign, name="Broken line")
    campaign.contacts.set([nobody, engaged, broken])
    run = launch(campaign)
    dialer = RecordingDialer()
    outcome_of = {nobody.phone: "no_answer", engaged.phone: "busy", broken.phone: "failed"}
    t0 = timezone.now()

    def play(at: dt.datetime) -> list[str]:
        """Tick at ``at`` and end every call in flight with its contact's outcome; the numbers dialed."""
        run_tick(run_id=run.pk, now=at, dialer=dialer)
        dialed = []
        for dial in in_flight(run):
            dialed.append(dial.target.contact.phone)
            end_call(dial.session_id, outcome_of[dial.target.contact.phone])
        run_tick(run_id=run.pk, now=at + timedelta(seconds=1), dialer=dialer)
        return sorted(dialed)

    assert play(t0) == sorted([nobody.phone, engaged.phone, broken.phone])
    targets = {t.contact_id: t for t in RunContact.objects.filter(run=run)}
    assert targets[nobody.pk].next_attempt_at == t0 + timedelta(seconds=3601)
    assert targets[engaged.pk].next_attempt_at == t0 + timedelta(seconds=601)
    assert (targets[broken.pk].state, targets[broken.pk].last_outcome) == ("done", "failed")  # 1 attempt allowed
    run.refresh_from_db()
    assert (run.queued, run.failed, run.dialing) == (2, 1, 0)

    assert play(t0 + timedelta(seconds=600)) == []  # not due yet
    assert play(t0 + timedelta(seconds=601)) == [engaged.phone]
    assert play(t0 + timedelta(seconds=3601)) == [nobody.phone]  # engaged is done after 2 busy attempts
    assert play(t0 + timedelta(seconds=7202)) == [nobody.phone]
    run.refresh_from_db()
    assert run.state == Run.State.COMPLETED
    assert (run.no_answer, run.busy, run.failed, run.completed, run.dials) == (1, 1, 1, 0, 6)
    attempts = dict(RunContact.objects.filter(run=run).values_list("contact__phone", "attempts"))
    assert attempts == {nobody.phone: 3, engaged.phone: 2, broken.phone: 1}
    retry_lines = messages(run, "retry_scheduled")
    assert len(retry_lines) == 3
    assert retry_lines[0].startswith("Nobody home (+12025550011): no answer on attempt 1 of 3; retry scheduled for")


def test_it_fails_a_dial_with_no_final_status_after_max_call_seconds(carol):
    campaign = campaign_with_contacts(carol, 1, max_call_seconds=120, retry_failed_max_attempts=1)
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    run_tick(run_id=run.pk, now=t0, dialer=dialer)
    session_id = dialer.requests[0].session_id
    end_call(session_id, "ringing", answered=False)

    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=119), dialer=dialer)
    assert len(in_flight(run)) == 1
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=120), dialer=dialer)

    dial = Dial.objects.get(run=run)
    assert (dial.outcome, dial.outcome_reason) == ("failed", "No final status from the voice agent within 120 s")
    session = CallSession.objects.get(pk=session_id)
    assert (session.status, session.end_reason) == ("failed", "No final status from the voice agent within 120 s")
    run.refresh_from_db()
    assert (run.state, run.failed) == ("completed", 1)


def test_it_counts_an_abandoned_session_as_failed_and_a_canceled_one_by_the_failed_rules(carol):
    campaign = campaign_with_contacts(carol, 2, max_concurrent_calls=2, retry_failed_max_attempts=1)
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    run_tick(run_id=run.pk, now=t0, dialer=dialer)
    first, second = in_flight(run)
    end_call(first.session_id, "abandoned", answered=False)
    end_call(second.session_id, "canceled", answered=True)
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=1), dialer=dialer)

    outcomes = dict(Dial.objects.filter(run=run).values_list("session_id", "outcome"))
    assert outcomes == {first.session_id: "failed", second.session_id: "canceled"}
    run.refresh_from_db()
    assert (run.failed, run.connected, run.state) == (2, 1, "completed")


def test_it_marks_a_dial_the_dialer_refuses_failed_with_the_reason(carol):
    campaign = campaign_with_contacts(carol, 2, max_concurrent_calls=2, retry_failed_delay=60)
    refused = Campaign.objects.get(pk=campaign.pk).contacts.order_by("pk").first()
    assert refused is not None
    run = launch(campaign)
    dialer = RecordingDialer(refuse={refused.phone})
    t0 = timezone.now()

    result = run_tick(run_id=run.pk, now=t0, dialer=dialer)

    assert (result.dialed, result.dispatch_failed) == (2, 1)
    dial = Dial.objects.get(run=run, target__contact=refused)
    assert (dial.outcome, dial.outcome_reason) == ("failed", "Dialer: HTTP 503: agent overloaded")
    assert dial.session.status == "failed"
    target = dial.target
    target.refresh_from_db()
    assert (target.state, target.next_attempt_at) == ("pending", t0 + timedelta(seconds=60))
    run.refresh_from_db()
    assert (run.dialing, run.queued) == (1, 1)


# --- Circuit breaker ---------------------------------------------------------------------------------------


def test_it_pauses_the_run_when_the_circuit_breaker_trips_and_counts_afresh_after_resume(carol):
    campaign = campaign_with_contacts(
        carol,
        30,
        max_concurrent_calls=3,
        breaker_window=6,
        breaker_min_dials=4,
        breaker_failure_rate=0.5,
        retry_failed_max_attempts=1,
    )
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    run_tick(run_id=run.pk, now=t0, dialer=dialer)
    # Three completed, then failures: 2 of 5 is under the threshold and 3 of 6 trips it.
    for dial in in_flight(run):
        end_call(dial.session_id, "completed")
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=1), dialer=dialer)
    first_failures = in_flight(run)
    for dial in first_failures[:2]:
        end_call(dial.session_id, "failed")
    assert not run_tick(run_id=run.pk, now=t0 + timedelta(seconds=2), dialer=dialer).breaker_tripped
    end_call(first_failures[2].session_id, "failed")
    dialed_before = len(dialer.requests)
    result = run_tick(run_id=run.pk, now=t0 + timedelta(seconds=3), dialer=dialer)

    assert result.breaker_tripped
    run.refresh_from_db()
    assert run.state == Run.State.PAUSED
    assert run.state_reason.startswith("Circuit breaker: 3 of the last 6 finished calls failed (50%")
    entry = RunLog.objects.get(run=run, kind="breaker_tripped")
    assert (entry.level, entry.actor) == ("warning", None)
    # Paused: calls in flight are still reconciled, nothing new is dialed.
    still_flying = in_flight(run)
    for dial in still_flying:
        end_call(dial.session_id, "failed")
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=4), dialer=dialer)
    assert len(in_flight(run)) == 0
    assert len(dialer.requests) == dialed_before

    run_resume(actor=carol, run=run, now=t0 + timedelta(seconds=5))
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=6), dialer=dialer)
    run.refresh_from_db()
    # The failures before the resume do not count again: the resumed run dials.
    assert run.state == Run.State.RUNNING
    assert len(dialer.requests) == dialed_before + 3


def test_it_does_not_trip_the_breaker_below_its_minimum_number_of_dials(carol):
    campaign = campaign_with_contacts(carol, 5, max_concurrent_calls=3, breaker_min_dials=4, breaker_window=10)
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    run_tick(run_id=run.pk, now=t0, dialer=dialer)
    for dial in in_flight(run):
        end_call(dial.session_id, "failed")
    assert not run_tick(run_id=run.pk, now=t0 + timedelta(seconds=1), dialer=dialer).breaker_tripped
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING


# --- Owners, sessions and the hand-off ---------------------------------------------------------------------


def test_it_creates_each_session_before_the_hand_off_with_the_campaigns_agents_in_turn(carol, alice, bob):
    campaign = campaign_with_contacts(carol, 4, max_concurrent_calls=4, caller_id="+12025550100")
    campaign.agents.set([alice, bob])
    run = launch(campaign)
    seen_in_database: list[str] = []

    class CheckingDialer(RecordingDialer):
        def dial(self, request):
            # The session row is committed before the request leaves.
            seen_in_database.append(CallSession.objects.get(pk=request.session_id).status)
            super().dial(request)

    dialer = CheckingDialer()
    run_tick(run_id=run.pk, dialer=dialer)

    assert seen_in_database == ["queued"] * 4
    sessions = list(CallSession.objects.filter(campaign=campaign).order_by("to_number"))
    owners = [s.owner.username if s.owner else "" for s in sessions]
    assert sorted(owners) == ["alice", "alice", "bob", "bob"]  # in turn
    for session, request in zip(sessions, sorted(dialer.requests, key=lambda r: r.to_number), strict=True):
        assert request.session_id == session.pk
        assert (session.origin, session.direction, session.status) == ("campaign", "outbound", "queued")
        assert (session.team_id, session.source, session.from_number) == (
            campaign.team_id,
            "pipecat-prod",
            "+12025550100",
        )
        assert session.contact is not None
        assert session.contact.phone == session.to_number == request.to_number
        assert request.events_url == f"http://127.0.0.1:8000/api/crm/sessions/{session.pk}/events/"
    assert Dial.objects.filter(run=run, sent_at__isnull=True).count() == 0


def test_it_makes_the_campaign_manager_own_the_calls_when_no_agent_is_assigned(carol):
    campaign = campaign_with_contacts(carol, 1)
    run = launch(campaign)
    run_tick(run_id=run.pk, dialer=RecordingDialer())
    assert CallSession.objects.get(campaign=campaign).owner == carol


# --- Restart safety ----------------------------------------------------------------------------------------


def test_it_hands_a_dial_whose_hand_off_never_happened_over_again_with_the_same_session(carol, settings, monkeypatch):
    settings.CAMPAIGN_DISPATCH_GRACE_SECONDS = 30
    campaign = campaign_with_contacts(carol, 1)
    run = launch(campaign)
    t0 = timezone.now()
    # The worker dies right after the commit: claim, session and dial are in the database, no request left.
    with monkeypatch.context() as patched:
        patched.setattr(tick_module, "hand_off", lambda tick, dialer: None)
        run_tick(run_id=run.pk, now=t0, dialer=RecordingDialer())
    dial = Dial.objects.get(run=run)
    assert (dial.sent_at, dial.target.state) == (None, "dialing")

    dialer = RecordingDialer()
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=29), dialer=dialer)
    assert dialer.requests == []  # within the grace period a hand-off may still be under way
    result = run_tick(run_id=run.pk, now=t0 + timedelta(seconds=31), dialer=dialer)
    assert result.redispatched == 1
    assert [r.session_id for r in dialer.requests] == [dial.session_id]  # the same call, not a second one
    assert Dial.objects.filter(run=run).count() == 1
    dial.refresh_from_db()
    assert (dial.dispatch_attempts, dial.sent_at is not None) == (2, True)
    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=90), dialer=dialer)
    assert len(dialer.requests) == 1  # handed over once: sent_at is set
    assert "redispatched" in kinds(run)


def test_it_fails_a_dial_that_could_never_be_handed_off_and_applies_the_retry_rules(carol, settings, monkeypatch):
    settings.CAMPAIGN_DISPATCH_GRACE_SECONDS = 10
    campaign = campaign_with_contacts(carol, 1, retry_failed_max_attempts=2, retry_failed_delay=0)
    run = launch(campaign)
    t0 = timezone.now()
    monkeypatch.setattr(tick_module, "hand_off", lambda tick, dialer: None)
    for second in (0, 11, 22, 33):
        run_tick(run_id=run.pk, now=t0 + timedelta(seconds=second), dialer=RecordingDialer())

    first = Dial.objects.filter(run=run).order_by("id").first()
    assert first is not None
    assert (first.outcome, first.dispatch_attempts) == ("failed", 3)
    assert first.outcome_reason == "The call could not be handed to the voice agent after 3 attempt(s)"
    assert first.session.status == "failed"
    # The contact is not lost: its second attempt is a new dial, with a new session.
    assert Dial.objects.filter(run=run).count() == 2


def test_it_puts_back_a_contact_claimed_without_a_dial_and_dials_it_once(carol):
    campaign = campaign_with_contacts(carol, 2, max_concurrent_calls=5)
    run = launch(campaign)
    orphan = RunContact.objects.filter(run=run).order_by("position").first()
    assert orphan is not None
    # What a crash between a claim and its dial would leave if they were not committed together.
    RunContact.objects.filter(pk=orphan.pk).update(state="dialing", attempts=1)
    Run.objects.filter(pk=run.pk).update(queued=1, dialing=1)
    dialer = RecordingDialer()

    run_tick(run_id=run.pk, dialer=dialer)

    assert sorted(r.contact["id"] for r in dialer.requests) == sorted(
        RunContact.objects.filter(run=run).values_list("contact_id", flat=True)
    )
    orphan.refresh_from_db()
    assert (orphan.state, orphan.attempts) == ("dialing", 1)
    assert Dial.objects.filter(target=orphan).count() == 1
    assert "claim_repaired" in kinds(run)


@pytest.mark.django_db(transaction=True)
def test_two_racing_ticks_never_dial_a_contact_twice_nor_above_the_concurrency(carol):
    campaign = campaign_with_contacts(carol, 30, max_concurrent_calls=7, max_calls_per_minute=1000)
    run = launch(campaign)
    dialer = RecordingDialer()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            barrier.wait(timeout=10)
            run_tick(run_id=run.pk, dialer=dialer)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    dials = list(Dial.objects.filter(run=run))
    assert len(dials) == 7
    assert len({d.target_id for d in dials}) == 7
    assert len({r.session_id for r in dialer.requests}) == len(dialer.requests) == 7
    run.refresh_from_db()
    assert (run.dialing, run.queued, run.dials) == (7, 23, 7)


def test_it_ticks_nothing_for_a_missing_run():
    assert run_tick(run_id=987654).state == "missing"


def test_it_schedules_at_most_one_follow_up_tick_at_a_time(carol):
    campaign = campaign_with_contacts(carol, 3)
    run = launch(campaign)
    dialer = RecordingDialer()
    first = run_tick(run_id=run.pk, dialer=dialer)
    second = run_tick(run_id=run.pk, dialer=dialer)
    assert first.next_tick_in == 1.0
    assert second.next_tick_in is None  # the first one's follow-up is still on its way
    Run.objects.filter(pk=run.pk).update(next_tick_at=timezone.now() - timedelta(seconds=1))
    assert run_tick(run_id=run.pk, dialer=dialer).next_tick_in == 1.0  # overdue: its message was lost


def test_it_sleeps_until_the_next_due_contact_when_nothing_is_in_flight(carol):
    campaign = campaign_with_contacts(carol, 1, retry_no_answer_delay=600)
    run = launch(campaign)
    dialer = RecordingDialer()
    t0 = timezone.now()
    run_tick(run_id=run.pk, now=t0, dialer=dialer)
    end_call(dialer.requests[0].session_id, "no_answer")
    Run.objects.filter(pk=run.pk).update(next_tick_at=None)
    result = run_tick(run_id=run.pk, now=t0, dialer=dialer)
    assert result.next_tick_in == 60.0  # capped: beat and the hook are the backstops


def test_it_does_not_include_other_teams_contacts_put_on_the_list(carol, dave):
    campaign = campaign_with_contacts(carol, 2)
    stranger = ContactFactory.create(team=dave.team)
    campaign.contacts.add(stranger)
    run = launch(campaign)
    assert run.total == 2
    assert not RunContact.objects.filter(run=run, contact=stranger).exists()


# --- What queues ticks -------------------------------------------------------------------------------------


def test_a_campaign_call_ending_queues_its_runs_tick_on_commit(carol, monkeypatch, django_capture_on_commit_callbacks):
    from campaigns import tasks

    queued: list[int] = []

    def enqueue(*, run_id: int) -> bool:
        queued.append(run_id)
        return True

    monkeypatch.setattr(tasks, "tick_enqueue", enqueue)
    run = launch(campaign_with_contacts(carol, 1))
    run_tick(run_id=run.pk, dialer=RecordingDialer())
    session_id = in_flight(run)[0].session_id

    with django_capture_on_commit_callbacks(execute=True):
        end_call(session_id, "ringing", answered=False)  # not an end: nothing to do yet
    assert queued == []
    with django_capture_on_commit_callbacks(execute=True):
        end_call(session_id, "no_answer")
    assert queued == [run.pk]


def test_the_safety_net_ticks_only_runs_whose_chain_of_ticks_stopped(carol, dave, monkeypatch):
    from campaigns import tasks

    queued: list[int] = []

    def enqueue(*, run_id: int) -> bool:
        queued.append(run_id)
        return True

    monkeypatch.setattr(tasks, "tick_enqueue", enqueue)
    stale = launch(campaign_with_contacts(carol, 1))
    fresh = launch(campaign_with_contacts(carol, 1))
    paused_with_calls = launch(campaign_with_contacts(dave, 1))
    idle_paused = launch(campaign_with_contacts(dave, 1))
    now = timezone.now()
    Run.objects.filter(pk=stale.pk).update(next_tick_at=now - timedelta(seconds=30))
    Run.objects.filter(pk=fresh.pk).update(next_tick_at=now + timedelta(seconds=1))
    Run.objects.filter(pk=paused_with_calls.pk).update(state="paused", dialing=1, next_tick_at=None)
    Run.objects.filter(pk=idle_paused.pk).update(state="paused", dialing=0, next_tick_at=None)

    assert tasks.tick_active_runs() == 2
    assert sorted(queued) == sorted([stale.pk, paused_with_calls.pk])


def test_a_canceled_run_never_hands_over_a_dial_left_unsent(carol, settings, monkeypatch):
    from campaigns.runs import run_cancel

    settings.CAMPAIGN_DISPATCH_GRACE_SECONDS = 10
    run = launch(campaign_with_contacts(carol, 1))
    t0 = timezone.now()
    with monkeypatch.context() as patched:
        patched.setattr(tick_module, "hand_off", lambda tick, dialer: None)
        run_tick(run_id=run.pk, now=t0, dialer=RecordingDialer())
    run_cancel(actor=carol, run=run, now=t0 + timedelta(seconds=1))
    dialer = RecordingDialer()

    run_tick(run_id=run.pk, now=t0 + timedelta(seconds=11), dialer=dialer)

    assert dialer.requests == []
    dial = Dial.objects.get(run=run)
    assert (dial.outcome, dial.session.status) == ("canceled", "canceled")
    run.refresh_from_db()
    assert (run.state, run.finished_at) == ("canceled", t0 + timedelta(seconds=11))
