"""Signing in through the real form, and the dashboard it lands on."""

from __future__ import annotations

import pytest

from tests.browser.conftest import recorded_call, sign_in, visible_text

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_refuses_a_wrong_password_in_place(page, alice, console, live_server):
    sign_in(page, "alice", "not-her-password")
    assert page.url == f"{live_server.url}/accounts/login/"
    error = page.locator(".form-error[role=alert]")
    assert "correct username and password" in error.inner_text()
    # What was typed stays, so only the password needs typing again.
    assert page.input_value("#id_username") == "alice"
    console.assert_clean()


def test_it_lands_on_the_dashboard_after_signing_in(page, alice, recordings_root, console, live_server):
    recorded_call(alice, recordings_root)
    sign_in(page, "alice")
    assert page.url == f"{live_server.url}/"
    assert "Welcome, Alice" in visible_text(page)
    assert page.locator(".mainnav a[aria-current=page]").inner_text() == "Dashboard"
    # Agents get no manager pages in the navigation.
    assert page.locator(".mainnav a", has_text="Triage").count() == 0
    console.assert_clean()


def test_it_sends_a_visitor_to_sign_in_and_back_to_the_page_they_asked_for(page, alice, console, live_server):
    page.goto("/calls/")
    assert page.url == f"{live_server.url}/accounts/login/?next=/calls/"
    page.fill("#id_username", "alice")
    page.fill("#id_password", "correct-horse-battery-staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/calls/")
    console.assert_clean()
