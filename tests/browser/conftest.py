"""Browser tests: Debian's chromium driven by Playwright's sync API against pytest-django's ``live_server``.

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (``executable_path``). Without it every
test here is skipped with the reason, which CI (CALLBOOK_REQUIRE_ALL=1) turns into a failure.

Playwright's sync API runs an event loop in the test thread, so the Django code in that thread (fixtures writing
rows) needs ``DJANGO_ALLOW_ASYNC_UNSAFE=true``: the ``browser`` fixture sets it for as long as Playwright runs
(pyproject's pytest env may set it too). The live server runs in another thread of this process and only sees
committed rows: the tests use ``django_db(transaction=True)``.

Screenshots land in ``test-artifacts/screenshots/<name>.png`` (gitignored) for people to look at.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.utils import timezone

from calls.ingest import session_ingest
from calls.models import CallSession, Recording
from crm.models import User
from tests.audio import SAMPLE_RATE, dual_channel_wav, read_wav, speech_wav, write_wav
from tests.conftest import ROOT
from tests.factories import TEST_PASSWORD, CallSessionFactory

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The play test starts playback from script, as a click on the page's own Play button would.
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One chromium for all the browser tests, closed once they are done.

    Package scope rather than session scope: while Playwright's sync API is started, its event loop counts as
    running in this thread, and Django refuses ORM calls from a thread with a running loop unless
    DJANGO_ALLOW_ASYNC_UNSAFE is set. Stopping Playwright after this package, and setting the variable only
    while it runs, keeps every other test (and the subprocesses they start, such as ``check --deploy``, which
    rejects the variable) in Django's normal, checked mode.
    """
    if not CHROMIUM.exists():
        pytest.skip("needs chromium (apt install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs playwright (pip install -r requirements-dev.lock)")
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
            patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                yield launched
            finally:
                launched.close()


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # Signing in is what is tested, not the hasher's cost: each PBKDF2 check would take a good fraction of a second.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Pages and what their console said -------------------------------------------------------------------------


@dataclass
class ConsoleLog:
    """Console errors, uncaught exceptions and Content-Security-Policy violations of one browser context."""

    errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    # Pages expected to answer 4xx: Chromium logs "Failed to load resource" for the document itself.
    expected_status_urls: set[str] = field(default_factory=set)

    def on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text:
            self.csp.append(text)
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if text.startswith("Failed to load resource") and url.split("#")[0] in self.expected_status_urls:
            return
        self.errors.append(f"{text} ({url})")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")

    def assert_clean(self) -> None:
        assert self.csp == [], "Content-Security-Policy violations"
        assert self.errors == [], "console errors"


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def context(browser: Browser, live_server: Any, console: ConsoleLog) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport=DESKTOP, base_url=live_server.url, locale="en-US", timezone_id="UTC")
    made.set_default_timeout(10_000)
    made.on("console", console.on_console)
    made.on("weberror", lambda web_error: console.on_page_error(web_error.error))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, username: str, password: str = TEST_PASSWORD) -> Page:
    """Sign in through the real form, as a person would; lands on the page after it (the dashboard)."""
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


@pytest.fixture
def signed_in_page(page: Page) -> Callable[..., Page]:
    """``signed_in_page(user)``: the page, signed in as ``user`` through the login form."""

    def make(user: User, password: str = TEST_PASSWORD) -> Page:
        sign_in(page, user.username, password)
        assert "/accounts/login/" not in page.url, f"could not sign in as {user.username}"
        return page

    return make


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- Calls with real audio -----------------------------------------------------------------------------------

# (speaker, text) of the recorded call; "warranty" is the word the list test searches for.
DIALOGUE = (
    ("Agent", "Hello, this is Alice from Brightline Solar, calling about your quote."),
    ("Caller", "Thanks for calling. The quote looks fine, but what about the warranty?"),
    ("Agent", "The panels have twenty five years of warranty, and the inverter ten."),
    ("Caller", "Great. Please send me the contract by email."),
)
GAP_S = 0.6


@dataclass(frozen=True)
class RecordedCall:
    session: CallSession
    segments: list[dict[str, Any]]  # as in transcript.json: speaker, start_ms, end_ms, text


def _spoken_dialogue(folder: Path) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The dialogue spoken line by line (espeak-ng), with GAP_S of silence between lines, and each line's times."""
    pieces: list[np.ndarray] = [np.zeros(round(0.3 * SAMPLE_RATE), dtype=np.int16)]
    segments = []
    cursor = len(pieces[0])
    for index, (speaker, text) in enumerate(DIALOGUE):
        voice = "en-us+f3" if speaker == "Agent" else "en-us+m3"
        samples = read_wav(speech_wav(folder / f"{index}.wav", text, voice=voice))[0]
        segments.append(
            {
                "speaker": speaker,
                "start_ms": cursor * 1000 // SAMPLE_RATE,
                "end_ms": (cursor + len(samples)) * 1000 // SAMPLE_RATE,
                "text": text,
            }
        )
        gap = np.zeros(round(GAP_S * SAMPLE_RATE), dtype=np.int16)
        pieces += [samples, gap]
        cursor += len(samples) + len(gap)
    return np.concatenate(pieces), segments


def recorded_call(owner: User, recordings_root: Path, **fields: Any) -> RecordedCall:
    """A completed call of ``owner`` with a real spoken recording and a timed transcript, ingested: available."""
    started = timezone.now() - timedelta(hours=2)
    session = CallSessionFactory.create(
        owner=owner,
        status=CallSession.Status.COMPLETED,
        direction=CallSession.Direction.OUTBOUND,
        started_at=started,
        answered_at=started + timedelta(seconds=5),
        ended_at=started + timedelta(seconds=30),
        recording_status=CallSession.RecordingStatus.PENDING,
        **fields,
    )
    folder = recordings_root / "sessions" / str(session.pk)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        samples, segments = _spoken_dialogue(Path(tmp))
    write_wav(folder / "recording.wav", samples[np.newaxis, :])
    (folder / "transcript.json").write_text(json.dumps({"language": "en", "segments": segments}))
    Recording.objects.create(session=session, file=f"sessions/{session.pk}/recording.wav")
    assert session_ingest(session_id=session.pk) == Recording.Status.AVAILABLE
    session.refresh_from_db()
    return RecordedCall(session=session, segments=segments)


def dual_channel_call(owner: User, recordings_root: Path, **fields: Any) -> CallSession:
    """A completed call with a dual-channel recording (agent left, caller right) and its transcript as VTT."""
    session = CallSessionFactory.create(
        owner=owner,
        status=CallSession.Status.COMPLETED,
        started_at=timezone.now() - timedelta(days=1),
        recording_status=CallSession.RecordingStatus.PENDING,
        **fields,
    )
    folder = recordings_root / "sessions" / str(session.pk)
    folder.mkdir(parents=True)
    dual_channel_wav(folder / "recording.wav", "Your order ships tomorrow.", "Thank you, goodbye.")
    (folder / "transcript.vtt").write_text(
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.800\n<v Agent>Your order ships tomorrow.\n\n"
        "00:00:02.300 --> 00:00:03.800\n<v Caller>Thank you, goodbye.\n"
    )
    Recording.objects.create(session=session, file=f"sessions/{session.pk}/recording.wav")
    assert session_ingest(session_id=session.pk) == Recording.Status.AVAILABLE
    session.refresh_from_db()
    return session


def random_session_id() -> str:
    return str(uuid.uuid4())


def visible_text(page: Page) -> str:
    return re.sub(r"\s+", " ", page.inner_text("main"))
