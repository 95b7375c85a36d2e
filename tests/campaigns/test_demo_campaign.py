"""The demo campaign ``seed_demo`` adds: launchable by carol from the browser at any hour, run to its end, and
launchable again; the same after every re-run of the seed."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from calls.models import CallSession
from campaigns import demo
from campaigns.models import Campaign, Contact, DoNotCall, Run, RunContact
from campaigns.phones import phone_normalize
from campaigns.scheduler import run_tick, window_is_open
from crm.demo import seed_people
from tests.campaigns.run_helpers import RecordingDialer, end_call, in_flight

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The demo people's passwords are beside the point here; hashing them properly costs a second each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people():
    return seed_people(password="demo-password")


@pytest.fixture
def seeded(people) -> demo.DemoCampaign:
    return demo.seed_campaign(team=people.team, manager=people.manager, agents=people.agents)


def counts() -> dict[str, int]:
    return {
        "campaigns": Campaign.objects.count(),
        "contacts": Contact.objects.count(),
        "do_not_call": DoNotCall.objects.count(),
        "listed": Campaign.contacts.through.objects.count(),
        "agents": Campaign.agents.through.objects.count(),
    }


def test_it_seeds_the_demo_campaign_once(people, seeded):
    assert seeded.created
    assert seeded.contacts_created == 20
    before = counts()
    again = demo.seed_campaign(team=people.team, manager=people.manager, agents=people.agents)
    assert not again.created
    assert again.contacts_created == 0
    assert again.campaign.pk == seeded.campaign.pk
    assert counts() == before == {"campaigns": 1, "contacts": 20, "do_not_call": 1, "listed": 20, "agents": 2}


def test_it_keeps_what_someone_changed_in_the_demo_campaign(people, seeded):
    Campaign.objects.filter(pk=seeded.campaign.pk).update(max_calls_per_minute=3)
    demo.seed_campaign(team=people.team, manager=people.manager, agents=people.agents)
    seeded.campaign.refresh_from_db()
    assert seeded.campaign.max_calls_per_minute == 3


def test_it_is_a_simulator_campaign_of_the_demo_team_run_by_carol(people, seeded):
    campaign = seeded.campaign
    assert campaign.name == "Demo outbound"
    assert campaign.team == people.team
    assert campaign.manager == people.manager
    assert campaign.status == Campaign.Status.ACTIVE
    assert campaign.dialer == Campaign.Dialer.SIMULATOR
    odds = campaign.dialer_settings["odds"]
    assert all(odds[outcome] > 0 for outcome in ("completed", "no_answer", "busy", "failed"))  # mixed outcomes
    assert {agent.username for agent in campaign.agents.all()} == {"alice", "bob"}
    # The form shows these settings and can save them back unchanged.
    from campaigns.forms import CampaignForm

    assert CampaignForm(campaign=campaign, explicit_contacts=20).initial["dialer"] == "simulator"


def test_its_contacts_have_valid_numbers_in_many_time_zones(seeded):
    contacts = list(seeded.campaign.contacts.all())
    assert len(contacts) == 20
    for contact in contacts:
        assert phone_normalize(contact.phone).e164 == contact.phone
    zones = {contact.timezone or seeded.campaign.default_timezone for contact in contacts}
    assert len(zones) >= 10
    countries = {phone_normalize(contact.phone).region for contact in contacts}
    assert len(countries) >= 8
    assert Contact.objects.get(phone=demo.DEMO_DO_NOT_CALL).do_not_call


@pytest.mark.parametrize("hour", [0, 3, 9, 12, 18, 23])
def test_its_calling_window_is_open_at_any_hour_in_every_contacts_zone(seeded, hour: int):
    campaign = seeded.campaign
    for day in range(7):
        moment = dt.datetime(2026, 3, 2 + day, hour, 59, 30, tzinfo=dt.UTC)
        for contact in campaign.contacts.all():
            local = moment.astimezone(ZoneInfo(contact.timezone or campaign.default_timezone))
            assert window_is_open(campaign=campaign, local=local), (contact.timezone, local)


def drive_to_the_end(run: Run) -> Run:
    """Tick the run along, the calls it places ending in turn as the simulator's would."""
    outcomes = ["completed", "no_answer", "busy", "completed", "failed"]
    start = timezone.now()
    for step in range(200):
        for index, dial in enumerate(in_flight(run)):
            end_call(dial.session_id, outcomes[(dial.pk + index) % len(outcomes)])
        run_tick(run_id=run.pk, now=start + timedelta(seconds=30 * step), dialer=RecordingDialer(source="simulator"))
        run.refresh_from_db()
        if not run.is_active:
            return run
    raise AssertionError(f"the demo run did not end: {run.state}")


def test_carol_launches_it_from_the_browser_runs_it_to_the_end_and_launches_again(
    seeded, client_for, django_capture_on_commit_callbacks
):
    campaign = seeded.campaign
    client = client_for(campaign.manager)
    assert 'id="launch-button"' in client.get(f"/campaigns/{campaign.pk}/").content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/campaigns/{campaign.pk}/launch/")
    first = Run.objects.get(campaign=campaign)
    assert response["Location"] == f"/runs/{first.pk}/"
    assert first.total == 20

    finished = drive_to_the_end(first)
    assert finished.state == Run.State.COMPLETED
    assert finished.skipped_dnc == 1
    assert RunContact.objects.filter(run=finished, state=RunContact.State.PENDING).count() == 0
    # Owned in turn by the campaign's agents, in the demo team.
    owners = set(CallSession.objects.filter(campaign=campaign).values_list("owner__username", flat=True))
    assert owners == {"alice", "bob"}
    assert 'id="report-table"' in client.get(f"/runs/{finished.pk}/").content.decode()

    with django_capture_on_commit_callbacks(execute=False):
        again = client.post(f"/campaigns/{campaign.pk}/launch/")
    second = Run.objects.exclude(pk=first.pk).get(campaign=campaign)
    assert again["Location"] == f"/runs/{second.pk}/"
    assert second.state == Run.State.RUNNING
    assert second.total == 20


def test_it_is_seeded_by_the_seed_demo_command(settings):
    settings.DEBUG = True
    out = StringIO()
    call_command("seed_demo", stdout=out)
    campaign = Campaign.objects.get(name="Demo outbound")
    assert f"launch it from /campaigns/{campaign.pk}/" in out.getvalue()
    call_command("seed_demo", stdout=StringIO())
    assert Campaign.objects.filter(name="Demo outbound").count() == 1
    assert campaign.contacts.count() == 20
