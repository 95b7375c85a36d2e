"""The campaign pages: the list, a campaign, its create and edit forms and its Launch button, as the campaign's
manager (carol), a teammate agent (alice, read-only), the other team's manager (dave, an outsider), an outsider
agent (charlie) and an admin."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign, Run
from crm.models import User
from tests.factories import CampaignFactory, ContactFactory, DoNotCallFactory, ManagerFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = "/campaigns/"
NEW = "/campaigns/new/"


@pytest.fixture
def campaign(carol: User, alice: User, bob: User) -> Campaign:
    made = CampaignFactory.create(manager=carol, name="Spring renewals")
    for index in range(3):
        ContactFactory.create(team=carol.team, name=f"Renewal {index}")
    return made


@pytest.fixture
def other_campaign(dave: User, charlie: User) -> Campaign:
    made = CampaignFactory.create(manager=dave, name="Other outreach")
    ContactFactory.create(team=dave.team)
    return made


def detail(campaign: Campaign | str) -> str:
    return f"/campaigns/{getattr(campaign, 'pk', campaign)}/"


def page_text(response: Any) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def valid_form(**overrides: Any) -> dict[str, Any]:
    """Everything the create form posts for a simulator campaign calling all the team's contacts."""
    data: dict[str, Any] = {
        "name": "Autumn follow-up",
        "description": "",
        "status": "draft",
        "caller_id": "+1 415 555 0100",
        "dialer": "simulator",
        "http_url": "",
        "http_script_id": "",
        "http_source": "",
        "sim_completed_percent": "60",
        "sim_no_answer_percent": "20",
        "sim_busy_percent": "10",
        "sim_failed_percent": "10",
        "sim_min_seconds": "3",
        "sim_max_seconds": "8",
        "targeting": "all",
        "filter_company": "",
        "filter_field": "",
        "filter_value": "",
        "window_days": ["1", "2", "3", "4", "5"],
        "window_start": "09:00",
        "window_end": "18:30",
        "default_timezone": "Europe/Paris",
        "max_concurrent_calls": "4",
        "max_calls_per_minute": "20",
        "max_call_seconds": "600",
        "retry_no_answer_delay": "3600",
        "retry_no_answer_max_attempts": "3",
        "retry_busy_delay": "600",
        "retry_busy_max_attempts": "2",
        "retry_failed_delay": "1800",
        "retry_failed_max_attempts": "2",
        "breaker_window": "20",
        "breaker_min_dials": "10",
        "breaker_failure_percent": "50",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# --- The list ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "sees_sales", "sees_other"),
    [
        ("carol", True, False),
        ("alice", True, False),
        ("dave", False, True),
        ("charlie", False, True),
        ("admin_user", True, True),
    ],
)
def test_it_lists_the_campaigns_each_user_may_see(
    request, client_for, campaign, other_campaign, who: str, sees_sales: bool, sees_other: bool
):
    response = client_for(request.getfixturevalue(who)).get(LIST)
    assert response.status_code == 200
    text = page_text(response)
    assert ("Spring renewals" in text) is sees_sales
    assert ("Other outreach" in text) is sees_other


def test_it_shows_each_campaigns_latest_run(client_for, carol, campaign):
    Run.objects.create(campaign=campaign, state=Run.State.COMPLETED, total=4, completed=3, failed=1)
    latest = Run.objects.create(campaign=campaign, state=Run.State.RUNNING, total=10, completed=2, busy=2)
    response = client_for(carol).get(LIST)
    row = re.search(rf'<tr data-campaign="{campaign.pk}">(.*?)</tr>', response.content.decode(), re.S)
    assert row is not None
    assert f'href="/runs/{latest.pk}/"' in row.group(1)
    assert 'data-state="running"' in row.group(1)
    assert "40 % of 10" in re.sub(r"\s+", " ", row.group(1))


def test_it_offers_new_campaign_to_managers_only(client_for, carol, alice, campaign):
    assert 'id="new-campaign"' in client_for(carol).get(LIST).content.decode()
    assert 'id="new-campaign"' not in client_for(alice).get(LIST).content.decode()


def test_it_lists_campaigns_in_a_constant_number_of_queries(client_for, carol, django_assert_max_num_queries):
    def add(count: int) -> None:
        for _ in range(count):
            made = CampaignFactory.create(manager=carol)
            Run.objects.create(campaign=made, state=Run.State.COMPLETED, total=1, completed=1)

    client = client_for(carol)
    add(2)
    # session + user, the campaigns with their latest run (subqueries), "may create" (teams managed).
    with django_assert_max_num_queries(5):
        assert client.get(LIST).status_code == 200
    add(20)
    with django_assert_max_num_queries(5):
        response = client.get(LIST)
    assert response.content.decode().count("data-campaign=") == 22


def test_it_sends_anonymous_visitors_to_sign_in(campaign):
    for path in (LIST, NEW, detail(campaign)):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


# --- A campaign ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "controls"), [("carol", True), ("admin_user", True), ("alice", False), ("bob", False)])
def test_it_shows_a_campaign_to_its_team_and_its_buttons_to_those_who_may_control(
    request, client_for, campaign, who: str, controls: bool
):
    response = client_for(request.getfixturevalue(who)).get(detail(campaign))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Spring renewals" in html
    assert ('id="launch-button"' in html) is controls
    assert ('id="edit-campaign"' in html) is controls
    assert ('id="read-only-notice"' in html) is not controls


@pytest.mark.parametrize("who", ["dave", "charlie"])
def test_it_answers_outsiders_with_the_campaign_not_found_page(request, client_for, campaign, who: str):
    response = client_for(request.getfixturevalue(who)).get(detail(campaign))
    assert response.status_code == 404
    text = page_text(response)
    assert "Campaign not found" in text
    assert "Spring renewals" not in text
    assert 'href="/campaigns/"' in text


@pytest.mark.parametrize("campaign_id", ["999999", "not-a-number", "9" * 40])
def test_it_answers_a_missing_or_malformed_id_with_the_helpful_404(client_for, carol, campaign_id: str):
    response = client_for(carol).get(detail(campaign_id))
    assert response.status_code == 404
    assert "Campaign not found" in page_text(response)


def test_it_summarises_the_settings_and_counts_the_contacts_a_run_would_call(client_for, carol, campaign):
    campaign.window_days = [1, 2, 3]
    campaign.window_start, campaign.window_end = dt.time(8, 30), dt.time(17, 0)
    campaign.save()
    DoNotCallFactory.create(team=campaign.team, phone=campaign.team.contacts.first().phone)
    ContactFactory.create(team=campaign.team, do_not_call=True)
    ContactFactory.create()  # another team's: never counted
    text = page_text(client_for(carol).get(detail(campaign)))
    assert 'id="audience-count">4 ' in text
    assert "2 of them on the do-not-call list" in text
    assert "Mon, Tue, Wed" in text
    assert "08:30\u201317:00" in text  # an en dash


def test_it_counts_only_the_contacts_the_filter_selects(client_for, carol, campaign):
    ContactFactory.create(team=campaign.team, company="Acme", custom_fields={"tier": "gold"})
    ContactFactory.create(team=campaign.team, company="acme", custom_fields={"tier": "silver"})
    campaign.contact_filter = {"company": "ACME", "custom": {"tier": "gold"}}
    campaign.save()
    text = page_text(client_for(carol).get(detail(campaign)))
    assert 'id="audience-count">1 ' in text
    assert "<strong>ACME</strong>" in text


def test_it_lists_the_campaigns_runs_newest_first(client_for, alice, campaign):
    first = Run.objects.create(campaign=campaign, state=Run.State.COMPLETED, total=3, completed=3)
    second = Run.objects.create(campaign=campaign, state=Run.State.CANCELED, total=3, completed=1)
    html = client_for(alice).get(detail(campaign)).content.decode()
    assert html.index(f"/runs/{second.pk}/") < html.index(f"/runs/{first.pk}/")


def test_it_links_to_the_active_run_instead_of_offering_a_launch(client_for, carol, campaign):
    run = Run.objects.create(campaign=campaign, state=Run.State.RUNNING, total=3, queued=3)
    html = client_for(carol).get(detail(campaign)).content.decode()
    assert f'href="/runs/{run.pk}/" id="watch-run"' in html
    assert 'id="launch-button"' not in html


# --- Create ---------------------------------------------------------------------------------------------------------


def test_it_creates_a_campaign_with_every_setting(client_for, carol, alice, bob):
    response = client_for(carol).post(NEW, valid_form(agents=[str(alice.pk), str(bob.pk)]))
    campaign = Campaign.objects.get(name="Autumn follow-up")
    assert response.status_code == 302
    assert response["Location"] == detail(campaign)
    assert campaign.team == carol.team
    assert campaign.manager == carol
    assert campaign.caller_id == "+14155550100"
    assert campaign.window_days == [1, 2, 3, 4, 5]
    assert (campaign.window_start, campaign.window_end) == (dt.time(9, 0), dt.time(18, 30))
    assert campaign.default_timezone == "Europe/Paris"
    assert (campaign.max_concurrent_calls, campaign.max_calls_per_minute) == (4, 20)
    assert (campaign.retry_busy_delay, campaign.retry_busy_max_attempts) == (600, 2)
    assert campaign.breaker_failure_rate == 0.5
    assert campaign.dialer == "simulator"
    assert campaign.contact_filter == {}
    assert set(campaign.agents.all()) == {alice, bob}


def test_it_stores_an_http_voice_agent_and_a_contact_filter(client_for, carol):
    from calls.models import Source
    from tests.factories import make_integration

    make_integration("acme-agent", owner=carol)
    data = valid_form(
        dialer="http",
        http_url="https://agent.example.com/dial",
        http_script_id="renewal-v2",
        http_source="acme-agent",
        http_signing_secret="a-long-signing-secret",
        targeting="filter",
        filter_company="Acme",
        filter_field="tier",
        filter_value="gold",
        window_days=["1", "2", "3", "4", "5", "6", "7"],
    )
    assert client_for(carol).post(NEW, data).status_code == 302
    campaign = Campaign.objects.get(name="Autumn follow-up")
    assert Source.objects.filter(name="acme-agent").exists()
    assert campaign.dialer_settings == {
        "url": "https://agent.example.com/dial",
        "source": "acme-agent",
        "script_id": "renewal-v2",
        "signing_secret": "a-long-signing-secret",
    }
    assert campaign.contact_filter == {"company": "Acme", "custom": {"tier": "gold"}}
    assert campaign.window_days == []  # every day


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"window_start": "10:00", "window_end": "10:00"}, "window_end", "starts and ends at the same time"),
        ({"max_calls_per_minute": "0"}, "max_calls_per_minute", "Calls per minute at most must be at least 1"),
        ({"max_concurrent_calls": "0"}, "max_concurrent_calls", "must be at least 1"),
        ({"dialer": "http", "http_source": ""}, "http_url", "An HTTP voice agent needs its URL"),
        ({"dialer": "http", "http_url": "ftp://x"}, "http_url", "starting with https://"),
        ({"sim_completed_percent": "90"}, "sim_completed_percent", "add up to 130 %"),
        ({"sim_min_seconds": "9", "sim_max_seconds": "3"}, "sim_max_seconds", "cannot be shorter"),
        ({"caller_id": "4155550100"}, "caller_id", "country code"),
        ({"caller_id": "+1 415 000 0000"}, "caller_id", "not a valid number"),
        ({"window_days": None}, "window_days", "at least one day"),
        ({"targeting": "filter"}, "filter_company", "Give a company, a custom field"),
        ({"targeting": "filter", "filter_field": "tier"}, "filter_value", "value the custom field must have"),
        ({"breaker_window": "5", "breaker_min_dials": "10"}, "breaker_min_dials", "cannot wait for 10"),
        ({"breaker_failure_percent": "0"}, "breaker_failure_percent", "at least 1"),
        ({"name": ""}, "name", "Give the campaign a name"),
    ],
)
def test_it_explains_what_is_wrong_and_saves_nothing(client_for, carol, overrides, field: str, message: str):
    response = client_for(carol).post(NEW, valid_form(**overrides))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    html = response.content.decode()
    assert 'id="form-errors"' in html
    assert f'id="{field}-errors"' in html
    assert not Campaign.objects.filter(name="Autumn follow-up").exists()


def test_it_ignores_the_http_fields_of_a_simulator_campaign(client_for, carol):
    response = client_for(carol).post(NEW, valid_form(http_url="not a url"))
    assert response.status_code == 302
    assert "url" not in Campaign.objects.get(name="Autumn follow-up").dialer_settings


def test_it_refuses_a_name_the_team_already_uses(client_for, carol, campaign):
    response = client_for(carol).post(NEW, valid_form(name="spring RENEWALS"))
    assert response.status_code == 200
    assert "already has a campaign called" in " ".join(response.context["form"].errors["name"])
    assert Campaign.objects.filter(team=carol.team).count() == 1


def test_it_refuses_agents_of_another_team(client_for, carol, charlie):
    response = client_for(carol).post(NEW, valid_form(agents=[str(charlie.pk)]))
    assert response.status_code == 200
    assert "agents" in response.context["form"].errors
    assert not Campaign.objects.filter(name="Autumn follow-up").exists()


@pytest.mark.parametrize("who", ["alice", "charlie"])
def test_it_tells_agents_they_cannot_create_campaigns(request, client_for, who: str):
    client = client_for(request.getfixturevalue(who))
    response = client.get(NEW)
    assert response.status_code == 403
    assert "Only a team's manager or an admin can create campaigns" in page_text(response)
    assert client.post(NEW, valid_form()).status_code == 403
    assert not Campaign.objects.exists()


def test_it_lets_an_admin_choose_the_team(client_for, admin_user, carol, dave):
    client = client_for(admin_user)
    form = client.get(NEW).content.decode()
    assert 'name="team"' in form
    assert "Other team" in form
    response = client.post(NEW, valid_form(team=str(dave.team_id)))
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Autumn follow-up")
    assert campaign.team == dave.team
    assert campaign.manager == dave  # the team's manager runs it, not the admin who typed it in


def test_it_does_not_let_a_manager_create_in_another_team(client_for, carol, dave):
    response = client_for(carol).post(NEW, valid_form(team=str(dave.team_id)))
    assert response.status_code == 200
    assert "team" in response.context["form"].errors
    assert not Campaign.objects.exists()


def test_it_tells_a_manager_without_a_team_what_to_do(client_for):
    loner = ManagerFactory.create(username="loner", team=None)
    response = client_for(loner).get(NEW)
    assert response.status_code == 403
    assert "You do not manage a team yet" in page_text(response)


# --- Edit ------------------------------------------------------------------------------------------------------------


def edit(campaign: Campaign) -> str:
    return f"/campaigns/{campaign.pk}/edit/"


@pytest.mark.parametrize("who", ["carol", "admin_user"])
def test_it_edits_a_campaign(request, client_for, campaign, who: str):
    client = client_for(request.getfixturevalue(who))
    form = client.get(edit(campaign))
    assert form.status_code == 200
    assert 'value="Spring renewals"' in form.content.decode()
    response = client.post(edit(campaign), valid_form(name="Spring renewals", max_calls_per_minute="7"))
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.max_calls_per_minute == 7
    assert campaign.default_timezone == "Europe/Paris"


def test_it_keeps_the_signing_secret_when_left_empty_and_never_shows_it(client_for, carol, campaign):
    from tests.factories import make_integration

    make_integration("acme-agent", owner=carol)
    secret = "keep-me-keep-me-keep-me"
    campaign.dialer = "http"
    campaign.dialer_settings = {
        "url": "https://a.example/dial",
        "source": "acme-agent",
        "signing_secret": secret,
        "timeout_seconds": 5,
    }
    campaign.save()
    http = {"dialer": "http", "http_url": "https://b.example/dial", "http_source": "acme-agent"}
    client = client_for(carol)
    assert secret not in client.get(edit(campaign)).content.decode()
    assert client.post(edit(campaign), valid_form(name=campaign.name, **http)).status_code == 302
    campaign.refresh_from_db()
    assert campaign.dialer_settings == {
        "url": "https://b.example/dial",
        "source": "acme-agent",
        "signing_secret": secret,
        "timeout_seconds": 5,  # a setting the form does not show is kept
    }


@pytest.mark.parametrize(
    ("secret", "message"), [("", "needs a signing secret"), ("too-short", "at least 16 characters")]
)
def test_it_requires_a_long_enough_signing_secret_for_an_http_agent(client_for, carol, secret: str, message: str):
    from tests.factories import make_integration

    make_integration("acme-agent", owner=carol)
    data = valid_form(
        dialer="http", http_url="https://agent.example.com/", http_source="acme-agent", http_signing_secret=secret
    )
    response = client_for(carol).post(NEW, data)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["http_signing_secret"])
    assert not Campaign.objects.exists()


def test_it_shows_the_simulators_weights_as_percentages(client_for, carol, campaign):
    campaign.dialer_settings = {"odds": {"completed": 6, "no_answer": 2, "busy": 1, "failed": 1}}
    campaign.save()
    form = client_for(carol).get(edit(campaign)).context["form"]
    shares = [form[name].value() for name in ("sim_completed_percent", "sim_no_answer_percent")]
    assert shares == [60, 20]


def test_it_keeps_or_replaces_a_list_of_contacts_chosen_one_by_one(client_for, carol, campaign):
    chosen = list(campaign.team.contacts.all()[:2])
    campaign.contacts.set(chosen)
    client = client_for(carol)
    assert "The 2 contacts chosen one by one" in page_text(client.get(edit(campaign)))
    assert client.post(edit(campaign), valid_form(name=campaign.name, targeting="list")).status_code == 302
    assert campaign.contacts.count() == 2
    assert client.post(edit(campaign), valid_form(name=campaign.name, targeting="all")).status_code == 302
    assert campaign.contacts.count() == 0


def test_it_answers_a_teammates_edit_with_403_and_changes_nothing(client_for, alice, campaign):
    client = client_for(alice)
    assert client.get(edit(campaign)).status_code == 403
    response = client.post(edit(campaign), valid_form(name="Hijacked"))
    assert response.status_code == 403
    assert "Only the campaign's team manager or an admin" in page_text(response)
    campaign.refresh_from_db()
    assert campaign.name == "Spring renewals"


@pytest.mark.parametrize("who", ["dave", "charlie"])
def test_it_answers_an_outsiders_edit_with_404(request, client_for, campaign, who: str):
    client = client_for(request.getfixturevalue(who))
    assert client.get(edit(campaign)).status_code == 404
    assert client.post(edit(campaign), valid_form(name="Hijacked")).status_code == 404
    campaign.refresh_from_db()
    assert campaign.name == "Spring renewals"


# --- Launch ----------------------------------------------------------------------------------------------------------


def launch(client: Client, campaign: Campaign) -> Any:
    return client.post(f"/campaigns/{campaign.pk}/launch/")


@pytest.mark.parametrize("who", ["carol", "admin_user"])
def test_it_launches_a_run_and_opens_its_page(
    request, client_for, campaign, who: str, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = launch(client_for(request.getfixturevalue(who)), campaign)
    run = Run.objects.get(campaign=campaign)
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.state == Run.State.RUNNING
    assert run.total == 3


def test_it_answers_a_teammates_launch_with_403_and_launches_nothing(client_for, alice, campaign):
    response = launch(client_for(alice), campaign)
    assert response.status_code == 403
    assert "Only the campaign's team manager or an admin" in page_text(response)
    assert not Run.objects.exists()


@pytest.mark.parametrize("who", ["dave", "charlie"])
def test_it_answers_an_outsiders_launch_with_404(request, client_for, campaign, who: str):
    assert launch(client_for(request.getfixturevalue(who)), campaign).status_code == 404
    assert not Run.objects.exists()


def test_it_says_why_a_run_cannot_be_launched(client_for, carol, campaign):
    active = Run.objects.create(campaign=campaign, state=Run.State.RUNNING, total=3, queued=3)
    client = client_for(carol)
    response = launch(client, campaign)
    assert response.status_code == 302
    assert response["Location"] == detail(campaign)
    shown = messages_of(client.get(detail(campaign)))
    assert any(f"Run {active.pk} of this campaign is still running" in message for message in shown), shown
    assert Run.objects.filter(campaign=campaign).count() == 1


def test_it_says_a_campaign_without_contacts_cannot_be_launched(client_for, carol):
    empty = CampaignFactory.create(manager=carol, name="Nobody to call")
    client = client_for(carol)
    launch(client, empty)
    shown = messages_of(client.get(detail(empty)))
    assert any("no contacts to call" in message for message in shown), shown
    assert not Run.objects.exists()


def test_it_launches_again_once_the_previous_run_has_finished(
    client_for, carol, campaign, django_capture_on_commit_callbacks
):
    Run.objects.create(campaign=campaign, state=Run.State.COMPLETED, total=3, completed=3, finished_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False):
        response = launch(client_for(carol), campaign)
    assert response.status_code == 302
    assert Run.objects.filter(campaign=campaign).count() == 2
    assert Run.objects.filter(campaign=campaign, state=Run.State.RUNNING).count() == 1


def test_it_hides_campaigns_from_integrations(client_for, campaign):
    bot = UserFactory.create(username="bot", role=User.Role.INTEGRATION, team=campaign.team)
    assert client_for(bot).get(detail(campaign)).status_code == 404


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Who may see what is tested here, not the password hasher's cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_it_shows_a_campaign_in_a_constant_number_of_queries(
    client_for, carol, campaign, django_assert_max_num_queries
):
    client = client_for(carol)

    def add_runs(count: int) -> None:
        for _ in range(count):
            Run.objects.create(campaign=campaign, state=Run.State.COMPLETED, total=3, completed=3, launched_by=carol)

    add_runs(2)
    # session + user, the campaign, may-control, the audience (list size, list or filter, count, do-not-call),
    # the runs with who launched them, the active run, the agents.
    with django_assert_max_num_queries(11):
        assert client.get(detail(campaign)).status_code == 200
    add_runs(30)
    with django_assert_max_num_queries(11):
        response = client.get(detail(campaign))
    assert response.content.decode().count('class="row-link" href="/runs/') == 20
