"""The run page, its live JSON, its pause/resume/cancel buttons, its report and its CSV export, as the campaign's
manager (carol), a teammate agent (alice, read-only), the other team's manager (dave), an outsider agent (charlie)
and an admin. Runs are driven by the real engine: ``run_launch``, scheduler ticks with a recording dialer, and
calls ended by events as a voice agent reports them."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from calls.models import CallSession, Recording
from campaigns.models import Campaign, Dial, Run, RunContact, RunLog
from campaigns.scheduler import run_tick
from crm.models import User
from tests.campaigns.run_helpers import RecordingDialer, campaign_with_contacts, end_call, in_flight, launch

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Who may see what is tested here, not the password hasher's cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def tick(run: Run, *, seconds: int = 0) -> Run:
    run_tick(run_id=run.pk, now=timezone.now() + timedelta(seconds=seconds), dialer=RecordingDialer())
    run.refresh_from_db()
    return run


@pytest.fixture
def campaign(carol: User, alice: User, bob: User) -> Campaign:
    return campaign_with_contacts(carol, 3, name="Spring renewals", max_concurrent_calls=3)


@pytest.fixture
def run(campaign: Campaign) -> Run:
    """A running run: three contacts dialed; one call completed with a recording, one unanswered, one ringing."""
    started = launch(campaign)
    tick(started)
    dials = sorted(in_flight(started), key=lambda dial: dial.target.position)
    assert len(dials) == 3
    completed = end_call(dials[0].session_id, "completed")
    CallSession.objects.filter(pk=completed.pk).update(duration_ms=83_000, recording_status="available")
    Recording.objects.create(session=completed, file=f"sessions/{completed.pk}/recording.wav", status="available")
    end_call(dials[1].session_id, "no_answer")
    return tick(started)


def page(run: Run | str) -> str:
    return f"/runs/{getattr(run, 'pk', run)}/"


def text_of(response: Any) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def finish(run: Run) -> Run:
    """End every call in flight (completed), tick until the run is over."""
    for _ in range(20):
        for dial in in_flight(run):
            end_call(dial.session_id, "completed")
        run = tick(run, seconds=7200)
        if not run.is_active:
            return run
    raise AssertionError(f"run {run.pk} did not finish: {run.state}")


# --- Access --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "controls"), [("carol", True), ("admin_user", True), ("alice", False), ("bob", False)])
def test_it_shows_the_run_to_the_team_and_its_buttons_to_those_who_may_control(
    request, client_for, run, who: str, controls: bool
):
    response = client_for(request.getfixturevalue(who)).get(page(run))
    assert response.status_code == 200
    body = response.content.decode()
    assert f"Run {run.pk}" in body
    assert ('id="pause-button"' in body) is controls
    assert ('id="cancel-button"' in body) is controls
    assert ('id="read-only-notice"' in body) is not controls
    assert 'id="export-link"' in body  # reading the results is for everyone who may see the run


@pytest.mark.parametrize("who", ["dave", "charlie"])
def test_it_answers_outsiders_with_the_run_not_found_page(request, client_for, run, who: str):
    response = client_for(request.getfixturevalue(who)).get(page(run))
    assert response.status_code == 404
    text = text_of(response)
    assert "Run not found" in text
    assert "Spring renewals" not in text


@pytest.mark.parametrize("run_id", ["424242", "abc", "-1", "1" * 30])
def test_it_answers_a_missing_or_malformed_run_with_the_helpful_404(client_for, carol, run_id: str):
    response = client_for(carol).get(page(run_id))
    assert response.status_code == 404
    assert "Run not found" in text_of(response)


def test_it_sends_anonymous_visitors_to_sign_in(run):
    response = Client().get(page(run))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- What the page shows -----------------------------------------------------------------------------------------


def test_it_shows_the_progress_and_every_counter(client_for, carol, run):
    response = client_for(carol).get(page(run))
    body = response.content.decode()
    assert run.total == 3
    assert (run.completed, run.no_answer, run.dialing) == (1, 0, 1) or (run.completed, run.dialing) == (1, 1)
    for name in (
        "total",
        "queued",
        "dialing",
        "connected",
        "completed",
        "no_answer",
        "busy",
        "failed",
        "skipped_dnc",
        "outside_window",
        "dials",
    ):
        match = re.search(rf'data-counter="{name}">(\d+)<', body)
        assert match is not None, name
        assert int(match.group(1)) == getattr(run, name), name
    assert re.search(r'<progress id="progress-bar"[^>]* max="100" value="[\d.]+"', body)
    assert 'data-active="true"' in body
    assert 'src="/static/js/run.js"' in body


def test_it_lists_the_calls_with_contact_attempt_outcome_duration_and_recording(client_for, alice, run):
    response = client_for(alice).get(page(run))
    body = response.content.decode()
    dials = list(Dial.objects.filter(run=run).select_related("session", "target__contact"))
    assert len(dials) == 3
    for dial in dials:
        assert f'href="/calls/{dial.session_id}/"' in body
        assert dial.target.contact.name in body
    completed = next(dial for dial in dials if dial.outcome == "completed")
    row = re.search(rf'<tr data-dial="{completed.pk}"[^>]*>(.*?)</tr>', body, re.S)
    assert row is not None
    assert "1:23" in row.group(1)
    assert 'data-recording="available"' in body
    assert "Playable" in row.group(1)


def test_it_pages_the_calls_in_a_constant_number_of_queries(client_for, carol, django_assert_max_num_queries):
    def run_with(count: int) -> Run:
        campaign = campaign_with_contacts(carol, count, max_concurrent_calls=count, max_calls_per_minute=count)
        made = launch(campaign)
        tick(made)
        return tick(made)  # a tick dials at most CAMPAIGN_MAX_DIALS_PER_TICK

    small, large = run_with(3), run_with(60)
    client = client_for(carol)
    # session + user, the run, may-control (team manager), the calls' count and page, the log, the run's
    # contacts for the report when it is over.
    with django_assert_max_num_queries(9):
        assert client.get(page(small)).status_code == 200
    with django_assert_max_num_queries(9):
        response = client.get(page(large))
    body = response.content.decode()
    assert body.count("<tr data-dial=") == 25
    assert "page 1 of 3" in body
    second = client.get(page(large) + "?page=3")
    assert second.content.decode().count("<tr data-dial=") == 10
    assert client.get(page(large) + "?page=nonsense").status_code == 200


def test_it_shows_the_scheduler_log_newest_first(client_for, alice, run):
    body = client_for(alice).get(page(run)).content.decode()
    ids = [int(value) for value in re.findall(r'data-log-id="(\d+)"', body)]
    assert len(ids) >= 2
    assert ids == sorted(ids, reverse=True)
    assert ids[0] == RunLog.objects.filter(run=run).latest("id").pk


def test_it_shows_the_report_only_when_the_run_is_over(client_for, carol, run):
    client = client_for(carol)
    assert 'id="report-table"' not in client.get(page(run)).content.decode()
    finished = finish(run)
    assert finished.state == Run.State.COMPLETED
    body = client.get(page(finished)).content.decode()
    assert 'id="report-table"' in body
    assert "<svg" in body
    assert 'class="chart-bar outcome-completed"' in body
    rows = dict(re.findall(r'<tr data-outcome="(\w+)"><th scope="row">[^<]+</th><td class="num">(\d+)</td>', body))
    assert rows["completed"] == str(finished.completed)
    assert int(rows["completed"]) + int(rows["no_answer"]) == 3
    assert re.search(r'data-outcome="completed">.*?<td class="num">([\d.]+) %</td>', body, re.S)
    assert 'id="pause-button"' not in body
    assert 'id="relaunch-button"' in body
    assert 'data-active="false"' in body


# --- The live JSON ------------------------------------------------------------------------------------------------


def progress(client: Client, run: Run | str, after: str | None = None) -> Any:
    query = f"?after={after}" if after is not None else ""
    return client.get(f"/runs/{getattr(run, 'pk', run)}/progress.json{query}", HTTP_ACCEPT="application/json")


@pytest.mark.parametrize("who", ["carol", "alice", "admin_user"])
def test_it_serves_the_progress_and_the_log_to_whoever_may_see_the_run(request, client_for, run, who: str):
    response = progress(client_for(request.getfixturevalue(who)), run)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    assert data["progress"]["id"] == run.pk
    assert data["progress"]["state"] == "running"
    assert data["progress"]["total"] == 3
    assert data["progress"]["completed"] == run.completed
    log_ids = [entry["id"] for entry in data["log"]]
    assert log_ids == sorted(log_ids)
    assert data["last_log_id"] == log_ids[-1] == RunLog.objects.filter(run=run).latest("id").pk
    assert set(data["log"][0]) == {"id", "at", "time", "level", "kind", "message", "actor"}


def test_it_sends_only_the_log_lines_written_after_the_last_one_seen(client_for, carol, run):
    client = client_for(carol)
    last = progress(client, run).json()["last_log_id"]
    assert progress(client, run, after=str(last)).json()["log"] == []
    end_call(in_flight(run)[0].session_id, "busy")
    tick(run)
    data = progress(client, run, after=str(last)).json()
    assert data["log"], "the tick logged what it did"
    assert all(entry["id"] > last for entry in data["log"])
    assert data["last_log_id"] == data["log"][-1]["id"]
    assert data["progress"]["dialing"] == 0


@pytest.mark.parametrize("who", ["dave", "charlie"])
def test_it_answers_outsiders_polling_with_a_json_404(request, client_for, run, who: str):
    response = progress(client_for(request.getfixturevalue(who)), run)
    assert response.status_code == 404
    assert response.json() == {"detail": "Run not found.", "code": "run_not_found"}


def test_it_answers_a_signed_out_poll_with_401_and_bad_input_with_400(client_for, carol, run):
    assert progress(Client(), run).status_code == 401
    for bad in ("x", "-3", "1.5"):
        response = progress(client_for(carol), run, after=bad)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_after"


# --- Pause, resume, cancel ----------------------------------------------------------------------------------------


def post(client: Client, run: Run, action: str, **data: str) -> Any:
    return client.post(f"/runs/{run.pk}/{action}/", data)


@pytest.mark.parametrize("who", ["carol", "admin_user"])
def test_it_pauses_and_resumes_a_run(request, client_for, run, who: str, django_capture_on_commit_callbacks):
    client = client_for(request.getfixturevalue(who))
    response = post(client, run, "pause")
    assert response.status_code == 302
    assert response["Location"] == page(run)
    run.refresh_from_db()
    assert run.state == Run.State.PAUSED
    body = client.get(page(run)).content.decode()
    assert 'id="resume-button"' in body
    assert 'id="pause-button"' not in body
    with django_capture_on_commit_callbacks(execute=False):
        post(client, run, "resume")
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING


def test_it_asks_before_canceling_and_cancels_once_confirmed(client_for, carol, run):
    client = client_for(carol)
    ask = post(client, run, "cancel")
    assert ask.status_code == 200
    assert 'id="confirm-cancel"' in ask.content.decode()
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING
    done = post(client, run, "cancel", confirm="yes")
    assert done.status_code == 302
    run.refresh_from_db()
    assert run.state == Run.State.CANCELED
    assert any("Run canceled" in message for message in messages_of(client.get(page(run))))


def test_it_says_why_a_transition_is_impossible(client_for, carol, run):
    client = client_for(carol)
    post(client, run, "resume")
    shown = messages_of(client.get(page(run)))
    assert "This run is running: only a paused run can be resumed." in shown
    finished = finish(run)
    post(client, finished, "cancel", confirm="yes")
    assert "This run is already completed." in messages_of(client.get(page(run)))
    finished.refresh_from_db()
    assert finished.state == Run.State.COMPLETED


@pytest.mark.parametrize(("action", "data"), [("pause", {}), ("resume", {}), ("cancel", {"confirm": "yes"})])
def test_it_answers_a_teammates_control_with_403_and_changes_nothing(client_for, alice, run, action: str, data):
    response = post(client_for(alice), run, action, **data)
    assert response.status_code == 403
    assert "Only the campaign's team manager or an admin" in text_of(response)
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING


@pytest.mark.parametrize("who", ["dave", "charlie"])
@pytest.mark.parametrize(("action", "data"), [("pause", {}), ("resume", {}), ("cancel", {"confirm": "yes"})])
def test_it_answers_an_outsiders_control_with_404(request, client_for, run, who: str, action: str, data):
    response = post(client_for(request.getfixturevalue(who)), run, action, **data)
    assert response.status_code == 404
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING


def test_it_refuses_control_by_get(client_for, carol, run):
    assert client_for(carol).get(f"/runs/{run.pk}/pause/").status_code == 405
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING


# --- CSV export ------------------------------------------------------------------------------------------------------


def export(client: Client, run: Run) -> tuple[Any, list[list[str]]]:
    response = client.get(f"/runs/{run.pk}/export.csv")
    content = b"".join(response.streaming_content).decode() if response.status_code == 200 else ""  # type: ignore[attr-defined]
    return response, list(csv.reader(io.StringIO(content)))


def test_it_exports_one_row_per_contact(client_for, alice, run):
    response, rows = export(client_for(alice), run)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="run-{run.pk}-' in response["Content-Disposition"]
    assert rows[0] == [
        "contact",
        "phone",
        "company",
        "attempts",
        "final_outcome",
        "outcome_reason",
        "last_dial_at",
        "session_id",
        "duration_seconds",
        "recording_available",
    ]
    targets = list(RunContact.objects.filter(run=run).select_related("contact").order_by("position"))
    assert [row[0] for row in rows[1:]] == [target.contact.name for target in targets]
    by_phone = {row[1]: row for row in rows[1:]}
    for target in targets:
        row = by_phone[target.contact.phone]
        dial = Dial.objects.filter(target=target).order_by("-attempt").first()
        assert row[3] == str(target.attempts)
        assert row[7] == (str(dial.session_id) if dial else "")
    completed = next(row for row in rows[1:] if row[4] == "completed")
    assert completed[8] == "83"
    assert completed[9] == "yes"
    assert completed[6]  # when it was last dialed
    assert {row[4] for row in rows[1:]} == {"completed", "dialing", "no_answer (will retry)"}


def test_it_exports_cells_a_spreadsheet_would_not_run(client_for, carol, run):
    target = RunContact.objects.filter(run=run).select_related("contact").first()
    assert target is not None
    target.contact.name = '=HYPERLINK("http://evil")'
    target.contact.save()
    _, rows = export(client_for(carol), run)
    assert any(row[0] == '\'=HYPERLINK("http://evil")' for row in rows)
    assert all(re.fullmatch(r"\+\d+", row[1]) for row in rows[1:])  # numbers stay numbers


@pytest.mark.parametrize("who", ["dave", "charlie"])
def test_it_answers_an_outsiders_export_with_404(request, client_for, run, who: str):
    response, _ = export(client_for(request.getfixturevalue(who)), run)
    assert response.status_code == 404
