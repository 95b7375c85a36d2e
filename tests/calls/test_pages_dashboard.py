"""The dashboard (/): calls per day, outcomes, average duration and campaigns, with the "you and your team" card."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from calls.models import CallSession
from calls.reports.dashboard import DashboardStats, DayCount, _nice_ceiling, dashboard_stats, per_day_chart
from campaigns.models import Campaign
from crm.models import Team, User
from tests.factories import CallSessionFactory

pytestmark = pytest.mark.django_db

HOME = "/"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """The cast's passwords are hashed with a test-only hasher: PBKDF2 would make each user cost half a second."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def local(day: date, at: time = time(12, 0)) -> datetime:
    return datetime.combine(day, at, tzinfo=timezone.get_current_timezone())


def days_ago(n: int) -> date:
    return timezone.localdate() - timedelta(days=n)


def call(owner: User | None, *, day: int | None, status: str, talk_s: int | None = None, **fields: Any) -> CallSession:
    """A call started at noon ``day`` days ago (None: not started); answered when it has talk time."""
    started = local(days_ago(day)) if day is not None else None
    if talk_s is not None and started is not None:
        fields.setdefault("answered_at", started + timedelta(seconds=5))
        fields.setdefault("ended_at", started + timedelta(seconds=5 + talk_s))
    return CallSessionFactory.create(
        owner=owner,
        status=status,
        started_at=started,
        duration_ms=None if talk_s is None else talk_s * 1000,
        **fields,
    )


class _Tables(HTMLParser):
    """The text of each cell of each table with an id: {id: [[cell, ...], ...]}, header rows included."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id")
            if self._table:
                self.tables[self._table] = []
        elif self._table and tag == "tr":
            self.tables[self._table].append([])
        elif self._table and tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif self._table and tag in {"td", "th"} and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(response: Any) -> dict[str, list[list[str]]]:
    assert response.status_code == 200
    parser = _Tables()
    parser.feed(response.content.decode())
    return parser.tables


def per_day(response: Any) -> dict[str, int]:
    body = response.content.decode()
    return {
        d: int(n)
        for d, n in re.findall(r'<time datetime="(\d{4}-\d{2}-\d{2})">[^<]*</time></th><td class="num">(\d+)', body)
    }


def kpi(response: Any, name: str) -> str:
    match = re.search(rf'<dd id="kpi-{name}">([^<]*)</dd>', response.content.decode())
    assert match is not None, name
    return match.group(1)


@pytest.fixture
def spring(sales_team: Team) -> Campaign:
    return Campaign.objects.create(name="Spring", team=sales_team)


@pytest.fixture
def alices_month(alice: User, bob: User, spring: Campaign) -> None:
    """alice's calls with known outcomes, days and durations; bob's and an archived one must not count for her."""
    call(alice, day=0, status="completed", talk_s=60)
    call(alice, day=0, status="completed", talk_s=120, campaign=spring)
    call(alice, day=None, status="queued")  # not started: counts on the day it was logged (today)
    call(alice, day=1, status="busy", talk_s=0, answered_at=None, campaign=spring)
    call(alice, day=6, status="no_answer", talk_s=0, answered_at=None)
    call(alice, day=6, status="failed", talk_s=30)  # answered, then failed
    call(alice, day=20, status="completed", talk_s=90)
    call(alice, day=60, status="completed", talk_s=45)
    call(bob, day=0, status="completed", talk_s=600)
    call(alice, day=0, status="completed", talk_s=999, archived_at=timezone.now())


# --- Access -----------------------------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_sign_in():
    response = Client().get(HOME)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


@pytest.mark.parametrize(
    ("who", "total"),
    [
        ("alice", "7"),
        ("bob", "1"),  # his own only, not his teammate's
        ("carol", "8"),  # the team's
        ("admin_user", "8"),
    ],
)
def test_it_counts_only_the_calls_each_person_may_see(request, client_for, alices_month: None, who: str, total: str):
    response = client_for(request.getfixturevalue(who)).get(HOME)
    assert kpi(response, "total") == total


def test_it_shows_an_outsider_the_empty_state(client_for, alices_month: None, charlie: User):
    body = client_for(charlie).get(HOME).content.decode()
    assert "No calls yet" in body
    assert 'id="kpi-total"' not in body
    assert 'href="/account/tokens/"' in body  # the way forward: connect a voice agent


# --- The numbers ------------------------------------------------------------------------------------------


def test_it_shows_the_numbers_of_the_last_30_days(client_for, alice: User, alices_month: None, spring: Campaign):
    response = client_for(alice).get(HOME)
    assert kpi(response, "total") == "7"
    assert kpi(response, "answered") == "4"  # 60 s, 120 s, 30 s (failed after answer), 90 s
    assert kpi(response, "completed") == "42.9 %"  # 3 of 7
    assert kpi(response, "avg-duration") == "1:15"  # (60 + 120 + 30 + 90) / 4 = 75 s

    days = per_day(response)
    assert len(days) == 30
    assert days[f"{days_ago(0):%Y-%m-%d}"] == 3
    assert days[f"{days_ago(1):%Y-%m-%d}"] == 1
    assert days[f"{days_ago(6):%Y-%m-%d}"] == 2
    assert days[f"{days_ago(20):%Y-%m-%d}"] == 1
    assert days[f"{days_ago(29):%Y-%m-%d}"] == 0
    assert sum(days.values()) == 7

    found = tables(response)
    assert found["outcome-table"][1:] == [
        ["Completed", "3", "42.9 %"],
        ["Busy", "1", "14.3 %"],
        ["Failed", "1", "14.3 %"],
        ["No answer", "1", "14.3 %"],
        ["Queued", "1", "14.3 %"],
    ]
    assert found["campaign-table"] == [
        ["Campaign", "Calls", "Completed", "Average duration"],
        ["Spring", "2", "50 %", "2:00"],  # the busy call has no talk time: not answered
        ["No campaign", "5", "40 %", "1:00"],  # (60 + 30 + 90) / 3
    ]


def test_it_changes_the_period(client_for, alice: User, alices_month: None):
    client = client_for(alice)
    week = client.get(f"{HOME}?days=7")
    assert kpi(week, "total") == "6"
    assert kpi(week, "avg-duration") == "1:10"  # (60 + 120 + 30) / 3
    assert len(per_day(week)) == 7
    assert 'href="?days=7" aria-current="page"' in week.content.decode()
    quarter = client.get(f"{HOME}?days=90")
    assert kpi(quarter, "total") == "8"
    assert len(per_day(quarter)) == 90


@pytest.mark.parametrize("days", ["13", "abc", "-1", "100000"])
def test_it_shows_a_period_it_does_not_offer_as_an_error_and_uses_the_default(
    client_for, alice: User, alices_month: None, days: str
):
    response = client_for(alice).get(f"{HOME}?days={days}")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="days-errors"' in body
    assert "Showing the last 30 days" in body
    assert kpi(response, "total") == "7"


def test_it_says_when_the_period_has_no_calls_but_earlier_ones_exist(client_for, alice: User):
    call(alice, day=60, status="completed", talk_s=45)
    body = client_for(alice).get(f"{HOME}?days=7").content.decode()
    assert "No calls in the last 7 days" in body
    assert 'href="?days=90"' in body


def test_it_buckets_days_in_the_local_time_zone(client_for, alice: User, settings: Any):
    settings.TIME_ZONE = "America/New_York"
    before_midnight = local(days_ago(3), time(23, 30))
    after_midnight = local(days_ago(2), time(0, 30))
    # One UTC day, two local days.
    assert before_midnight.astimezone(UTC).date() == after_midnight.astimezone(UTC).date()
    CallSessionFactory.create(owner=alice, status="completed", started_at=before_midnight)
    CallSessionFactory.create(owner=alice, status="completed", started_at=after_midnight)
    days = per_day(client_for(alice).get(f"{HOME}?days=7"))
    assert days[f"{days_ago(3):%Y-%m-%d}"] == 1
    assert days[f"{days_ago(2):%Y-%m-%d}"] == 1


def test_it_computes_the_stats_as_a_typed_function(alice: User, alices_month: None):
    stats = dashboard_stats(user=alice, days=30)
    assert stats.total_calls == 7
    assert stats.answered_calls == 4
    assert stats.completed_calls == 3
    assert stats.avg_answered_duration_ms == 75_000
    assert stats.first_day == days_ago(29)
    assert stats.last_day == days_ago(0)
    assert [o.status for o in stats.outcomes] == ["completed", "busy", "failed", "no_answer", "queued"]
    assert stats.busiest_day is not None
    assert stats.busiest_day.calls == 3
    with pytest.raises(ValueError, match="positive"):
        dashboard_stats(user=alice, days=0)


def test_it_counts_a_call_in_progress_as_answered_but_leaves_it_out_of_the_average(alice: User):
    call(alice, day=0, status="completed", talk_s=100)
    started = local(days_ago(0), time(0, 1))
    CallSessionFactory.create(owner=alice, status="in_progress", started_at=started, answered_at=started)
    adopted = CallSessionFactory.create(owner=alice, status="completed", started_at=started, duration_ms=40_000)
    assert adopted.answered_at is None  # an adopted recording: a duration, no answer event
    stats = dashboard_stats(user=alice, days=7)
    assert stats.total_calls == 3
    assert stats.answered_calls == 3
    assert stats.avg_answered_duration_ms == 70_000  # (100 + 40) / 2


# --- Charts, the team card, page hygiene ------------------------------------------------------------------


def test_it_draws_accessible_svg_charts(client_for, alice: User, alices_month: None):
    body = client_for(alice).get(HOME).content.decode()
    days_chart = re.search(r'<svg class="chart chart-days"[^>]*>(.*?)</svg>', body, re.S)
    assert days_chart is not None
    tag = days_chart.group(0)
    assert 'role="img"' in tag
    assert 'aria-label="Calls per day, last 30 days: 7 in all' in tag
    assert "<title>Calls per day, last 30 days</title>" in tag
    assert tag.count('<rect class="chart-bar"') == 30
    outcome_chart = re.search(r'<svg class="chart chart-outcomes"[^>]*role="img"[^>]*>(.*?)</svg>', body, re.S)
    assert outcome_chart is not None
    assert outcome_chart.group(0).count("<rect ") == 5
    assert "<title>Completed: 3 (42.9 %)</title>" in outcome_chart.group(0)


@pytest.mark.parametrize(("most", "ceiling"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (11, 20), (51, 100)])
def test_it_scales_the_bars_to_a_round_maximum(most: int, ceiling: int):
    assert _nice_ceiling(most) == ceiling


def test_it_draws_bars_in_proportion_and_keeps_the_labels_inside():
    today = date(2026, 3, 10)
    days = [DayCount(day=today - timedelta(days=6 - i), calls=n) for i, n in enumerate([0, 1, 2, 5, 10, 4, 3])]
    stats = DashboardStats(
        days=7,
        first_day=days[0].day,
        last_day=today,
        total_calls=25,
        answered_calls=0,
        completed_calls=0,
        avg_answered_duration_ms=None,
        per_day=days,
        outcomes=[],
        campaigns=[],
        has_any_calls=True,
    )
    chart = per_day_chart(stats)
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0
    assert heights[4] == 2 * heights[3] == 10 * heights[1]
    assert [tick.text for tick in chart.y_ticks] == ["0", "5", "10"]
    assert all(bar.x >= 0 and bar.x + bar.width <= chart.width for bar in chart.bars)
    assert chart.x_labels[-1].text == "10 Mar"
    assert chart.x_labels[-1].anchor == "end"
    assert [label.minor for label in chart.x_labels] == [False, True, False, True, False, True, False]
    assert chart.bars[4].title == "Sun 8 Mar: 10 calls"


def test_it_shows_who_you_are_and_your_team(client_for, alice: User, bob: User):
    body = client_for(alice).get(HOME).content.decode()
    assert "Welcome, Alice" in body
    assert "<dt>Team</dt><dd>Sales</dd>" in body
    assert "<dt>Manager</dt><dd>Carol</dd>" in body
    assert 'Bob <span class="badge">' in body
    assert "Connect a voice agent" in body


def test_it_serves_a_page_that_a_strict_csp_allows(client_for, alice: User, alices_month: None):
    response = client_for(alice).get(HOME)
    assert "script-src 'self'" in response["Content-Security-Policy"]
    body = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", body, flags=re.I):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert " style=" not in body
    assert re.search(r"\son[a-z]+=", body) is None


# --- Query counts -----------------------------------------------------------------------------------------
#
# session, user, calls per day, per status, per campaign, the user's team (with its manager), its members;
# plus one exists() when the period is empty; an admin has no team card to read.


@pytest.mark.parametrize(("who", "queries"), [("alice", 7), ("carol", 7), ("admin_user", 5)])
def test_it_shows_the_dashboard_in_a_fixed_number_of_queries(
    request, client_for, django_assert_num_queries, alices_month: None, who: str, queries: int
):
    client = client_for(request.getfixturevalue(who))
    for days in (7, 90):
        with django_assert_num_queries(queries):
            assert client.get(f"{HOME}?days={days}").status_code == 200


def test_it_adds_one_query_to_tell_an_empty_period_from_no_calls_at_all(
    client_for, django_assert_num_queries, charlie: User
):
    client = client_for(charlie)
    with django_assert_num_queries(8):
        assert client.get(HOME).status_code == 200
