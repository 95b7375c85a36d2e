"""POST /api/crm/sessions/<id>/events/ and the webhook POST /api/crm/events/."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from calls.models import CallEvent, CallSession, Source
from calls.signatures import SIGNATURE_HEADER, signature_header
from crm.models import User
from tests.factories import CallSessionFactory, make_integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(alice: User) -> CallSession:
    return CallSessionFactory.create(owner=alice)


def post_event(client: APIClient, session: CallSession, **body: object):
    return client.post(f"/api/crm/sessions/{session.pk}/events/", body, format="json")


def test_it_walks_a_call_through_its_life(api_client_for, alice, session):
    client = api_client_for(alice)
    t0 = timezone.now().replace(microsecond=0)
    for offset, kind in [(0, "initiated"), (2, "ringing"), (5, "answered"), (65, "bye")]:
        response = post_event(client, session, type=kind, occurred_at=(t0 + timedelta(seconds=offset)).isoformat())
        assert response.status_code == 201, response.json()
        assert response.json()["duplicate"] is False
        assert response["X-Session-ID"] == str(session.pk)
    session.refresh_from_db()
    assert session.status == "completed"
    assert session.started_at == t0
    assert session.answered_at == t0 + timedelta(seconds=5)
    assert session.ended_at == t0 + timedelta(seconds=65)
    assert session.duration_ms == 60_000
    assert session.end_reason == "completed"
    assert list(session.events.values_list("type", "status_before", "status_after")) == [
        ("initiated", "queued", "initiated"),
        ("ringing", "initiated", "ringing"),
        ("answered", "ringing", "in_progress"),
        ("completed", "in_progress", "completed"),
    ]


def test_it_stores_a_bye_received_three_times_once(api_client_for, alice, session):
    client = api_client_for(alice)
    post_event(client, session, type="answered")
    answers = [post_event(client, session, type="bye", data={"reason": "caller hung up"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    assert len({a.json()["event"]["id"] for a in answers}) == 1
    assert session.events.filter(type="completed").count() == 1
    session.refresh_from_db()
    assert session.end_reason == "caller hung up"


def test_it_stores_a_repeated_provider_event_id_once(api_client_for, alice, session):
    client = api_client_for(alice)
    first = post_event(client, session, type="dtmf", event_id="evt-7", data={"digit": "5"})
    again = post_event(client, session, type="dtmf", event_id="evt-7", data={"digit": "5"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["event"] == first.json()["event"]
    assert CallEvent.objects.count() == 1


def test_it_records_a_late_event_without_moving_the_status_back(api_client_for, alice, session):
    client = api_client_for(alice)
    post_event(client, session, type="answered")
    post_event(client, session, type="completed")
    late = post_event(client, session, type="ringing", occurred_at=(timezone.now() - timedelta(minutes=5)).isoformat())
    assert late.status_code == 201
    assert late.json()["status"] == "completed"
    assert late.json()["event"]["status_after"] == ""
    session.refresh_from_db()
    assert session.status == "completed"
    assert session.events.count() == 3


def test_it_records_other_event_types_in_the_timeline_only(api_client_for, alice, session):
    client = api_client_for(alice)
    post_event(client, session, type="answered")
    for kind in ["transfer", "dtmf", "hold"]:
        assert post_event(client, session, type=kind).status_code == 201
    session.refresh_from_db()
    assert session.status == "in_progress"
    assert list(session.events.values_list("type", flat=True)) == ["answered", "transfer", "dtmf", "hold"]


def test_it_refuses_an_event_without_a_type(api_client_for, alice, session):
    response = post_event(api_client_for(alice), session, data={})
    assert response.status_code == 400
    assert "type" in response.json()["errors"]
    assert not CallEvent.objects.exists()


@pytest.mark.parametrize(("who", "code"), [("bob", 404), ("charlie", 404), ("dave", 404), ("carol", 201)])
def test_it_takes_events_only_from_those_who_see_the_session(request, api_client_for, session, who, code):
    response = post_event(api_client_for(request.getfixturevalue(who)), session, type="ringing")
    assert response.status_code == code
    assert CallEvent.objects.count() == (1 if code == 201 else 0)


# --- Webhook ---------------------------------------------------------------------------------------------


def test_it_creates_the_session_on_an_integrations_first_event(integration_client, alice):
    response = integration_client.post(
        "/api/crm/events/",
        {"external_id": "sip-42@pbx", "type": "initiated", "from_number": "+14155550100", "direction": "inbound"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    session = CallSession.objects.get()
    assert body["session_id"] == str(session.pk)
    assert body["session_created"] is True
    assert response["X-Session-ID"] == str(session.pk)
    assert session.auto_created is True
    assert session.origin == "direct"
    assert session.owner == alice
    assert session.source == "pipecat-prod"
    assert session.external_id == "sip-42@pbx"
    assert session.status == "initiated"
    assert session.from_number == "+14155550100"


def test_it_appends_to_a_known_call(integration_client):
    first = integration_client.post("/api/crm/events/", {"external_id": "c1", "type": "ringing"}, format="json")
    second = integration_client.post("/api/crm/events/", {"external_id": "c1", "type": "answered"}, format="json")
    assert second.status_code == 201
    assert second.json()["session_created"] is False
    assert second.json()["session_id"] == first.json()["session_id"]
    assert CallSession.objects.get().status == "in_progress"


def test_it_needs_an_external_id_on_the_webhook(integration_client):
    response = integration_client.post("/api/crm/events/", {"type": "ringing"}, format="json")
    assert response.status_code == 400
    assert "external_id" in response.json()["errors"]
    assert not CallSession.objects.exists()


def test_it_lets_a_user_token_report_for_its_own_source_name(api_client_for, alice):
    response = api_client_for(alice).post(
        "/api/crm/events/", {"source": "softphone", "external_id": "x1", "type": "answered"}, format="json"
    )
    assert response.status_code == 201
    session = CallSession.objects.get()
    assert (session.source, session.owner, session.auto_created) == ("softphone", alice, True)


# --- Signatures ------------------------------------------------------------------------------------------


@pytest.fixture
def signed(alice: User) -> tuple[Source, APIClient]:
    source, key = make_integration("signed-agent", owner=alice, signing_secret="s3cret")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return source, client


def send_signed(client: APIClient, body: dict[str, str], header: str | None):
    raw = json.dumps(body).encode()
    headers = {SIGNATURE_HEADER: header} if header is not None else {}
    return client.post("/api/crm/events/", raw, content_type="application/json", headers=headers)


def test_it_accepts_a_correctly_signed_webhook(signed):
    _, client = signed
    body = {"external_id": "s1", "type": "ringing"}
    response = send_signed(client, body, signature_header(secret="s3cret", body=json.dumps(body).encode()))
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda raw: None, "header is missing"),
        (lambda raw: "garbage", "Malformed"),
        (lambda raw: signature_header(secret="wrong", body=raw), "does not match"),
        (lambda raw: signature_header(secret="s3cret", body=raw, timestamp=int(time.time()) - 301), "5 minutes"),
        (lambda raw: signature_header(secret="s3cret", body=raw + b" "), "does not match"),
    ],
)
def test_it_refuses_unsigned_wrongly_signed_and_stale_webhooks(signed, make_header, reason):
    _, client = signed
    body = {"external_id": "s2", "type": "ringing"}
    response = send_signed(client, body, make_header(json.dumps(body).encode()))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert reason in response.json()["detail"]
    assert not CallSession.objects.exists()


def test_it_refuses_a_replayed_signed_request(signed):
    _, client = signed
    body = {"external_id": "s3", "type": "ringing"}
    header = signature_header(secret="s3cret", body=json.dumps(body).encode())
    assert send_signed(client, body, header).status_code == 201
    replay = send_signed(client, body, header)
    assert replay.status_code == 401
    assert "already received" in replay.json()["detail"]


def test_it_lets_signing_integrations_read_without_a_signature(signed, alice):
    source, client = signed
    session = CallSessionFactory.create(owner=alice, source=source.name)
    assert client.get(f"/api/crm/sessions/{session.pk}").status_code == 200
