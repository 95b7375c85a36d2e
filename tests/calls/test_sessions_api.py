"""POST/GET/PATCH/DELETE /api/crm/sessions/ as owner (alice), teammate (bob), manager (carol), outsider
(charlie, dave), admin and integration."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from calls.models import CallSession, Note
from crm.models import User
from tests.factories import CallSessionFactory

pytestmark = pytest.mark.django_db

NOT_FOUND = {"detail": "Call session not found.", "code": "session_not_found"}


@pytest.fixture
def alices_session(alice: User) -> CallSession:
    return CallSessionFactory.create(owner=alice, external_id="sip-abc@10.0.0.1")


# --- Create ----------------------------------------------------------------------------------------------


def test_it_creates_a_session_with_a_server_minted_id(api_client_for, alice: User):
    response = api_client_for(alice).post(
        "/api/crm/sessions/",
        {"source": "pipecat-prod", "external_id": "call-1", "from_number": "+14155550100", "direction": "outbound"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    session = CallSession.objects.get()
    assert body["id"] == str(session.pk)
    assert response["X-Session-ID"] == str(session.pk)
    assert response["Location"] == f"http://testserver/api/crm/sessions/{session.pk}"
    assert body["owner"] == "alice"
    assert body["team"] == "Sales"
    assert body["status"] == "queued"
    assert body["origin"] == "api"
    assert body["direction"] == "outbound"
    assert body["events"] == []
    assert body["adopted"] is False


def test_it_refuses_a_client_supplied_id_because_the_server_mints_ids(api_client_for, alice: User):
    response = api_client_for(alice).post("/api/crm/sessions/", {"id": str(uuid.uuid4())}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"id": ["Unknown or read-only field."]}
    assert not CallSession.objects.exists()


def test_it_is_idempotent_on_source_and_external_id(api_client_for, alice: User):
    client = api_client_for(alice)
    first = client.post("/api/crm/sessions/", {"source": "twilio", "external_id": "CA123"}, format="json")
    second = client.post("/api/crm/sessions/", {"source": "twilio", "external_id": "CA123"}, format="json")
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second["X-Session-ID"] == first.json()["id"]
    assert CallSession.objects.count() == 1


def test_it_creates_separate_sessions_without_an_external_id(api_client_for, alice: User):
    client = api_client_for(alice)
    ids = {client.post("/api/crm/sessions/", {"source": "twilio"}, format="json").json()["id"] for _ in range(3)}
    assert len(ids) == 3


def test_it_answers_409_when_the_external_id_belongs_to_someone_elses_session(api_client_for, alice, charlie):
    CallSessionFactory.create(owner=alice, source="twilio", external_id="CA999")
    response = api_client_for(charlie).post(
        "/api/crm/sessions/", {"source": "twilio", "external_id": "CA999"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "external_id_conflict"
    assert "alice" not in response.content.decode()
    assert CallSession.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"source": "not a slug!"}, "source"),
        ({"external_id": "x" * 256}, "external_id"),
        ({"started_at": "yesterday"}, "started_at"),
    ],
)
def test_it_refuses_bad_input_with_the_field_named(api_client_for, alice: User, payload: dict[str, Any], field: str):
    response = api_client_for(alice).post("/api/crm/sessions/", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert field in body["errors"]
    assert not CallSession.objects.exists()


def test_it_refuses_a_body_that_is_not_json(api_client_for, alice: User):
    response = api_client_for(alice).post("/api/crm/sessions/", "{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_it_lets_a_manager_create_for_a_team_member_but_not_for_an_outsider(api_client_for, carol, alice, charlie):
    client = api_client_for(carol)
    ok = client.post("/api/crm/sessions/", {"owner": "alice"}, format="json")
    assert ok.status_code == 201
    assert ok.json()["owner"] == "alice"
    refused = client.post("/api/crm/sessions/", {"owner": "charlie"}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"detail": "You cannot assign sessions to 'charlie'.", "code": "owner_not_allowed"}


def test_it_keeps_agents_from_creating_sessions_for_others(api_client_for, alice, bob):
    response = api_client_for(alice).post("/api/crm/sessions/", {"owner": "bob"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "owner_not_allowed"


def test_it_gives_an_integrations_sessions_its_source_and_default_owner(integration_client: APIClient, alice):
    response = integration_client.post("/api/crm/sessions/", {"external_id": "pc-1"}, format="json")
    assert response.status_code == 201
    assert response.json()["source"] == "pipecat-prod"
    assert response.json()["owner"] == "alice"
    assert response.json()["team"] == "Sales"


def test_it_refuses_an_integration_reporting_for_another_source(integration_client: APIClient):
    response = integration_client.post("/api/crm/sessions/", {"source": "twilio"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "source_mismatch"


def test_it_exposes_the_session_headers_to_browsers(api_client_for, alice: User, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://agent.example.com"]
    response = api_client_for(alice).post(
        "/api/crm/sessions/", {}, format="json", HTTP_ORIGIN="https://agent.example.com"
    )
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == "https://agent.example.com"
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"location", "x-session-id", "x-request-id"} <= exposed


# --- Read ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/"])
def test_it_serves_the_session_with_or_without_a_trailing_slash(api_client_for, alice, alices_session, suffix):
    response = api_client_for(alice).get(f"/api/crm/sessions/{alices_session.pk}{suffix}")
    assert response.status_code == 200
    assert response.json()["id"] == str(alices_session.pk)


def test_it_serves_events_notes_recording_and_transcript(api_client_for, alice, alices_session):
    Note.objects.create(session=alices_session, author=alice, body="Follow up Tuesday")
    body = api_client_for(alice).get(f"/api/crm/sessions/{alices_session.pk}").json()
    assert body["notes"][0]["body"] == "Follow up Tuesday"
    assert body["notes"][0]["author"] == "alice"
    assert body["recording"] is None
    assert body["transcript"] is None
    assert body["external_id"] == "sip-abc@10.0.0.1"


def test_it_reads_the_detail_in_a_fixed_number_of_queries(
    api_client_for, alice, alices_session, django_assert_max_num_queries
):
    client = api_client_for(alice)
    client.get("/api/crm/")
    for i in range(5):
        Note.objects.create(session=alices_session, author=alice, body=f"note {i}")
    # token+user, session with its joins, events, notes (+authors), transcript segments
    with django_assert_max_num_queries(6):
        assert client.get(f"/api/crm/sessions/{alices_session.pk}").status_code == 200


@pytest.mark.parametrize(
    ("who", "visible"),
    [("alice", True), ("bob", False), ("carol", True), ("charlie", False), ("dave", False), ("admin_user", True)],
)
def test_it_shows_a_session_to_owner_manager_and_admin_only(request, api_client_for, alices_session, who, visible):
    client = api_client_for(request.getfixturevalue(who))
    response = client.get(f"/api/crm/sessions/{alices_session.pk}")
    if visible:
        assert response.status_code == 200
        assert response.json()["id"] == str(alices_session.pk)
    else:
        assert response.status_code == 404
        assert response.json() == NOT_FOUND


def test_it_shows_an_integration_the_sessions_of_its_own_source_only(integration_client, alice):
    own = CallSessionFactory.create(owner=alice, source="pipecat-prod")
    other = CallSessionFactory.create(owner=alice, source="twilio")
    assert integration_client.get(f"/api/crm/sessions/{own.pk}").status_code == 200
    assert integration_client.get(f"/api/crm/sessions/{other.pk}").json() == NOT_FOUND


@pytest.mark.parametrize("bad", ["nope", "12345", str(uuid.uuid4()).upper().replace("-", ""), "x" * 5000])
def test_it_answers_the_same_404_for_malformed_and_missing_ids(api_client_for, alice, bad):
    response = api_client_for(alice).get(f"/api/crm/sessions/{bad}")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_it_requires_authentication(alices_session):
    response = APIClient().get(f"/api/crm/sessions/{alices_session.pk}")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_it_finds_a_session_by_the_integrations_own_id(api_client_for, alice, bob, alices_session):
    url = f"/api/crm/sessions/by-external/pipecat-prod/{alices_session.external_id}"
    response = api_client_for(alice).get(url)
    assert response.status_code == 200
    assert response.json()["id"] == str(alices_session.pk)
    assert api_client_for(bob).get(url).json() == NOT_FOUND
    assert api_client_for(alice).get("/api/crm/sessions/by-external/pipecat-prod/unknown").json() == NOT_FOUND


# --- List ------------------------------------------------------------------------------------------------


def _ids(response: Any) -> list[str]:
    return [row["id"] for row in response.json()["results"]]


def test_it_lists_only_visible_sessions_newest_first(api_client_for, alice, bob, carol, charlie, admin_user):
    mine = [CallSessionFactory.create(owner=alice) for _ in range(3)]
    bobs = CallSessionFactory.create(owner=bob)
    theirs = CallSessionFactory.create(owner=charlie)
    assert _ids(api_client_for(alice).get("/api/crm/sessions/")) == [str(s.pk) for s in reversed(mine)]
    assert set(_ids(api_client_for(carol).get("/api/crm/sessions/"))) == {str(s.pk) for s in [*mine, bobs]}
    assert set(_ids(api_client_for(charlie).get("/api/crm/sessions/"))) == {str(theirs.pk)}
    assert len(_ids(api_client_for(admin_user).get("/api/crm/sessions/"))) == 5


def test_it_filters_the_list(api_client_for, alice, carol, bob):
    now = timezone.now()
    done = CallSessionFactory.create(owner=alice, status="completed", started_at=now - timedelta(days=2))
    busy = CallSessionFactory.create(owner=bob, status="busy", direction="outbound", started_at=now)
    with_audio = CallSessionFactory.create(owner=alice, recording_status="available", source="twilio")
    client = api_client_for(carol)

    def ids(query: str) -> set[str]:
        response = client.get(f"/api/crm/sessions/?{query}")
        assert response.status_code == 200, response.json()
        return set(_ids(response))

    assert ids("status=completed") == {str(done.pk)}
    assert ids("status=completed&status=busy") == {str(done.pk), str(busy.pk)}
    assert ids("direction=outbound") == {str(busy.pk)}
    assert ids("owner=bob") == {str(busy.pk)}
    assert ids("team=Sales") == {str(done.pk), str(busy.pk), str(with_audio.pk)}
    assert ids("source=twilio") == {str(with_audio.pk)}
    assert ids("has_recording=true") == {str(with_audio.pk)}
    assert ids(f"started_after={(now - timedelta(days=1)).isoformat().replace('+', '%2B')}") == {str(busy.pk)}
    assert ids(f"started_before={(now - timedelta(days=1)).isoformat().replace('+', '%2B')}") == {str(done.pk)}


def test_it_searches_numbers_and_transcripts(api_client_for, alice):
    from calls.ingest import transcript_save
    from calls.transcripts import ParsedTranscript, Segment

    hit = CallSessionFactory.create(owner=alice, from_number="+4930123456")
    spoken = CallSessionFactory.create(owner=alice)
    text = "We talked about the Enterprise renewal pricing."
    # Through the service that writes transcripts, which also fills PostgreSQL's search vector.
    transcript_save(
        session_id=spoken.pk,
        parsed=ParsedTranscript(
            text=text,
            segments=[Segment(speaker="", start_ms=None, end_ms=None, text=text)],
            encoding="utf-8",
            had_replacements=False,
            language="en",
            format="txt",
        ),
        source="provided",
    )
    CallSessionFactory.create(owner=alice)
    client = api_client_for(alice)
    assert set(_ids(client.get("/api/crm/sessions/?q=30 123456"))) == {str(hit.pk)}
    assert set(_ids(client.get("/api/crm/sessions/?q=renewal"))) == {str(spoken.pk)}


def test_it_refuses_bad_filters_clearly(api_client_for, alice):
    response = api_client_for(alice).get("/api/crm/sessions/?status=flying&started_after=soon")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"status", "started_after"}


def test_it_refuses_a_misspelt_filter_instead_of_listing_everything(api_client_for, alice):
    response = api_client_for(alice).get("/api/crm/sessions/?stauts=completed")
    assert response.status_code == 400
    assert response.json()["errors"] == {"stauts": ["Unknown or read-only field."]}


def test_it_pages_with_a_cursor_and_no_duplicates(api_client_for, alice):
    created = {str(CallSessionFactory.create(owner=alice).pk) for _ in range(7)}
    client = api_client_for(alice)
    seen: list[str] = []
    url = "/api/crm/sessions/?page_size=3"
    while url:
        body = client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert len(seen) == 7
    assert set(seen) == created
    oldest_first = client.get("/api/crm/sessions/?ordering=created_at&page_size=50").json()
    assert [r["id"] for r in oldest_first["results"]] == list(reversed(seen))


def test_it_lists_in_a_constant_number_of_queries(api_client_for, alice, carol, django_assert_max_num_queries):
    for _ in range(60):
        CallSessionFactory.create(owner=alice)
    client = api_client_for(carol)
    client.get("/api/crm/")  # the token's first use writes last_used_at; measure steady state
    # token+user, the page (sessions joined to owner, team and recording). The manager's teams are a subquery.
    with django_assert_max_num_queries(2):
        assert len(client.get("/api/crm/sessions/?page_size=50").json()["results"]) == 50
    with django_assert_max_num_queries(2):
        assert len(client.get("/api/crm/sessions/?page_size=5").json()["results"]) == 5


# --- Update, notes, delete -------------------------------------------------------------------------------


def test_it_lets_the_owner_edit_what_staff_may_edit(api_client_for, alice, alices_session):
    response = api_client_for(alice).patch(
        f"/api/crm/sessions/{alices_session.pk}",
        {"metadata": {"crm_lead": 42}, "to_number": "+14155550111", "end_reason": "voicemail"},
        format="json",
    )
    assert response.status_code == 200
    alices_session.refresh_from_db()
    assert alices_session.metadata == {"crm_lead": 42}
    assert alices_session.to_number == "+14155550111"
    assert alices_session.end_reason == "voicemail"


def test_it_refuses_edits_to_fields_staff_may_not_edit(api_client_for, alice, alices_session):
    response = api_client_for(alice).patch(
        f"/api/crm/sessions/{alices_session.pk}", {"status": "completed"}, format="json"
    )
    # Not silently dropped: the status is moved only by events, and the client is told so.
    assert response.status_code == 400
    assert response.json()["errors"] == {"status": ["Unknown or read-only field."]}
    alices_session.refresh_from_db()
    assert alices_session.status == "queued"


def test_it_lets_the_manager_reassign_but_not_the_agent(api_client_for, alice, bob, carol, alices_session):
    url = f"/api/crm/sessions/{alices_session.pk}"
    refused = api_client_for(alice).patch(url, {"owner": "bob"}, format="json")
    assert refused.status_code == 403
    ok = api_client_for(carol).patch(url, {"owner": "bob"}, format="json")
    assert ok.status_code == 200
    assert ok.json()["owner"] == "bob"


@pytest.mark.parametrize("who", ["bob", "charlie", "dave"])
def test_it_hides_the_session_from_outsiders_editing_it(request, api_client_for, alices_session, who):
    client = api_client_for(request.getfixturevalue(who))
    response = client.patch(f"/api/crm/sessions/{alices_session.pk}", {"metadata": {}}, format="json")
    assert response.json() == NOT_FOUND
    note = client.post(f"/api/crm/sessions/{alices_session.pk}/notes/", {"body": "hi"}, format="json")
    assert note.json() == NOT_FOUND
    assert not Note.objects.exists()


def test_it_adds_and_edits_notes(api_client_for, alice, carol, alices_session):
    created = api_client_for(alice).post(
        f"/api/crm/sessions/{alices_session.pk}/notes/", {"body": "  Wants a demo  "}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["body"] == "Wants a demo"
    note_url = f"/api/crm/sessions/{alices_session.pk}/notes/{created.json()['id']}"
    assert api_client_for(carol).patch(note_url, {"body": "x"}, format="json").status_code == 403
    edited = api_client_for(alice).patch(note_url, {"body": "Wants a demo on Friday"}, format="json")
    assert edited.status_code == 200
    assert Note.objects.get().body == "Wants a demo on Friday"


def test_it_refuses_an_empty_note(api_client_for, alice, alices_session):
    response = api_client_for(alice).post(
        f"/api/crm/sessions/{alices_session.pk}/notes/", {"body": "  "}, format="json"
    )
    assert response.status_code == 400
    assert not Note.objects.exists()


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_it_lets_only_admins_delete(request, api_client_for, alices_session, who):
    response = api_client_for(request.getfixturevalue(who)).delete(f"/api/crm/sessions/{alices_session.pk}")
    assert response.status_code == 403
    alices_session.refresh_from_db()
    assert alices_session.archived_at is None


def test_it_archives_on_delete_and_keeps_the_row(api_client_for, admin_user, alice, alices_session):
    response = api_client_for(admin_user).delete(f"/api/crm/sessions/{alices_session.pk}")
    assert response.status_code == 204
    alices_session.refresh_from_db()
    assert alices_session.archived_at is not None
    assert api_client_for(alice).get(f"/api/crm/sessions/{alices_session.pk}").json() == NOT_FOUND
    assert CallSession.objects.filter(pk=alices_session.pk).exists()
