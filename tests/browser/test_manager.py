"""The manager pages in a browser: triage an adopted recording by assigning it, and watch the live calls."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from calls.adoption import orphan_adopt
from calls.ingest import session_ingest
from calls.models import CallSession
from tests.audio import silence_wav
from tests.browser.conftest import random_session_id, visible_text
from tests.factories import CallSessionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def orphan(recordings_root) -> CallSession:
    """A recording that arrived without a session, adopted by the sweep: nobody owns it."""
    session_id = random_session_id()
    folder = recordings_root / "sessions" / session_id
    folder.mkdir(parents=True)
    silence_wav(folder / "recording.wav", 3.0)
    (folder / "meta.json").write_text('{"owner": "zoe", "from": "+14155550111"}')
    adopted = orphan_adopt(session_id=uuid.UUID(session_id), requester=None)
    assert adopted is not None
    # What the worker does next: the recording becomes playable.
    assert session_ingest(session_id=adopted.pk) == "available"
    adopted.refresh_from_db()
    return adopted


def test_it_assigns_an_adopted_recording_from_the_triage_list(carol, alice, orphan, signed_in_page, console):
    page = signed_in_page(carol)
    page.click(".mainnav a:has-text('Triage')")
    page.wait_for_url("**/calls/triage/")
    row = page.locator(f"#triage-{orphan.pk}")
    assert "+14155550111" in row.inner_text()
    assert "'zoe' is not an active user" in row.inner_text()
    # Listen before deciding: the row's player streams the recording.
    row.locator("audio.triage-audio").evaluate("audio => audio.play()")
    page.wait_for_function(
        "id => document.querySelector(`#triage-${id} audio`).currentTime > 0.2", arg=str(orphan.pk), timeout=10_000
    )
    row.locator("audio.triage-audio").evaluate("audio => audio.pause()")
    row.locator("select[name=owner]").select_option("alice")
    row.locator("button[type=submit]").click()
    page.wait_for_url("**/calls/triage/")
    assert f"Call {str(orphan.pk)[:8]} assigned to Alice" in visible_text(page)
    assert "Nothing to triage" in visible_text(page)
    orphan.refresh_from_db()
    assert orphan.owner == alice
    console.assert_clean()


def test_it_keeps_agents_out_of_the_manager_pages(alice, signed_in_page, console, live_server):
    page = signed_in_page(alice)
    assert page.locator(".mainnav a:has-text('Triage')").count() == 0
    for path in ("/calls/triage/", "/calls/live/"):
        console.expected_status_urls.add(f"{live_server.url}{path}")
        response = page.goto(path)
        assert response is not None
        assert response.status == 404
    console.assert_clean()


def test_it_lists_live_calls_and_refreshes_itself(carol, alice, signed_in_page, console):
    talking = CallSessionFactory.create(owner=alice, status=CallSession.Status.IN_PROGRESS, to_number="+14155550142")
    CallSession.objects.filter(pk=talking.pk).update(
        started_at=timezone.now() - timedelta(minutes=3), last_event_at=timezone.now() - timedelta(minutes=12)
    )
    page = signed_in_page(carol)
    page.click(".mainnav a:has-text('Live')")
    page.wait_for_url("**/calls/live/")
    row = page.locator(".live-row")
    assert row.count() == 1
    assert "+14155550142" in row.inner_text()
    assert "Stale" in row.inner_text()
    assert page.locator("meta[http-equiv=refresh]").get_attribute("content") == "10"
    # It refreshes on its own: a call that ends meanwhile leaves the list.
    CallSession.objects.filter(pk=talking.pk).update(status=CallSession.Status.COMPLETED)
    page.wait_for_selector("text=No live calls", timeout=15_000)
    console.assert_clean()
