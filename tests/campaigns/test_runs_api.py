"""The campaigns and runs API: who may read, who may control (403 with the reason), who gets 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from campaigns.models import Campaign, Run, RunLog
from campaigns.scheduler import run_tick
from tests.campaigns.run_helpers import (
    ALWAYS_OPEN,
    RecordingDialer,
    campaign_with_contacts,
    end_call,
    in_flight,
    launch,
)
from tests.factories import ContactFactory, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(carol, alice) -> Campaign:
    campaign = campaign_with_contacts(carol, 3, name="Spring renewals", max_concurrent_calls=2)
    campaign.agents.set([alice])
    return campaign


@pytest.fixture
def run(campaign) -> Run:
    return launch(campaign)


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)[1]}")
    return client


# --- Reading -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), [("carol", 200), ("alice", 200), ("bob", 200), ("admin_user", 200)])
def test_the_team_and_admins_read_a_campaign_and_its_runs(request, campaign, run, who, status):
    client = client_of(request.getfixturevalue(who))
    detail = client.get(f"/api/crm/campaigns/{campaign.pk}")
    assert detail.status_code == status
    assert detail.json()["name"] == "Spring renewals"
    assert detail.json()["agents"] == ["alice"]
    runs = client.get(f"/api/crm/campaigns/{campaign.pk}/runs/")
    assert [r["id"] for r in runs.json()["results"]] == [run.pk]
    progress = client.get(f"/api/crm/runs/{run.pk}")
    assert progress.status_code == 200
    assert (progress.json()["state"], progress.json()["total"]) == ("running", 3)


@pytest.mark.parametrize("who", ["charlie", "dave", "integration_user"])
def test_outsiders_and_integrations_get_404_for_everything(request, campaign, run, who, integration):
    user = integration[0].user if who == "integration_user" else request.getfixturevalue(who)
    client = client_of(user)
    for path in (
        f"/api/crm/campaigns/{campaign.pk}",
        f"/api/crm/campaigns/{campaign.pk}/runs",
        f"/api/crm/runs/{run.pk}",
        f"/api/crm/runs/{run.pk}/dials",
        f"/api/crm/runs/{run.pk}/log",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] in {"campaign_not_found", "run_not_found"}
    for path in (f"/api/crm/runs/{run.pk}/pause", f"/api/crm/runs/{run.pk}/cancel"):
        assert client.post(path).status_code == 404
    assert client.post(f"/api/crm/campaigns/{campaign.pk}/runs/").status_code == 404
    assert client.patch(f"/api/crm/campaigns/{campaign.pk}", {"name": "Mine"}, format="json").status_code == 404
    assert client.get("/api/crm/campaigns/").json()["results"] == []
    run.refresh_from_db()
    assert run.state == "running"


def test_a_malformed_id_is_a_404_too(carol):
    client = client_of(carol)
    assert client.get("/api/crm/runs/not-a-number").json() == {"detail": "Run not found.", "code": "run_not_found"}
    assert client.get("/api/crm/campaigns/99999999999999999999999").status_code == 404


def test_the_campaign_list_pins_its_query_count(carol, campaign, django_assert_max_num_queries):
    for n in range(4):
        campaign_with_contacts(carol, 2, name=f"Extra {n}")
    client = client_of(carol)
    # auth token + token touch, the page of campaigns with counts, their agents (prefetch)
    with django_assert_max_num_queries(6):
        response = client.get("/api/crm/campaigns/")
    assert len(response.json()["results"]) == 5


def test_dials_and_log_are_paginated_with_pinned_queries(carol, run, django_assert_max_num_queries):
    run_tick(run_id=run.pk, dialer=RecordingDialer())
    client = client_of(carol)
    with django_assert_max_num_queries(6):
        dials = client.get(f"/api/crm/runs/{run.pk}/dials/?page_size=1")
    body = dials.json()
    assert len(body["results"]) == 1
    assert body["next"] is not None
    first = body["results"][0]
    assert first["session"]["status"] == "queued"
    assert first["session"]["owner"] == "alice"
    assert first["contact"]["phone"].startswith("+1")
    everything = client.get(f"/api/crm/runs/{run.pk}/dials/").json()["results"]
    assert len(everything) == 2
    with django_assert_max_num_queries(5):
        log = client.get(f"/api/crm/runs/{run.pk}/log").json()
    assert [entry["kind"] for entry in log["results"]] == ["launched", "dialed", "dialed"]
    assert log["results"][0]["actor"] == "carol"


# --- Controlling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["carol", "admin_user"])
def test_the_manager_and_admins_launch_pause_resume_and_cancel(request, campaign, who):
    client = client_of(request.getfixturevalue(who))
    launched = client.post(f"/api/crm/campaigns/{campaign.pk}/runs/")
    assert launched.status_code == 201
    run_id = launched.json()["id"]
    assert launched["Location"] == f"http://testserver/api/crm/runs/{run_id}"
    assert launched.json()["state"] == "running"

    conflict = client.post(f"/api/crm/campaigns/{campaign.pk}/runs")
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "run_active"

    paused = client.post(f"/api/crm/runs/{run_id}/pause/", {"reason": "Script update"}, format="json")
    assert paused.status_code == 200
    assert paused.json()["state_reason"].endswith(": Script update")
    assert client.post(f"/api/crm/runs/{run_id}/pause").json()["code"] == "not_running"
    assert client.post(f"/api/crm/runs/{run_id}/resume").json()["state"] == "running"
    canceled = client.post(f"/api/crm/runs/{run_id}/cancel")
    assert (canceled.json()["state"], canceled.json()["skipped_canceled"]) == ("canceled", 3)
    again = client.post(f"/api/crm/runs/{run_id}/resume")
    assert (again.status_code, again.json()["code"]) == (409, "not_paused")
    actors = set(RunLog.objects.filter(run_id=run_id).values_list("actor__username", flat=True))
    assert actors == {request.getfixturevalue(who).username}


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_agents_of_the_team_may_not_control_runs(request, campaign, run, who):
    client = client_of(request.getfixturevalue(who))
    for path in (f"/api/crm/runs/{run.pk}/pause", f"/api/crm/runs/{run.pk}/resume", f"/api/crm/runs/{run.pk}/cancel"):
        response = client.post(path)
        assert response.status_code == 403
        assert response.json() == {
            "detail": "Only the campaign's team manager or an admin may control its runs.",
            "code": "not_allowed",
        }
    assert client.post(f"/api/crm/campaigns/{campaign.pk}/runs").status_code == 403
    assert client.patch(f"/api/crm/campaigns/{campaign.pk}", {"name": "x"}, format="json").status_code == 403
    run.refresh_from_db()
    assert run.state == "running"


def test_launch_explains_a_campaign_without_contacts(carol):
    empty = campaign_with_contacts(carol, 0)
    response = client_of(carol).post(f"/api/crm/campaigns/{empty.pk}/runs/")
    assert response.status_code == 400
    assert response.json()["code"] == "no_contacts"


def test_progress_follows_the_run_to_its_end(carol, run):
    dialer = RecordingDialer()
    client = client_of(carol)
    while (state := run_tick(run_id=run.pk, dialer=dialer).state) != "completed":
        for dial in in_flight(run):
            end_call(dial.session_id, "completed")
    assert state == "completed"
    body = client.get(f"/api/crm/runs/{run.pk}/").json()
    assert (body["completed"], body["percent"], body["dials"], body["connected"]) == (3, 100.0, 3, 3)
    assert body["finished_at"] is not None


# --- Campaigns: create and edit ----------------------------------------------------------------------------


def test_a_manager_creates_a_campaign_in_their_team(carol, alice, sales_team):
    contact = ContactFactory.create(team=sales_team)
    response = client_of(carol).post(
        "/api/crm/campaigns/",
        {
            "name": "Winback",
            "caller_id": "+1 (202) 555-0100",
            "agents": ["alice"],
            "contact_ids": [contact.pk],
            "dialer": "http",
            "dialer_settings": {
                "url": "https://agent.example/dial",
                "signing_secret": "a-very-long-signing-secret",
                "source": "voice-agent",
                "script_id": "winback-1",
            },
            "window_days": [5, 1, 2],
            "default_timezone": "europe/paris",
            **{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in ALWAYS_OPEN.items()},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["Location"] == body["url"]
    assert (body["team"], body["manager"], body["agents"]) == ("Sales", "carol", ["alice"])
    assert body["caller_id"] == "+12025550100"
    assert body["default_timezone"] == "Europe/Paris"
    assert body["contacts_count"] == 1
    # The secret is write-only.
    assert body["dialer_settings"] == {
        "url": "https://agent.example/dial",
        "source": "voice-agent",
        "script_id": "winback-1",
        "signing_secret_set": True,
    }
    campaign = Campaign.objects.get(pk=body["id"])
    assert campaign.dialer_settings["signing_secret"] == "a-very-long-signing-secret"

    # A PATCH of the other settings keeps the secret.
    patched = client_of(carol).patch(
        body["url"],
        {"dialer_settings": {"url": "https://agent.example/v2", "source": "voice-agent"}, "max_concurrent_calls": 9},
        format="json",
    )
    assert patched.status_code == 200, patched.json()
    campaign.refresh_from_db()
    assert campaign.dialer_settings["signing_secret"] == "a-very-long-signing-secret"
    assert (campaign.dialer_settings["url"], campaign.max_concurrent_calls) == ("https://agent.example/v2", 9)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"dialer_settings": {"odds": {"maybe": 1}}}, "dialer_settings"),
        ({"caller_id": "12"}, "caller_id"),
        ({"default_timezone": "Mars/Olympus"}, "default_timezone"),
        ({"window_days": [1, 1]}, "window_days"),
        ({"window_start": "10:00", "window_end": "10:00"}, "window_end"),
        ({"breaker_window": 5, "breaker_min_dials": 6}, "breaker_min_dials"),
        ({"contact_filter": {"city": "Paris"}}, "contact_filter"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_campaign_input_is_refused_field_by_field(carol, data, field):
    response = client_of(carol).post("/api/crm/campaigns/", {"name": "Bad", **data}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]
    assert not Campaign.objects.filter(name="Bad").exists()


def test_only_managers_and_admins_create_campaigns_and_only_in_their_teams(alice, carol, other_team, integration):
    assert client_of(alice).post("/api/crm/campaigns/", {"name": "Mine"}, format="json").status_code == 403
    integration_client = client_of(integration[0].user)
    assert integration_client.post("/api/crm/campaigns/", {"name": "Mine"}, format="json").status_code == 403
    elsewhere = client_of(carol).post("/api/crm/campaigns/", {"name": "Theirs", "team": other_team.pk}, format="json")
    assert elsewhere.status_code == 400
    assert elsewhere.json()["errors"] == {"team": ["Not a team you manage."]}
    assert not Campaign.objects.exists()


def test_the_schema_documents_the_campaign_and_run_endpoints(admin_user):
    schema = client_of(admin_user).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values() if "operationId" in op}
    assert {
        "campaigns_list",
        "campaigns_create",
        "campaigns_retrieve",
        "campaigns_partial_update",
        "campaigns_runs_list",
        "campaigns_runs_launch",
        "runs_retrieve",
        "runs_pause",
        "runs_resume",
        "runs_cancel",
        "runs_dials_list",
        "runs_log_list",
    } <= operations
