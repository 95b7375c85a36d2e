"""Screenshots of the pages as ``make run`` shows them, on the demo data: for people to look at.

Saved under test-artifacts/screenshots/: the dashboard, the list (desktop and phone), a call's detail page, the
triage and live pages. (404.png comes from test_not_found, list-search.png and detail-playing.png from the
flows in test_calls.) Every page is also checked for console errors and Content-Security-Policy violations.
"""

from __future__ import annotations

import pytest

from calls.demo import demo_session_id, seed_calls
from crm.demo import seed_people
from tests.browser.conftest import DESKTOP, PHONE, screenshot, sign_in, visible_text

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(recordings_root):
    people = seed_people(password="demo-password")
    result = seed_calls(team=people.team)
    assert result.recordings == 8
    return people


def test_it_takes_screenshots_of_the_demo_as_a_manager(demo, page, console):
    sign_in(page, "carol", "demo-password")
    assert "Welcome, Carol" in visible_text(page)
    screenshot(page, "dashboard")

    page.goto("/calls/")
    assert page.locator(".calls-table tbody tr").count() >= 20
    screenshot(page, "list")

    # The dual-channel demo call: player, waveform, talk time per speaker, transcript, timeline and notes.
    page.goto(f"/calls/{demo_session_id('call', 8)}/")
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    assert page.locator("#talk-time").is_visible()
    assert page.locator(".note").count() == 2
    screenshot(page, "detail")

    page.goto("/calls/triage/")
    assert page.locator(".triage-row").count() == 2
    screenshot(page, "triage")

    page.goto("/calls/live/")
    assert page.locator(".live-row").count() == 3
    assert page.locator(".live-row.is-stale").count() == 1
    screenshot(page, "live")
    console.assert_clean()


def test_it_takes_a_screenshot_of_the_list_on_a_phone(demo, page, console):
    page.set_viewport_size(PHONE)
    sign_in(page, "alice", "demo-password")
    page.goto("/calls/")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "list-phone")
    page.set_viewport_size(DESKTOP)
    console.assert_clean()
