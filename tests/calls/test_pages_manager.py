"""The manager pages: triage of adopted-but-unassigned sessions with its assign action, and the live list."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from calls.models import CallSession
from calls.views.manager import clock, elapsed
from crm.models import Team, User
from tests.factories import CallSessionFactory

pytestmark = pytest.mark.django_db

TRIAGE = "/calls/triage/"
LIVE = "/calls/live/"


def orphan(**fields: Any) -> CallSession:
    """An adopted recording nobody owns: what the sweep leaves for managers."""
    values: dict[str, Any] = {
        "owner": None,
        "team": None,
        "origin": CallSession.Origin.ADOPTED,
        "auto_created": True,
        "status": CallSession.Status.COMPLETED,
        "source": "storage",
        "recording_status": CallSession.RecordingStatus.AVAILABLE,
        "duration_ms": 83_000,
    }
    return CallSessionFactory.create(**(values | fields))


def assign(client: Client, session: CallSession | str, owner: str, **extra: str) -> Any:
    return client.post(
        f"/calls/{session if isinstance(session, str) else session.pk}/assign/", {"owner": owner, **extra}
    )


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- Access ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [TRIAGE, LIVE])
@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 404), ("bob", 404), ("charlie", 404), ("carol", 200), ("dave", 200), ("admin_user", 200)],
)
def test_it_opens_the_manager_pages_to_managers_and_admins_only(request, client_for, path: str, who: str, status: int):
    user = request.getfixturevalue(who)
    response = client_for(user).get(path)
    assert response.status_code == status
    if status == 404:
        # The ordinary 404 page, not a bare error.
        assert "Page not found" in response.content.decode()


@pytest.mark.parametrize("path", [TRIAGE, LIVE])
def test_it_sends_anonymous_visitors_to_sign_in(path: str):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_it_answers_an_agents_assign_with_404_and_changes_nothing(alice: User, client_for):
    session = orphan()
    assert assign(client_for(alice), session, "alice").status_code == 404
    session.refresh_from_db()
    assert session.owner is None


def test_it_refuses_a_get_on_the_assign_action(carol: User, client_for):
    assert client_for(carol).get(f"/calls/{orphan().pk}/assign/").status_code == 405


# --- Triage ---------------------------------------------------------------------------------------------------


def test_it_lists_unassigned_adopted_sessions_the_manager_may_see_newest_first(
    alice: User, carol: User, dave: User, admin_user: User, sales_team: Team, other_team: Team, client_for
):
    older = orphan(external_id="older")
    newer = orphan(external_id="newer")
    CallSession.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=3))
    # Reported by an integration's first event, no owner, in carol's team: hers to triage, not dave's.
    sales_direct = orphan(team=sales_team, origin=CallSession.Origin.DIRECT, external_id="sales-direct")
    other_direct = orphan(team=other_team, origin=CallSession.Origin.DIRECT, external_id="other-direct")
    # Not triage material: owned, created through the API without an owner, archived.
    owned = orphan(owner=alice, team=sales_team, external_id="owned")
    api_unowned = orphan(origin=CallSession.Origin.API, auto_created=False, external_id="api-unowned")
    archived = orphan(archived_at=timezone.now(), external_id="archived")

    def listed(user: User) -> list[str]:
        html = client_for(user).get(TRIAGE).content.decode()
        return re.findall(r'id="triage-([0-9a-f-]{36})"', html)

    assert listed(carol) == [str(sales_direct.pk), str(newer.pk), str(older.pk)]
    assert listed(dave) == [str(other_direct.pk), str(newer.pk), str(older.pk)]
    assert set(listed(admin_user)) == {str(s.pk) for s in (older, newer, sales_direct, other_direct)}
    for hidden in (owned, api_unowned, archived):
        assert str(hidden.pk) not in client_for(admin_user).get(TRIAGE).content.decode()


def test_it_shows_what_a_manager_needs_to_decide(carol: User, client_for):
    session = orphan(
        from_number="+14155550123",
        to_number="+14155550188",
        duration_ms=83_000,
        metadata={
            "adoption": {"files": ["recording.wav"], "problems": ["meta.json: owner 'zoe' is not an active user"]}
        },
    )
    html = client_for(carol).get(TRIAGE).content.decode()
    assert "+14155550123" in html
    assert "+14155550188" in html
    assert "1:23" in html  # duration
    assert "Available" in html  # recording state
    assert "owner &#x27;zoe&#x27; is not an active user" in html
    assert f'action="/calls/{session.pk}/assign/"' in html
    assert f'href="/calls/{session.pk}/"' in html
    # Listen right there: the permission-checked stream, fetched only when played.
    assert f'<audio class="triage-audio" controls preload="none" src="/calls/{session.pk}/audio"' in html
    assert "1 waiting" in html


def test_it_offers_a_manager_their_team_and_an_admin_every_active_agent(
    alice: User, bob: User, carol: User, charlie: User, admin_user: User, client_for
):
    orphan()
    User.objects.create(username="gone", role=User.Role.AGENT, team=alice.team, is_active=False)

    def options(user: User) -> set[str]:
        html = client_for(user).get(TRIAGE).content.decode()
        return set(re.findall(r'<option value="([^"]+)">', html))

    assert options(carol) == {"alice", "bob", "carol"}
    assert options(admin_user) == {"alice", "bob", "charlie"}


def test_it_says_nothing_to_triage_when_the_queue_is_empty(carol: User, alice: User, client_for):
    CallSessionFactory.create(owner=alice)
    response = client_for(carol).get(TRIAGE)
    assert response.status_code == 200
    assert "Nothing to triage" in response.content.decode()


def test_it_tolerates_adoption_metadata_of_any_shape(carol: User, client_for):
    for metadata in ({"adoption": "broken"}, {"adoption": {"problems": "not a list"}}, ["a", "list"], "text"):
        orphan(metadata=metadata)
    response = client_for(carol).get(TRIAGE)
    assert response.status_code == 200
    assert response.content.decode().count('class="triage-row"') == 4


def test_it_pages_the_triage_queue(carol: User, client_for):
    for _ in range(55):
        orphan()
    client = client_for(carol)
    first = client.get(TRIAGE).content.decode()
    second = client.get(TRIAGE, {"page": "2"}).content.decode()
    assert first.count('class="triage-row"') == 50
    assert second.count('class="triage-row"') == 5
    assert "Page 2 of 2" in second
    assert client.get(TRIAGE, {"page": "nonsense"}).status_code == 200


@pytest.mark.parametrize("rows", [1, 20])
def test_it_renders_triage_in_a_fixed_number_of_queries(
    carol: User, alice: User, bob: User, client_for, django_assert_max_num_queries, rows: int
):
    for _ in range(rows):
        orphan(metadata={"adoption": {"problems": ["meta.json is not valid JSON"]}})
    client = client_for(carol)
    # session + user, count, page of rows, people to assign to
    with django_assert_max_num_queries(5):
        assert client.get(TRIAGE).status_code == 200


# --- Assign ---------------------------------------------------------------------------------------------------


def test_it_assigns_a_session_and_takes_it_off_the_queue(carol: User, alice: User, client_for):
    session = orphan()
    client = client_for(carol)
    response = assign(client, session, "alice", next=TRIAGE)
    assert response.status_code == 302
    assert response["Location"] == TRIAGE
    session.refresh_from_db()
    assert session.owner == alice
    assert session.team == alice.team
    page = client.get(TRIAGE)
    assert f"Call {str(session.pk)[:8]} assigned to" in " ".join(messages_of(page))
    assert "Nothing to triage" in page.content.decode()


@pytest.mark.parametrize(
    ("owner", "message"),
    [
        ("nobody", "No active user named 'nobody'."),
        ("charlie", "You cannot assign sessions to 'charlie'."),
        ("", "Choose someone to assign the call to."),
    ],
)
def test_it_shows_a_refused_assignment_as_a_message(carol: User, charlie: User, client_for, owner: str, message: str):
    session = orphan()
    client = client_for(carol)
    response = assign(client, session, owner)
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.owner is None
    page = client.get(response["Location"])
    assert messages_of(page) == [message]
    assert message.replace("'", "&#x27;") in page.content.decode()


@pytest.mark.parametrize("session_id", ["not-a-uuid", str(uuid.uuid4()), "0" * 36])
def test_it_reports_a_missing_session_on_assign_without_an_error_page(carol: User, alice: User, client_for, session_id):
    client = client_for(carol)
    response = assign(client, session_id, "alice")
    assert response.status_code == 302
    assert response["Location"] == TRIAGE
    assert "was not found" in messages_of(client.get(TRIAGE))[0]


def test_it_does_not_let_a_manager_assign_another_teams_session(dave: User, alice: User, sales_team: Team, client_for):
    session = orphan(team=sales_team, origin=CallSession.Origin.DIRECT)
    client = client_for(dave)
    assign(client, session, "charlie")
    session.refresh_from_db()
    assert session.owner is None
    assert "was not found" in messages_of(client.get(TRIAGE))[0]


def test_it_lets_an_admin_assign_to_any_agent(admin_user: User, charlie: User, client_for):
    session = orphan()
    assign(client_for(admin_user), session, "charlie")
    session.refresh_from_db()
    assert session.owner == charlie


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", ""])
def test_it_only_redirects_back_to_a_local_page(carol: User, alice: User, client_for, target: str):
    response = assign(client_for(carol), orphan(), "alice", next=target)
    assert response["Location"] == TRIAGE


def test_it_redirects_back_to_the_page_of_the_form(carol: User, alice: User, client_for):
    response = assign(client_for(carol), orphan(), "alice", next="/calls/triage/?page=2")
    assert response["Location"] == "/calls/triage/?page=2"


# --- Live -----------------------------------------------------------------------------------------------------


def live_session(*, status: str, started_ago: timedelta, quiet_for: timedelta, **fields: Any) -> CallSession:
    now = timezone.now()
    session = CallSessionFactory.create(status=status, **fields)
    CallSession.objects.filter(pk=session.pk).update(
        created_at=now - started_ago, started_at=now - started_ago, last_event_at=now - quiet_for
    )
    session.refresh_from_db()
    return session


def test_it_lists_the_live_sessions_a_manager_may_see_and_flags_the_stale_ones(
    alice: User, charlie: User, carol: User, client_for
):
    talking = live_session(
        owner=alice, status="in_progress", started_ago=timedelta(minutes=3, seconds=12), quiet_for=timedelta(seconds=40)
    )
    ringing = live_session(owner=alice, status="ringing", started_ago=timedelta(seconds=20), quiet_for=timedelta(0))
    stale = live_session(
        owner=alice, status="in_progress", started_ago=timedelta(hours=1), quiet_for=timedelta(minutes=25)
    )
    finished = live_session(owner=alice, status="completed", started_ago=timedelta(minutes=5), quiet_for=timedelta(0))
    outsider = live_session(
        owner=charlie, status="in_progress", started_ago=timedelta(minutes=1), quiet_for=timedelta(0)
    )
    response = client_for(carol).get(LIVE)
    html = response.content.decode()
    rows = re.findall(r'<tr class="live-row( is-stale)?">.*?href="/calls/([0-9a-f-]{36})/"', html, flags=re.S)
    # Longest running first; only the stale one flagged.
    assert rows == [(" is-stale", str(stale.pk)), ("", str(talking.pk)), ("", str(ringing.pk))]
    assert str(finished.pk) not in html
    assert str(outsider.pk) not in html
    # Times are worked out when the page renders: allow for a slow test machine.
    assert re.search(r"3 min 1[2-5] s", html)
    assert re.search(r"25 min( 0[0-3] s)? ago", html)
    assert "1 quiet for over 10 min" in html
    assert '<meta http-equiv="refresh" content="10">' in html
    assert response["Cache-Control"] == "no-store"


def test_it_says_when_no_call_is_live(carol: User, alice: User, client_for):
    CallSessionFactory.create(owner=alice, status="completed")
    assert "No live calls" in client_for(carol).get(LIVE).content.decode()


@pytest.mark.parametrize("rows", [1, 20])
def test_it_renders_the_live_list_in_a_fixed_number_of_queries(
    admin_user: User, alice: User, client_for, django_assert_max_num_queries, rows: int
):
    for _ in range(rows):
        live_session(owner=alice, status="in_progress", started_ago=timedelta(minutes=2), quiet_for=timedelta(0))
    client = client_for(admin_user)
    # session + user, the live sessions with owner and team
    with django_assert_max_num_queries(3):
        assert client.get(LIVE).status_code == 200


# --- Markup and helpers ---------------------------------------------------------------------------------------


def test_it_keeps_the_manager_pages_free_of_inline_script_and_style(carol: User, alice: User, client_for):
    orphan(metadata={"adoption": {"problems": ["<script>alert(1)</script>"]}})
    live_session(owner=alice, status="in_progress", started_ago=timedelta(hours=1), quiet_for=timedelta(minutes=30))
    client = client_for(carol)
    for path in (TRIAGE, LIVE):
        response = client.get(path)
        html = response.content.decode()
        assert "<script" not in html
        assert " style=" not in html
        assert "<style" not in html
        assert "script-src 'self'" in response["Content-Security-Policy"]
        assert "/static/css/manager.css" in html


@pytest.mark.parametrize(
    ("ms", "text"), [(None, "—"), (0, "0:00"), (42_400, "0:42"), (725_000, "12:05"), (3_723_000, "1:02:03")]
)
def test_it_formats_call_lengths_like_a_player(ms: int | None, text: str):
    assert clock(ms) == text


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(seconds=45), "45 s"),
        (timedelta(minutes=3, seconds=2), "3 min 02 s"),
        (timedelta(hours=2, minutes=5), "2 h 05 min"),
        (timedelta(minutes=10), "10 min"),
        (timedelta(hours=4), "4 h"),
    ],
)
def test_it_formats_elapsed_time_to_the_second_while_short(span: timedelta, text: str):
    assert elapsed(span) == text
