"""The calls list page (/calls/) and its CSV export (/calls/export.csv)."""

from __future__ import annotations

import base64
import csv
import io
import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls.ingest import transcript_save
from calls.models import CallSession
from calls.reports.call_list import Cursor, highlight
from calls.reports.formatting import format_duration
from calls.transcripts import ParsedTranscript, Segment
from campaigns.models import Campaign
from crm.models import Team, User
from tests.factories import CallSessionFactory

pytestmark = pytest.mark.django_db

LIST = "/calls/"
EXPORT = "/calls/export.csv"
ROW_RE = re.compile(r'<tr data-href="/calls/([0-9a-f-]{36})/">')


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """The cast's passwords are hashed with a test-only hasher: PBKDF2 would make each user cost half a second."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def call(owner: User | None, **fields: Any) -> CallSession:
    return CallSessionFactory.create(owner=owner, **fields)


def listed(response: Any) -> list[str]:
    """The session ids of the rows on the page, in order."""
    assert response.status_code == 200
    return ROW_RE.findall(response.content.decode())


def pager_link(response: Any, rel: str) -> str | None:
    match = re.search(rf'<a class="btn" rel="{rel}" href="([^"]+)"', response.content.decode())
    return match.group(1).replace("&amp;", "&") if match else None


def give_transcript(session: CallSession, text: str) -> None:
    """Through the ingest's own writer: on PostgreSQL only it fills the search vector the search uses."""
    lines = [Segment(speaker="", start_ms=None, end_ms=None, text=line) for line in text.split("\n")]
    parsed = ParsedTranscript(
        text=text, segments=lines, encoding="utf-8", had_replacements=False, language="en", format="txt"
    )
    transcript_save(session_id=session.pk, parsed=parsed, source="provided")


def export(client: Client, query: str = "") -> list[list[str]]:
    response: Any = client.get(f"{EXPORT}{query}")
    assert response.status_code == 200
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- Access -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LIST, EXPORT])
def test_it_sends_anonymous_visitors_to_sign_in(path: str):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


@pytest.fixture
def cast_calls(alice: User, bob: User, carol: User, charlie: User, dave: User) -> dict[str, CallSession]:
    """One call for each person, one unassigned (adopted, for triage) and one archived of alice's."""
    return {
        "alice": call(alice),
        "bob": call(bob),
        "carol": call(carol),
        "charlie": call(charlie),
        "unassigned": call(None, team=None, origin=CallSession.Origin.ADOPTED),
        "archived": call(alice, archived_at=timezone.now()),
    }


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("alice", {"alice"}),
        ("bob", {"bob"}),  # a teammate does not see alice's calls
        ("carol", {"alice", "bob", "carol", "unassigned"}),  # the manager sees the team's, and the unassigned
        ("charlie", {"charlie"}),  # an outsider sees none of Sales'
        ("dave", {"charlie", "unassigned"}),  # another team's manager neither
        ("admin_user", {"alice", "bob", "carol", "charlie", "unassigned"}),
    ],
)
def test_it_lists_and_exports_only_the_calls_each_person_may_see(
    request, client_for, cast_calls: dict[str, CallSession], who: str, sees: set[str]
):
    client = client_for(request.getfixturevalue(who))
    expected = {str(cast_calls[name].pk) for name in sees}
    assert set(listed(client.get(LIST))) == expected
    assert {row[0] for row in export(client)[1:]} == expected  # archived calls: nobody, admins included


def test_it_links_each_row_to_its_call(client_for, alice: User):
    session = call(alice)
    client = client_for(alice)
    body = client.get(LIST).content.decode()
    assert f'<a class="row-link" href="/calls/{session.pk}/">' in body
    assert f'<tr data-href="/calls/{session.pk}/">' in body
    assert client.head(LIST).status_code == 200
    assert client.post(LIST).status_code == 405


# --- What a row shows -------------------------------------------------------------------------------------


def test_it_shows_status_duration_direction_numbers_owner_and_recording(client_for, alice: User, sales_team: Team):
    campaign = Campaign.objects.create(name="Spring renewals", team=sales_team)
    call(
        alice,
        status=CallSession.Status.COMPLETED,
        duration_ms=125_400,
        direction=CallSession.Direction.OUTBOUND,
        from_number="+14155550111",
        to_number="+14155550222",
        recording_status=CallSession.RecordingStatus.AVAILABLE,
        campaign=campaign,
        started_at=timezone.now(),
    )
    body = client_for(alice).get(LIST).content.decode()
    assert 'class="badge status-badge badge-ok" data-status="completed">Completed</span>' in body
    assert '<span class="mono">2:05</span>' in body
    assert "Outbound" in body
    assert "+14155550111" in body
    assert "+14155550222" in body
    assert "Alice" in body
    assert "Spring renewals" in body
    assert "recording-available" in body
    assert "Available" in body
    assert "Showing 1 call<" in body


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(None, ""), (0, "0:00"), (999, "0:01"), (59_499, "0:59"), (65_000, "1:05"), (3_600_000, "60:00")],
)
def test_it_formats_durations_as_minutes_and_seconds(ms: int | None, shown: str):
    assert format_duration(ms) == shown


def test_it_shows_an_empty_state_with_a_way_forward(client_for, alice: User):
    body = client_for(alice).get(LIST).content.decode()
    assert "No calls yet" in body
    assert 'href="/account/tokens/"' in body

    call(alice, status=CallSession.Status.COMPLETED)
    body = client_for(alice).get(f"{LIST}?status=busy").content.decode()
    assert "No calls match these filters" in body
    assert '<a class="btn" href="/calls/">Clear filters</a>' in body


# --- Filters ----------------------------------------------------------------------------------------------


def test_it_filters_by_status_several_at_once(client_for, alice: User):
    done = call(alice, status=CallSession.Status.COMPLETED)
    busy = call(alice, status=CallSession.Status.BUSY)
    call(alice, status=CallSession.Status.FAILED)
    client = client_for(alice)
    assert listed(client.get(f"{LIST}?status=completed")) == [str(done.pk)]
    assert set(listed(client.get(f"{LIST}?status=completed&status=busy"))) == {str(done.pk), str(busy.pk)}
    assert 'value="busy" id="id_status_5" checked' in client.get(f"{LIST}?status=busy").content.decode()


def test_it_filters_by_direction_and_recording(client_for, alice: User):
    out_rec = call(alice, direction="outbound", recording_status=CallSession.RecordingStatus.AVAILABLE)
    out_none = call(alice, direction="outbound", recording_status=CallSession.RecordingStatus.FAILED)
    inbound = call(alice, direction="inbound")
    client = client_for(alice)
    assert set(listed(client.get(f"{LIST}?direction=outbound"))) == {str(out_rec.pk), str(out_none.pk)}
    assert listed(client.get(f"{LIST}?direction=inbound")) == [str(inbound.pk)]
    assert listed(client.get(f"{LIST}?has_recording=yes")) == [str(out_rec.pk)]
    assert set(listed(client.get(f"{LIST}?has_recording=no"))) == {str(out_none.pk), str(inbound.pk)}
    assert listed(client.get(f"{LIST}?direction=outbound&has_recording=no")) == [str(out_none.pk)]


def test_it_offers_only_the_campaigns_of_teams_the_user_sees(
    client_for, alice: User, charlie: User, sales_team: Team, other_team: Team
):
    ours = Campaign.objects.create(name="Ours", team=sales_team)
    theirs = Campaign.objects.create(name="Theirs", team=other_team)
    in_ours = call(alice, campaign=ours)
    call(alice)
    client = client_for(alice)
    body = client.get(LIST).content.decode()
    assert f'<option value="{ours.pk}">Ours</option>' in body
    assert "Theirs" not in body
    assert listed(client.get(f"{LIST}?campaign={ours.pk}")) == [str(in_ours.pk)]
    # Another team's campaign is not a choice: a field error, not its calls (nor a hint that it exists).
    response = client.get(f"{LIST}?campaign={theirs.pk}")
    assert listed(response) == []
    assert 'id="campaign-errors"' in response.content.decode()


def test_it_lets_managers_and_admins_filter_by_owner(client_for, alice: User, bob: User, carol: User, charlie: User):
    mine = call(alice)
    call(bob)
    body = client_for(carol).get(LIST).content.decode()
    assert '<option value="alice">Alice (alice)</option>' in body
    assert '<option value="bob">Bob (bob)</option>' in body
    assert "charlie" not in body  # not a member of a team carol manages
    assert listed(client_for(carol).get(f"{LIST}?owner=alice")) == [str(mine.pk)]
    # Agents have no owner filter: they only ever see their own calls, whatever the URL says.
    agent_page = client_for(bob).get(f"{LIST}?owner=alice")
    assert 'name="owner"' not in agent_page.content.decode()
    assert str(mine.pk) not in listed(agent_page)


def test_it_filters_by_start_date_inclusive_in_the_local_time_zone(client_for, alice: User, settings: Any):
    settings.TIME_ZONE = "America/New_York"
    tz = timezone.get_current_timezone()
    day = timezone.localdate() - timedelta(days=10)
    early = call(alice, started_at=datetime.combine(day, datetime.min.time(), tzinfo=tz) + timedelta(minutes=5))
    late = call(alice, started_at=datetime.combine(day, datetime.max.time(), tzinfo=tz) - timedelta(minutes=5))
    call(alice, started_at=datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz))
    call(alice, started_at=datetime.combine(day, datetime.min.time(), tzinfo=tz) - timedelta(minutes=5))
    client = client_for(alice)
    one_day = f"{LIST}?started_from={day:%Y-%m-%d}&started_to={day:%Y-%m-%d}"
    assert set(listed(client.get(one_day))) == {str(early.pk), str(late.pk)}
    assert len(listed(client.get(f"{LIST}?started_from={day:%Y-%m-%d}"))) == 3
    assert len(listed(client.get(f"{LIST}?started_to={day:%Y-%m-%d}"))) == 3


@pytest.mark.parametrize(
    ("query", "error_of"),
    [
        ("status=exploded", "status"),
        ("direction=sideways", "direction"),
        ("campaign=abc", "campaign"),
        ("campaign=999999", "campaign"),
        ("started_from=yesterday", "started_from"),
        ("started_from=0001-01-01", "started_from"),
        ("started_to=9999-12-31", "started_to"),
        ("started_from=2025-03-02&started_to=2025-03-01", "started_to"),
        ("has_recording=maybe", "has_recording"),
        ("sort=password", "sort"),
        ("sort=-id", "sort"),
        ("page_size=100000", "page_size"),
        (f"q={'x' * 201}", "q"),
        ("q=nul%00byte", "q"),
    ],
)
def test_it_shows_bad_filter_values_as_field_errors_and_lists_nothing(
    client_for, alice: User, query: str, error_of: str
):
    call(alice)
    response = client_for(alice).get(f"{LIST}?{query}")
    assert response.status_code == 200
    body = response.content.decode()
    assert listed(response) == []
    assert f'<p class="field-error" id="{error_of}-errors">' in body
    assert "a filter needs fixing" in body
    if error_of != "status":
        assert f'aria-describedby="{error_of}-errors"' in body


def raw_cursor(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode()


@pytest.mark.parametrize(
    ("cursor", "sort"),
    [
        ("garbage", "-created"),
        (raw_cursor(b'{"a": 1}'), "-created"),
        (raw_cursor(b"\xff\xfe"), "-created"),
        (Cursor("created", None, uuid.uuid4()).encode(), "-created"),  # made for another order
        (Cursor("-created", None, uuid.uuid4()).encode(), "-created"),  # no value where the order needs one
        (Cursor("-created", "9999-12-31T23:59:59-14:00", uuid.uuid4()).encode(), "-created"),  # past year 9999 in UTC
        (Cursor("-created", "2026-01-01T00:00:00", uuid.uuid4()).encode(), "-created"),  # no time zone
        (raw_cursor(b'["-created", ["n"], null, 5]'), "-created"),
        (raw_cursor(b'["-created", "n", "2026-01-01T00:00:00+00:00", 5]'), "-created"),
        (Cursor("-duration", -5, uuid.uuid4()).encode(), "-duration"),
        (Cursor("-duration", "long", uuid.uuid4()).encode(), "-duration"),
        (raw_cursor(b'["status", "n", ["completed"], "' + uuid.uuid4().hex.encode() + b'"]'), "status"),
    ],
)
def test_it_answers_a_broken_page_link_with_a_way_back(client_for, alice: User, cursor: str, sort: str):
    call(alice)
    response = client_for(alice).get(f"{LIST}?sort={sort}&cursor={quote(cursor)}")
    assert listed(response) == []
    assert "This page link is broken or out of date" in response.content.decode()


def test_it_redirects_an_export_with_bad_filters_to_the_list_showing_them(client_for, alice: User):
    response = client_for(alice).get(f"{EXPORT}?direction=sideways&q=hello")
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == LIST
    assert parse_qs(target.query) == {"direction": ["sideways"], "q": ["hello"]}


# --- Search -----------------------------------------------------------------------------------------------


def test_it_finds_words_in_transcripts_and_highlights_them_safely(client_for, alice: User, bob: User):
    hit = call(alice)
    give_transcript(hit, 'Caller: hello.\nAgent: the Enterprise pricing sheet & <b>brochure</b>, "today".')
    miss = call(alice)
    give_transcript(miss, "Caller: wrong number, sorry.")
    theirs = call(bob)
    give_transcript(theirs, "Caller: what is your pricing?")
    response = client_for(alice).get(f"{LIST}?q=PRICING")
    assert listed(response) == [str(hit.pk)]
    body = response.content.decode()
    assert "<mark>pricing</mark>" in body
    snippet = re.search(r'<td data-label="Transcript match" class="snippet">(.*?)</td>', body, re.S)
    assert snippet is not None
    text = snippet.group(1)
    assert "<b>" not in text  # the transcript's markup is text, never markup
    assert "&amp;" in text
    assert re.sub(r"</?mark>", "", text).count("<") == 0


def test_it_escapes_script_in_transcripts(client_for, alice: User):
    session = call(alice)
    give_transcript(session, "Agent: <script>alert('owned')</script> pricing <img src=x onerror=alert(1)>")
    body = client_for(alice).get(f"{LIST}?q=pricing").content.decode()
    assert "<script>alert" not in body
    assert "<img src=x" not in body
    assert "<mark>pricing</mark>" in body


def test_it_finds_calls_by_phone_number_and_external_id(client_for, alice: User):
    by_number = call(alice, to_number="+14155550777")
    by_id = call(alice, external_id="CA-42-xyz")
    call(alice)
    client = client_for(alice)
    response = client.get(f"{LIST}?q=555-0777")
    assert listed(response) == [str(by_number.pk)]
    assert "Matched on a number or id" in response.content.decode()
    assert listed(client.get(f"{LIST}?q=CA-42-xyz")) == [str(by_id.pk)]


def test_it_builds_a_short_snippet_around_the_match(client_for, alice: User):
    session = call(alice)
    filler = " ".join(f"word{i}" for i in range(200))
    give_transcript(session, f"{filler} the discount code is Alpha {filler}")
    body = client_for(alice).get(f"{LIST}?q=discount").content.decode()
    snippet = re.search(r'class="snippet">(.*?)</td>', body, re.S)
    assert snippet is not None
    assert "<mark>discount</mark>" in snippet.group(1)
    assert len(snippet.group(1)) < 400  # a snippet, not the transcript


def test_it_highlights_every_occurrence_and_escapes_the_rest():
    assert highlight("a <b> Price, price & PRICE", "price") == (
        "a &lt;b&gt; <mark>Price</mark>, <mark>price</mark> &amp; <mark>PRICE</mark>"
    )
    assert highlight("x", "x", lead=True, tail=True) == "… <mark>x</mark> …"


# --- Sorting ----------------------------------------------------------------------------------------------


def test_it_sorts_by_a_whitelisted_column_and_marks_it(client_for, alice: User):
    short = call(alice, duration_ms=10_000)
    long = call(alice, duration_ms=90_000)
    unknown = call(alice, duration_ms=None)
    client = client_for(alice)
    response = client.get(f"{LIST}?sort=-duration")
    assert listed(response) == [str(long.pk), str(short.pk), str(unknown.pk)]  # unknown durations last
    body = response.content.decode()
    assert '<th scope="col" class="num" aria-sort="descending"><a class="sort-link" href="?sort=duration">' in body
    assert body.count("aria-sort=") == 1
    assert listed(client.get(f"{LIST}?sort=duration")) == [str(short.pk), str(long.pk), str(unknown.pk)]


def test_it_sorts_by_status_and_by_start(client_for, alice: User):
    now = timezone.now()
    a = call(alice, status="busy", started_at=now - timedelta(hours=1))
    b = call(alice, status="completed", started_at=now - timedelta(hours=3))
    c = call(alice, status="abandoned", started_at=None)
    client = client_for(alice)
    assert listed(client.get(f"{LIST}?sort=status")) == [str(c.pk), str(a.pk), str(b.pk)]
    assert listed(client.get(f"{LIST}?sort=-status")) == [str(b.pk), str(a.pk), str(c.pk)]
    assert listed(client.get(f"{LIST}?sort=-started")) == [str(a.pk), str(b.pk), str(c.pk)]
    assert listed(client.get(f"{LIST}?sort=started")) == [str(b.pk), str(a.pk), str(c.pk)]
    body = client.get(f"{LIST}?sort=started").content.decode()
    assert 'aria-sort="ascending"><a class="sort-link" href="?sort=-started">' in body


# --- Keyset pagination ------------------------------------------------------------------------------------

PAGE = 25


@pytest.fixture
def many_calls(alice: User, bob: User) -> list[CallSession]:
    """67 of alice's calls (2 full pages and a bit), with ties on every sort key, and some of bob's between them."""
    base = timezone.now() - timedelta(days=3)
    statuses = ["completed", "busy", "failed", "no_answer"]
    sessions = [
        CallSession(
            owner=alice,
            team=alice.team,
            source="bulk",
            status=statuses[i % 4],
            started_at=None if i % 7 == 0 else base + timedelta(minutes=i // 3),
            duration_ms=None if i % 5 == 0 else (i % 6) * 1000,
            from_number="+14155550100",
            to_number=f"+1415555{i:04d}",
        )
        for i in range(67)
    ]
    sessions += [CallSession(owner=bob, team=bob.team, source="bulk") for _ in range(10)]
    created = CallSession.objects.bulk_create(sessions)
    # Ties on created_at too: groups of four share one instant, so only the id orders them.
    for i, session in enumerate(created):
        CallSession.objects.filter(pk=session.pk).update(created_at=base + timedelta(seconds=i // 4))
    return list(CallSession.objects.filter(owner=alice))


def expected_order(sessions: list[CallSession], sort: str) -> list[str]:
    field = {"created": "created_at", "started": "started_at", "duration": "duration_ms", "status": "status"}
    name = field[sort.lstrip("-")]
    descending = sort.startswith("-")
    present = sorted(
        (s for s in sessions if getattr(s, name) is not None),
        key=lambda s: (getattr(s, name), s.pk.int),
        reverse=descending,
    )
    missing = sorted((s for s in sessions if getattr(s, name) is None), key=lambda s: s.pk.int, reverse=descending)
    return [str(s.pk) for s in present + missing]  # NULLs last, in both directions


@pytest.mark.parametrize("sort", ["-created", "created", "-started", "started", "-duration", "duration", "status"])
def test_it_walks_every_page_both_ways_without_gaps_or_duplicates(
    client_for, alice: User, many_calls: list[CallSession], sort: str
):
    client = client_for(alice)
    want = expected_order(many_calls, sort)
    pages: list[list[str]] = []
    url: str | None = f"{LIST}?sort={sort}&page_size={PAGE}"
    response: Any = None
    while url is not None:
        response = client.get(url if url.startswith("/") else f"{LIST}{url}")
        pages.append(listed(response))
        url = pager_link(response, "next")
        assert len(pages) < 10
    assert [len(p) for p in pages] == [25, 25, 17]
    assert [row for page in pages for row in page] == want
    assert "Showing 17 calls" in response.content.decode()
    # And back from the last page to the first, page by page: the same pages.
    back: list[list[str]] = [pages[-1]]
    url = pager_link(response, "prev")
    while url is not None:
        response = client.get(f"{LIST}{url}")
        back.append(listed(response))
        url = pager_link(response, "prev")
        assert len(back) < 10
    assert back[::-1] == pages
    assert pager_link(response, "next") is not None


def test_it_labels_the_links_newer_and_older(client_for, alice: User, many_calls: list[CallSession]):
    client = client_for(alice)
    first = client.get(f"{LIST}?page_size={PAGE}")
    body = first.content.decode()
    assert 'rel="next"' in body
    assert "Older" in body
    assert 'rel="prev"' not in body  # the first page
    second = client.get(f"{LIST}{pager_link(first, 'next')}")
    assert 'rel="prev"' in second.content.decode()
    assert "Newer" in second.content.decode()
    assert "page 2 of" not in second.content.decode().lower()


def test_it_keeps_the_filters_in_the_page_links(client_for, alice: User, many_calls: list[CallSession]):
    client = client_for(alice)
    response = client.get(f"{LIST}?status=completed&status=busy&page_size={PAGE}")
    link = pager_link(response, "next")
    assert link is not None
    params = parse_qs(urlsplit(link).query)
    assert params["status"] == ["completed", "busy"]
    rows = listed(response) + listed(client.get(f"{LIST}{link}"))
    statuses = dict(CallSession.objects.values_list("id", "status"))
    assert all(statuses[uuid.UUID(row)] in {"completed", "busy"} for row in rows)
    assert len(rows) == len(set(rows)) == sum(1 for s in many_calls if s.status in {"completed", "busy"})


# --- Query counts -----------------------------------------------------------------------------------------
#
# The page reads: the session, the user, the campaigns of the filter, (managers and admins:) the owners of the
# filter, and one query for the rows, whatever the page size or the search.


@pytest.mark.parametrize(("who", "queries"), [("alice", 4), ("carol", 5), ("admin_user", 5)])
def test_it_lists_a_page_in_a_fixed_number_of_queries(
    request, client_for, django_assert_max_num_queries, many_calls: list[CallSession], who: str, queries: int
):
    client = client_for(request.getfixturevalue(who))
    counts = []
    for query in ("page_size=25", "page_size=200", "page_size=25&q=555&sort=-duration&status=busy"):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"{LIST}?{query}").status_code == 200
        counts.append(len(captured))
    assert counts == [queries] * 3
    link = pager_link(client.get(f"{LIST}?page_size=25"), "next")
    with django_assert_max_num_queries(queries):  # a deep page costs what the first does
        assert client.get(f"{LIST}{link}").status_code == 200


def test_it_exports_in_a_fixed_number_of_queries(client_for, django_assert_max_num_queries, alice: User):
    for _ in range(30):
        call(alice)
    client = client_for(alice)
    with django_assert_max_num_queries(4):  # session, user, campaigns, the rows
        rows = export(client)
    assert len(rows) == 31


# --- CSV export -------------------------------------------------------------------------------------------


def test_it_exports_the_current_filter_as_csv(client_for, alice: User, sales_team: Team):
    campaign = Campaign.objects.create(name="Spring", team=sales_team)
    started = timezone.now() - timedelta(hours=2)
    done = call(
        alice,
        status="completed",
        direction="outbound",
        started_at=started,
        ended_at=started + timedelta(seconds=95),
        duration_ms=90_500,
        campaign=campaign,
        source="pipecat-prod",
        external_id="CA-1",
        recording_status="available",
        from_number="14155550100",
        to_number="14155550199",
    )
    call(alice, status="busy")
    client = client_for(alice)
    response: Any = client.get(f"{EXPORT}?status=completed")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="calls-{timezone.localdate():%Y%m%d}.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "id",
        "started_at",
        "ended_at",
        "duration_s",
        "status",
        "direction",
        "from",
        "to",
        "owner",
        "team",
        "campaign_id",
        "source",
        "external_id",
        "recording_status",
    ]
    assert rows[1:] == [
        [
            str(done.pk),
            timezone.localtime(started).isoformat(),
            timezone.localtime(started + timedelta(seconds=95)).isoformat(),
            "90.5",
            "completed",
            "outbound",
            "14155550100",
            "14155550199",
            "alice",
            "Sales",
            str(campaign.pk),
            "pipecat-prod",
            "CA-1",
            "available",
        ]
    ]
    assert len(export(client, "?status=completed&status=busy")) == 3


def test_it_exports_all_rows_without_paging(client_for, alice: User, many_calls: list[CallSession]):
    rows = export(client_for(alice), f"?page_size={PAGE}&sort=-duration")
    assert [row[0] for row in rows[1:]] == expected_order(many_calls, "-duration")


def test_it_neutralises_formulas_in_exported_cells(client_for, alice: User):
    call(
        alice,
        external_id='=HYPERLINK("http://evil.example","click")',
        source="-2+3",
        from_number="+14155550100",
        to_number="@SUM(A1)",
        status="completed",
    )
    rows = export(client_for(alice))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["external_id"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["source"] == "'-2+3"
    assert row["from"] == "'+14155550100"
    assert row["to"] == "'@SUM(A1)"
    assert row["status"] == "completed"


# --- Page hygiene: CSP, no inline script, accessibility hooks, no storage -------------------------------


class BrokenStorage:
    """A recordings storage that is down: any use of it fails."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("recordings storage is down")


@pytest.mark.parametrize("path", [LIST, f"{LIST}?q=555&status=completed", EXPORT, "/"])
def test_it_serves_the_pages_while_the_recordings_storage_is_down(client_for, alice: User, settings: Any, path: str):
    session = call(alice, status="completed", recording_status=CallSession.RecordingStatus.AVAILABLE)
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {"BACKEND": "tests.calls.test_pages_list.BrokenStorage"},
    }
    response = client_for(alice).get(path)
    assert response.status_code == 200
    streamed = getattr(response, "streaming", False)
    body = b"".join(response.streaming_content) if streamed else response.content
    if path != "/":  # the list and the export still show the call; the dashboard shows counts only
        assert str(session.pk) in body.decode()


def assert_no_inline_script(body: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", body, flags=re.I):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert " style=" not in body
    assert re.search(r"\son[a-z]+=", body) is None  # no inline event handlers


def test_it_serves_a_page_that_a_strict_csp_allows(client_for, alice: User):
    session = call(alice)
    give_transcript(session, "Agent: pricing")
    response = client_for(alice).get(f"{LIST}?q=pricing")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    body = response.content.decode()
    assert_no_inline_script(body)
    assert '<script src="/static/js/list.js" defer></script>' in body
    assert '<link rel="stylesheet" href="/static/css/pages.css">' in body


def test_it_labels_every_filter_and_scopes_the_headers(client_for, carol: User):
    body = client_for(carol).get(LIST).content.decode()
    for match in re.finditer(r'<(?:input|select)\b[^>]*\bid="([^"]+)"', body):
        if 'type="hidden"' in match.group(0):
            continue
        assert f'for="{match.group(1)}"' in body, match.group(0)
    call(carol)
    body = client_for(carol).get(LIST).content.decode()
    assert re.findall(r"<th\b(?![^>]*scope=)", body) == []
