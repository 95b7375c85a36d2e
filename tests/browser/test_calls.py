"""An agent's day: find a call in the list, open it, play it, jump through its transcript, take a note."""

from __future__ import annotations

import re

import pytest

from calls.models import CallSession, Note
from tests.browser.conftest import PHONE, dual_channel_call, recorded_call, screenshot, visible_text
from tests.factories import CallSessionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def calls(alice, bob, recordings_root):
    """alice's recorded call (it mentions a warranty), a dual-channel one, calls that did not connect, and
    one of bob's that she must not see."""
    recorded = recorded_call(alice, recordings_root, to_number="+14155550123")
    dual = dual_channel_call(alice, recordings_root)
    busy = CallSessionFactory.create(owner=alice, status=CallSession.Status.BUSY, to_number="+14155550177")
    no_answer = CallSessionFactory.create(owner=alice, status=CallSession.Status.NO_ANSWER)
    bobs = CallSessionFactory.create(owner=bob, status=CallSession.Status.BUSY)
    return {"recorded": recorded, "dual": dual, "busy": busy, "no_answer": no_answer, "bobs": bobs}


def listed_ids(page) -> list[str]:
    hrefs = page.locator(".calls-table tbody a.row-link").evaluate_all("links => links.map(a => a.pathname)")
    return [re.fullmatch(r"/calls/([0-9a-f-]{36})/", href).group(1) for href in hrefs]  # type: ignore[union-attr]


def player(page, expression: str):
    return page.evaluate(f"() => {{ const p = document.querySelector('#player'); return {expression}; }}")


def test_it_filters_the_list_by_status(calls, signed_in_page, console):
    page = signed_in_page(calls["recorded"].session.owner)
    page.click(".mainnav a:has-text('Calls')")
    page.wait_for_url("**/calls/")
    mine = {str(calls[name].pk if name != "recorded" else calls[name].session.pk) for name in calls if name != "bobs"}
    assert set(listed_ids(page)) == mine
    page.check("input[name=status][value=busy]")
    page.click("button:has-text('Apply filters')")
    page.wait_for_url(re.compile(r"status=busy"))
    assert listed_ids(page) == [str(calls["busy"].pk)]
    assert page.is_checked("input[name=status][value=busy]")
    console.assert_clean()


def test_it_searches_transcripts_and_highlights_the_match(calls, signed_in_page, console):
    page = signed_in_page(calls["recorded"].session.owner)
    page.goto("/calls/")
    page.fill("input[name=q]", "warranty")
    page.click(".filters-search button[type=submit]")
    page.wait_for_url(re.compile(r"q=warranty"))
    assert listed_ids(page) == [str(calls["recorded"].session.pk)]
    marks = page.locator(".calls-table mark")
    assert marks.count() >= 1
    assert marks.first.inner_text().lower() == "warranty"
    screenshot(page, "list-search")
    console.assert_clean()


def test_it_opens_plays_and_seeks_a_call_from_its_transcript(calls, signed_in_page, console, live_server):
    call = calls["recorded"]
    page = signed_in_page(call.session.owner)
    page.goto("/calls/?q=warranty")
    # The date is the row's link (its box also holds a visually hidden label, which Playwright aims beside).
    page.click(".calls-table tbody a.row-link time")
    page.wait_for_url(f"{live_server.url}/calls/{call.session.pk}/")
    assert "+14155550123" in visible_text(page)
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    duration = player(page, "p.duration")
    assert abs(duration - call.segments[-1]["end_ms"] / 1000) < 1.5
    assert page.locator("#waveform").is_visible()

    # Play: the position advances.
    page.evaluate("() => document.querySelector('#player').play()")
    page.wait_for_function("() => document.querySelector('#player').currentTime > 0.5", timeout=10_000)
    assert player(page, "p.paused") is False

    # Click the third line of the transcript: the audio jumps there and the line is marked current.
    target = call.segments[2]
    segments = page.locator(".transcript-segment[data-start-ms]")
    assert segments.count() == len(call.segments)
    segments.nth(2).click()
    position = player(page, "p.currentTime")
    assert target["start_ms"] / 1000 - 0.05 <= position <= target["start_ms"] / 1000 + 1.0
    page.wait_for_selector(".transcript-segment.is-current")
    current = page.locator(".transcript-segment.is-current")
    assert current.count() == 1
    assert current.get_attribute("data-start-ms") == str(target["start_ms"])
    assert target["text"] in current.inner_text()

    # An earlier line: the audio goes back.
    segments.nth(0).click()
    assert player(page, "p.currentTime") < target["start_ms"] / 1000
    page.wait_for_function(
        "ms => document.querySelector('.transcript-segment.is-current')?.dataset.startMs === String(ms)",
        arg=call.segments[0]["start_ms"],
    )
    page.evaluate("() => document.querySelector('#player').pause()")
    screenshot(page, "detail-playing")
    console.assert_clean()


def test_it_adds_a_note(calls, signed_in_page, console, live_server):
    session = calls["recorded"].session
    page = signed_in_page(session.owner)
    page.goto(f"/calls/{session.pk}/")
    page.fill("#note-form textarea[name=body]", "Customer wants the contract by Friday.")
    page.click("#note-form button[type=submit]")
    page.wait_for_selector(".note")
    assert page.url.startswith(f"{live_server.url}/calls/{session.pk}/")
    assert "Customer wants the contract by Friday." in page.locator(".note").last.inner_text()
    assert Note.objects.get(session=session).body == "Customer wants the contract by Friday."
    console.assert_clean()


def test_it_refuses_an_empty_note_in_place(calls, signed_in_page, console, live_server):
    session = calls["recorded"].session
    # The form comes back with its error and a 400, which Chromium logs.
    console.expected_status_urls.add(f"{live_server.url}/calls/{session.pk}/notes/")
    page = signed_in_page(session.owner)
    page.goto(f"/calls/{session.pk}/")
    page.click("#note-form button[type=submit]")
    page.wait_for_load_state()
    assert "A note needs some text." in page.locator("#note-form").inner_text()
    assert not Note.objects.filter(session=session).exists()
    console.assert_clean()


def test_it_shows_a_dual_channel_calls_talk_time(calls, signed_in_page, console):
    page = signed_in_page(calls["dual"].owner)
    page.goto(f"/calls/{calls['dual'].pk}/")
    assert page.locator("#talk-time").is_visible()
    assert "Agent" in page.locator("#talk-time").inner_text()
    console.assert_clean()


def test_it_fits_the_list_on_a_phone(calls, signed_in_page, console):
    page = signed_in_page(calls["recorded"].session.owner)
    page.set_viewport_size(PHONE)
    page.goto("/calls/")
    # Nothing wider than the screen: no sideways scrolling of the whole page.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    console.assert_clean()
