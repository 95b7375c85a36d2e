"""A missing call session answers a real, helpful 404 page, never a crash or a dead end."""

from __future__ import annotations

import re

import pytest

from calls.models import CallSession
from tests.audio import silence_wav
from tests.browser.conftest import random_session_id, screenshot, visible_text
from tests.factories import CallSessionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_answers_a_missing_session_with_the_way_forward(alice, signed_in_page, console, live_server):
    page = signed_in_page(alice)
    session_id = random_session_id()
    url = f"{live_server.url}/calls/{session_id}/"
    console.expected_status_urls.add(url)
    response = page.goto(url)
    assert response is not None
    assert response.status == 404
    text = visible_text(page)
    assert "Call session not found" in text
    assert session_id in text
    # The way forward: back to the list, or a search (by external id, number or words).
    assert page.locator("main a[href='/calls/']").count() >= 1
    search = page.locator("main form[role=search] input[name=q]")
    search.fill("ext-404")
    search.press("Enter")
    page.wait_for_url(re.compile(r"/calls/\?q=ext-404"))
    console.assert_clean()


@pytest.mark.parametrize("bad_id", ["not-a-session", "12345", "3f2b9c1e-8d4a-4c6f-9b2e-7a1d5c3e9f0Z"])
def test_it_answers_a_malformed_id_with_the_same_page(alice, signed_in_page, console, live_server, bad_id):
    page = signed_in_page(alice)
    url = f"{live_server.url}/calls/{bad_id}/"
    console.expected_status_urls.add(url)
    response = page.goto(url)
    assert response is not None
    assert response.status == 404
    text = visible_text(page)
    assert "Call session not found" in text
    assert "not a valid session id" in text
    console.assert_clean()


def test_it_answers_another_agents_session_like_a_missing_one(alice, bob, signed_in_page, console, live_server):
    bobs = CallSessionFactory.create(owner=bob)
    page = signed_in_page(alice)
    url = f"{live_server.url}/calls/{bobs.pk}/"
    console.expected_status_urls.add(url)
    response = page.goto(url)
    assert response is not None
    assert response.status == 404
    assert "Call session not found" in visible_text(page)
    assert bobs.to_number not in page.content()
    console.assert_clean()


def test_it_lets_a_manager_adopt_a_recording_that_has_no_session(
    carol, recordings_root, signed_in_page, console, live_server
):
    session_id = random_session_id()
    folder = recordings_root / "sessions" / session_id
    folder.mkdir(parents=True)
    silence_wav(folder / "recording.wav", 2.0)
    page = signed_in_page(carol)
    url = f"{live_server.url}/calls/{session_id}/"
    console.expected_status_urls.add(url)
    page.goto(url)
    assert "A recording for this id is waiting in storage" in visible_text(page)
    page.click("#adopt-button")
    page.wait_for_url(url)
    assert "Recording adopted" in visible_text(page)
    assert CallSession.objects.filter(pk=session_id, origin=CallSession.Origin.ADOPTED).exists()
    console.assert_clean()


def test_it_shows_the_plain_404_page_for_an_unknown_address(alice, signed_in_page, console, live_server):
    page = signed_in_page(alice)
    url = f"{live_server.url}/no/such/page/"
    console.expected_status_urls.add(url)
    response = page.goto(url)
    assert response is not None
    assert response.status == 404
    assert "Page not found" in visible_text(page)
    console.assert_clean()


def test_it_takes_a_screenshot_of_the_404_page(alice, signed_in_page, console, live_server):
    page = signed_in_page(alice)
    url = f"{live_server.url}/calls/{random_session_id()}/"
    console.expected_status_urls.add(url)
    page.goto(url)
    screenshot(page, "404")
    console.assert_clean()
