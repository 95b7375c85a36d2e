"""The call detail page family: ``/calls/<id>/`` with its audio route, notes, the 404 page and orphan adoption.

The cast (tests/conftest.py): alice owns the calls under test; bob is her teammate (404, like a missing id);
carol manages their team (sees them, adopts orphans); charlie and dave are outsiders; admin sees everything.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import wave
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calls import storage as calls_storage
from calls.ingest import session_ingest
from calls.models import CallEvent, CallSession, Note, Recording, Transcript, TranscriptSegment
from calls.views import detail as detail_views
from campaigns.models import Campaign, Contact
from crm.models import User
from tests.audio import dual_channel_wav
from tests.factories import CallSessionFactory, RecordingFactory

pytestmark = pytest.mark.django_db

NOT_FOUND = "Call session not found"


# --- Helpers -----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # The cast is created with real passwords; what is tested here is not the hasher's cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A real mono 16-bit PCM WAV (a ramp, so every byte range differs from the next)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes((i * 7) % 256 for i in range(int(seconds * rate) * 2)))
    return buffer.getvalue()


def detail_url(session_id: object) -> str:
    return f"/calls/{session_id}/"


def audio_url(session_id: object) -> str:
    return f"/calls/{session_id}/audio"


def html(response: Any) -> str:
    content: bytes = response.content
    return content.decode()


def make_call(
    owner: User,
    *,
    recording: str | None = Recording.Status.AVAILABLE,
    items: int = 1,
    transcript: bool = True,
    **fields: Any,
) -> CallSession:
    """A completed call of ``owner`` with ``items`` events, transcript segments and notes."""
    started = timezone.now() - timedelta(hours=1)
    session = CallSessionFactory.create(
        owner=owner,
        status=CallSession.Status.COMPLETED,
        started_at=started,
        answered_at=started + timedelta(seconds=5),
        ended_at=started + timedelta(seconds=65),
        duration_ms=60_000,
        end_reason="caller hung up",
        recording_status=CallSession.RecordingStatus.AVAILABLE if recording else CallSession.RecordingStatus.NONE,
        **fields,
    )
    if recording is not None:
        RecordingFactory.create(
            session=session,
            status=recording,
            duration_ms=60_000,
            waveform=[0.1, 0.5, 0.9, 0.3],
            ingested_at=timezone.now() - timedelta(hours=2),
        )
    if transcript:
        text = Transcript.objects.create(session=session, text="hello")
        TranscriptSegment.objects.bulk_create(
            TranscriptSegment(
                transcript=text,
                position=i,
                speaker="agent" if i % 2 == 0 else "caller",
                start_ms=i * 2000,
                end_ms=i * 2000 + 1500,
                text=f"line {i}",
            )
            for i in range(items)
        )
    CallEvent.objects.bulk_create(
        CallEvent(
            session=session,
            type="dtmf",
            occurred_at=started + timedelta(seconds=i),
            data={"digits": str(i)},
        )
        for i in range(items)
    )
    Note.objects.bulk_create(Note(session=session, author=owner, body=f"note {i}") for i in range(items))
    return session


def write_audio(root: Path, session_id: uuid.UUID, data: bytes | None = None) -> bytes:
    folder = root / "sessions" / str(session_id)
    folder.mkdir(parents=True, exist_ok=True)
    payload = data if data is not None else wav_bytes()
    (folder / "recording.wav").write_bytes(payload)
    return payload


def write_orphan(root: Path, meta: dict[str, Any] | None = None) -> uuid.UUID:
    session_id = uuid.uuid4()
    write_audio(root, session_id)
    if meta is not None:
        (root / "sessions" / str(session_id) / "meta.json").write_text(json.dumps(meta))
    return session_id


@pytest.fixture
def storage_down(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The recordings storage raises on any use; the list counts how often anything asked for it."""
    calls: list[int] = []

    def unavailable() -> Any:
        calls.append(1)
        raise OSError("recordings storage is down")

    monkeypatch.setattr(calls_storage, "recordings_storage", unavailable)
    return calls


class _Markup(HTMLParser):
    """Collects what the CSP rules are about: script tags, inline styles, event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = False
        self.style_attributes = 0
        self.style_elements = 0
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag == "style":
            self.style_elements += 1
        if "style" in attributes:
            self.style_attributes += 1
        self.handlers += [name for name in attributes if name.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def assert_csp_clean(response: Any) -> None:
    policy = response.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    markup = _Markup()
    markup.feed(html(response))
    assert not markup.inline_script
    assert all(script.get("src") for script in markup.scripts)
    assert markup.style_attributes == 0
    assert markup.style_elements == 0
    assert markup.handlers == []


def csrf_token_from(response: Any) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html(response))
    assert match is not None
    return match.group(1)


# --- Access ------------------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(alice: User) -> None:
    session = make_call(alice)
    client = Client()
    for url in (detail_url(session.pk), audio_url(session.pk)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    for url in (f"/calls/{session.pk}/notes/", f"/calls/{session.pk}/adopt/"):
        assert client.post(url, {"body": "x"}).status_code == 302
    assert not Note.objects.filter(body="x").exists()


@pytest.mark.parametrize("viewer", ["alice", "carol", "admin_user"])
def test_owner_manager_and_admin_see_the_call(
    viewer: str, request: pytest.FixtureRequest, alice: User, client_for: Any
) -> None:
    session = make_call(alice)
    response = client_for(request.getfixturevalue(viewer)).get(detail_url(session.pk))
    assert response.status_code == 200
    page = html(response)
    assert str(session.pk) in page
    assert "Alice" in page  # owner
    assert "Sales" in page  # team
    assert "+14155550100" in page
    assert "caller hung up" in page
    assert 'id="player"' in page


@pytest.mark.parametrize("viewer", ["bob", "charlie", "dave"])
def test_everyone_else_gets_the_not_found_page(
    viewer: str, request: pytest.FixtureRequest, alice: User, client_for: Any
) -> None:
    session = make_call(alice)
    client = client_for(request.getfixturevalue(viewer))
    response = client.get(detail_url(session.pk))
    assert response.status_code == 404
    assert NOT_FOUND in html(response)
    assert "line 0" not in html(response)
    # Their audio, notes and state are as closed as the page.
    assert client.get(audio_url(session.pk)).status_code == 404
    assert client.get(detail_url(session.pk) + "?progress=1").status_code == 404
    assert client.post(f"/calls/{session.pk}/notes/", {"body": "sneaky"}).status_code == 404
    assert not Note.objects.filter(body="sneaky").exists()


def test_archived_call_is_not_found_even_for_its_owner(alice: User, client_for: Any) -> None:
    session = make_call(alice, archived_at=timezone.now())
    assert client_for(alice).get(detail_url(session.pk)).status_code == 404


# --- Header ------------------------------------------------------------------------------------------------


def test_header_shows_who_when_outcome_and_context(alice: User, sales_team: Any, client_for: Any) -> None:
    campaign = Campaign.objects.create(name="Spring renewals", team=sales_team)
    contact = Contact.objects.create(team=sales_team, name="Dana Prospect", phone="+14155550123")
    session = make_call(
        alice, campaign=campaign, contact=contact, external_id="CA-777", origin=CallSession.Origin.ADOPTED
    )
    page = html(client_for(alice).get(detail_url(session.pk)))
    for text in (
        "Spring renewals",
        "Dana Prospect",
        "CA-777",
        "pipecat-prod",
        "adopted",
        "Completed",
        "1:00",
        "Inbound",
    ):
        assert text in page
    assert page.count("<time datetime=") >= 3  # started, answered, ended


# --- Audio route -------------------------------------------------------------------------------------------


def test_audio_streams_whole_file_and_ranges(alice: User, client_for: Any, recordings_root: Path) -> None:
    session = make_call(alice)
    payload = write_audio(recordings_root, session.pk)
    client = client_for(alice)

    full = client.get(audio_url(session.pk))
    assert full.status_code == 200
    assert full["Accept-Ranges"] == "bytes"
    assert full["Content-Type"] == "audio/wav"
    assert int(full["Content-Length"]) == len(payload)
    assert b"".join(full.streaming_content) == payload

    part = client.get(audio_url(session.pk), HTTP_RANGE="bytes=0-99")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 0-99/{len(payload)}"
    assert b"".join(part.streaming_content) == payload[:100]

    middle = client.get(audio_url(session.pk), HTTP_RANGE="bytes=1000-")
    assert middle.status_code == 206
    assert b"".join(middle.streaming_content) == payload[1000:]

    head = client.head(audio_url(session.pk))
    assert head.status_code == 200
    assert head["Content-Length"] == str(len(payload))


def test_audio_for_manager_and_admin(
    alice: User, carol: User, admin_user: User, client_for: Any, recordings_root: Path
) -> None:
    session = make_call(alice)
    payload = write_audio(recordings_root, session.pk)
    for viewer in (carol, admin_user):
        response = client_for(viewer).get(audio_url(session.pk), HTTP_RANGE="bytes=0-9")
        assert response.status_code == 206
        assert response["Content-Range"] == f"bytes 0-9/{len(payload)}"
        assert b"".join(response.streaming_content) == payload[:10]


def test_audio_missing_file_is_a_clean_404(alice: User, client_for: Any) -> None:
    session = make_call(alice)  # a row says available, the storage has nothing
    response = client_for(alice).get(audio_url(session.pk))
    assert response.status_code == 404
    assert "Recording file missing" in html(response)
    assert_csp_clean(response)


@pytest.mark.parametrize("status", ["pending", "processing", "failed", "deleted"])
def test_audio_of_an_unplayable_recording_is_a_404(
    status: str, alice: User, client_for: Any, recordings_root: Path
) -> None:
    session = make_call(alice, recording=status)
    write_audio(recordings_root, session.pk)
    response = client_for(alice).get(audio_url(session.pk))
    assert response.status_code == 404
    assert "Recording not found" in html(response)


def test_audio_when_storage_is_down_is_a_503_page(alice: User, client_for: Any, storage_down: list[int]) -> None:
    session = make_call(alice)
    response = client_for(alice).get(audio_url(session.pk))
    assert response.status_code == 503
    assert "Recordings are unavailable right now" in html(response)
    # The page itself never touches the storage.
    assert client_for(alice).get(detail_url(session.pk)).status_code == 200


def test_audio_on_s3_redirects_to_a_signed_url(alice: User, client_for: Any, settings: Any) -> None:
    pytest.importorskip("storages.backends.s3")
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "callbook-test",
                "access_key": "AKIAEXAMPLE",
                "secret_key": "secret",
                "region_name": "us-east-1",
                "querystring_expire": 300,
            },
        },
    }
    session = make_call(alice)
    response = client_for(alice).get(audio_url(session.pk))
    assert response.status_code == 302
    assert "callbook-test" in response["Location"]
    assert "Signature" in response["Location"] or "X-Amz-Signature" in response["Location"]


# --- Recording and transcript states -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "explanation"),
    [
        ("pending", "this page refreshes itself"),
        ("processing", "this page refreshes itself"),
        ("failed", "python manage.py ingest --session"),
        ("deleted", "deleted</strong> by the retention policy"),
    ],
)
def test_recording_states_explain_themselves(status: str, explanation: str, alice: User, client_for: Any) -> None:
    session = make_call(alice, recording=status, transcript=False)
    if status == "failed":
        Recording.objects.filter(session=session).update(failure_reason="The recording is empty (0 bytes).")
    response = client_for(alice).get(detail_url(session.pk))
    assert response.status_code == 200
    page = html(response)
    assert explanation in page
    assert 'id="player"' not in page
    if status == "failed":
        assert "The recording is empty (0 bytes)." in page
        assert f"ingest --session {session.pk}" in page
    refreshing = status in ("pending", "processing")
    assert ('http-equiv="refresh"' in page) is refreshing
    assert ("data-progress-url=" in page) is refreshing
    if refreshing:
        assert "the transcript comes once the recording is processed" in page


def test_no_recording_yet(alice: User, client_for: Any) -> None:
    session = make_call(alice, recording=None, transcript=False)
    page = html(client_for(alice).get(detail_url(session.pk)))
    assert "No recording has arrived for this call" in page
    assert f"sessions/{session.pk}/" in page
    assert "No transcript for this call" in page
    assert "data-progress-url=" not in page


def test_not_recorded(alice: User, client_for: Any) -> None:
    session = make_call(alice, recording=None, transcript=False)
    CallSession.objects.filter(pk=session.pk).update(recording_status=CallSession.RecordingStatus.ABSENT)
    assert "This call was not recorded" in html(client_for(alice).get(detail_url(session.pk)))


def test_transcript_being_produced_refreshes_only_while_it_is(alice: User, client_for: Any, settings: Any) -> None:
    settings.TRANSCRIPTION_BACKEND = "pocketsphinx"
    session = make_call(alice, transcript=False)
    Recording.objects.filter(session=session).update(ingested_at=timezone.now())
    client = client_for(alice)
    page = html(client.get(detail_url(session.pk)))
    assert "Transcript being produced" in page
    assert 'id="player"' in page  # listening meanwhile
    assert "data-progress-url=" in page

    # Speech-to-text gave up: no transcript, and nothing to wait for.
    CallEvent.objects.create(session=session, type="transcript_failed", occurred_at=timezone.now(), data={})
    page = html(client.get(detail_url(session.pk)))
    assert "No transcript for this call" in page
    assert "data-progress-url=" not in page


def test_no_transcript_without_speech_to_text(alice: User, client_for: Any, settings: Any) -> None:
    settings.TRANSCRIPTION_BACKEND = "none"
    session = make_call(alice, transcript=False)
    Recording.objects.filter(session=session).update(ingested_at=timezone.now())
    page = html(client_for(alice).get(detail_url(session.pk)))
    assert "No transcript for this call" in page
    assert "data-progress-url=" not in page


def test_transcript_without_segments_shows_its_text(alice: User, client_for: Any) -> None:
    session = make_call(alice, transcript=False)
    Transcript.objects.create(session=session, text="Agent: hi there\nCaller: hello")
    page = html(client_for(alice).get(detail_url(session.pk)))
    assert "hi there" in page
    assert "no timed lines" in page


def test_progress_poll_changes_when_the_recording_is_ready(alice: User, bob: User, client_for: Any) -> None:
    session = make_call(alice, recording=Recording.Status.PROCESSING, transcript=False)
    client = client_for(alice)
    page = html(client.get(detail_url(session.pk)))
    token = re.search(r'data-progress-token="([^"]+)"', page)
    assert token is not None
    first = client.get(detail_url(session.pk) + "?progress=1")
    assert first.status_code == 200
    assert first["Cache-Control"] == "no-store"
    assert first.json() == {"token": token.group(1)}
    Recording.objects.filter(session=session).update(status=Recording.Status.AVAILABLE)
    assert client.get(detail_url(session.pk) + "?progress=1").json()["token"] != token.group(1)
    assert client_for(bob).get(detail_url(session.pk) + "?progress=1").status_code == 404


# --- Transcript, waveform, talk time -----------------------------------------------------------------------


def test_transcript_segments_carry_their_start(alice: User, client_for: Any) -> None:
    session = make_call(alice, items=3)
    TranscriptSegment.objects.create(
        transcript=session.transcript, position=3, speaker="caller", start_ms=None, end_ms=None, text="untimed words"
    )
    page = html(client_for(alice).get(detail_url(session.pk)))
    starts = re.findall(r'<button type="button" class="transcript-segment [^"]*" data-start-ms="(\d+)"', page)
    assert starts == ["0", "2000", "4000"]
    assert 'data-end-ms="1500"' in page
    # Speaker-labelled; the untimed line is shown, not clickable.
    assert "agent</span>" in page
    assert "caller</span>" in page
    untimed = re.search(r'<(\w+) class="transcript-segment is-static[^"]*"[^>]*>', page)
    assert untimed is not None
    assert untimed.group(1) == "div"
    assert "data-start-ms" not in untimed.group(0)
    assert "untimed words" in page


def test_segments_are_not_buttons_without_playable_audio(alice: User, client_for: Any) -> None:
    session = make_call(alice, recording=Recording.Status.FAILED, items=2)
    page = html(client_for(alice).get(detail_url(session.pk)))
    assert "line 1" in page
    assert '<button type="button" class="transcript-segment' not in page


def test_waveform_is_inline_svg_with_a_progress_overlay(alice: User, client_for: Any) -> None:
    session = make_call(alice)
    response = client_for(alice).get(detail_url(session.pk))
    page = html(response)
    assert 'id="waveform"' in page
    assert '<svg class="waveform-svg" viewBox="0 0 4 100"' in page
    assert 'id="waveform-progress"' in page
    assert 'clip-path="url(#waveform-clip)"' in page
    assert_csp_clean(response)


def test_waveform_tolerates_junk_and_caps_buckets(alice: User, client_for: Any) -> None:
    session = make_call(alice)
    Recording.objects.filter(session=session).update(waveform=["x", None, 7, -1, *([0.5] * 1000)])
    page = html(client_for(alice).get(detail_url(session.pk)))
    assert 'viewBox="0 0 600 100"' in page


def test_dual_channel_talk_time(alice: User, client_for: Any) -> None:
    session = make_call(alice)
    Recording.objects.filter(session=session).update(channels=2, talk_ms=[45_000, 15_000])
    page = html(client_for(alice).get(detail_url(session.pk)))
    assert 'id="talk-time"' in page
    assert re.search(r"Agent</strong> 0:45 <span class=\"muted\">\(75%\)", page)
    assert re.search(r"Caller</strong> 0:15 <span class=\"muted\">\(25%\)", page)


def test_mono_has_no_talk_split(alice: User, client_for: Any) -> None:
    session = make_call(alice)
    Recording.objects.filter(session=session).update(channels=1, talk_ms=[45_000])
    assert 'id="talk-time"' not in html(client_for(alice).get(detail_url(session.pk)))


def test_real_dual_channel_recording_end_to_end(
    alice: User, client_for: Any, recordings_root: Path, settings: Any
) -> None:
    """A real call: speech on both channels, ingested by the real ingest, then shown and streamed."""
    settings.TRANSCRIPTION_BACKEND = "none"
    session = make_call(alice, recording=Recording.Status.PENDING, transcript=False, items=0)
    folder = recordings_root / "sessions" / str(session.pk)
    folder.mkdir(parents=True)
    dual_channel_wav(folder / "recording.wav", "Hello, this is the agent speaking.", "Hi.")
    assert session_ingest(session_id=session.pk) == Recording.Status.AVAILABLE

    client = client_for(alice)
    page = html(client.get(detail_url(session.pk)))
    recording = Recording.objects.get(session=session)
    assert recording.channels == 2
    # The ingest's peaks, one per 50 ms window (at most 600), drawn as they are.
    assert f'viewBox="0 0 {len(recording.waveform)} 100"' in page
    assert len(recording.waveform) > 10
    assert 'id="talk-time"' in page
    agent_pct, caller_pct = (int(p) for p in re.findall(r"\((\d+)%\)", page)[:2])
    assert agent_pct > caller_pct
    assert agent_pct + caller_pct == 100

    payload = (folder / "recording.wav").read_bytes()
    part = client.get(audio_url(session.pk), HTTP_RANGE="bytes=44-143")
    assert part.status_code == 206
    assert b"".join(part.streaming_content) == payload[44:144]
    assert part["ETag"] == f'"{recording.sha256}"'


# --- Timeline ----------------------------------------------------------------------------------------------


def test_timeline_newest_last_with_status_changes_and_data(alice: User, client_for: Any) -> None:
    session = make_call(alice, items=0)
    now = timezone.now()
    CallEvent.objects.create(
        session=session,
        type="completed",
        occurred_at=now,
        data={"reason": "bye"},
        status_before="in_progress",
        status_after="completed",
    )
    CallEvent.objects.create(session=session, type="ringing", occurred_at=now - timedelta(minutes=1), data={})
    CallEvent.objects.create(
        session=session, type="dtmf", occurred_at=now - timedelta(seconds=30), data={"digits": "42#"}
    )
    page = html(client_for(alice).get(detail_url(session.pk)))
    order = [page.index(f"event-{kind}") for kind in ("ringing", "dtmf", "completed")]
    assert order == sorted(order)
    assert "in_progress &rarr; completed" in page
    assert "42#" in page
    assert "<dd>bye</dd>" in page


# --- Notes -------------------------------------------------------------------------------------------------


def test_add_note_redirects_back_with_a_message(alice: User, client_for: Any) -> None:
    session = make_call(alice, items=0)
    client = client_for(alice)
    response = client.post(f"/calls/{session.pk}/notes/", {"body": "  Call back Tuesday  "})
    assert response.status_code == 302
    assert response["Location"] == f"/calls/{session.pk}/#notes"
    note = Note.objects.get(session=session)
    assert note.body == "Call back Tuesday"
    assert note.author == alice
    page = html(client.get(response["Location"]))
    assert "Note added." in page
    assert "Call back Tuesday" in page
    assert f'id="note-{note.pk}"' in page


def test_manager_can_add_a_note(alice: User, carol: User, client_for: Any) -> None:
    session = make_call(alice, items=0)
    assert client_for(carol).post(f"/calls/{session.pk}/notes/", {"body": "coaching"}).status_code == 302
    assert Note.objects.get(session=session).author == carol


@pytest.mark.parametrize("body", ["", "    ", "x" * 10_001])
def test_invalid_note_shows_the_error_in_place(body: str, alice: User, client_for: Any) -> None:
    session = make_call(alice, items=0)
    response = client_for(alice).post(f"/calls/{session.pk}/notes/", {"body": body})
    assert response.status_code == 200  # re-rendered with the error in place, as Django forms are
    page = html(response)
    assert 'id="note-body-errors"' in page
    assert 'aria-invalid="true"' in page
    assert 'id="note-form"' in page
    assert not Note.objects.filter(session=session).exists()


def test_author_edits_own_note(alice: User, client_for: Any) -> None:
    session = make_call(alice)
    note = Note.objects.get(session=session)
    client = client_for(alice)
    assert f'action="/calls/{session.pk}/notes/{note.pk}/"' in html(client.get(detail_url(session.pk)))
    response = client.post(f"/calls/{session.pk}/notes/{note.pk}/", {"body": "revised"})
    assert response.status_code == 302
    assert response["Location"] == f"/calls/{session.pk}/#note-{note.pk}"
    note.refresh_from_db()
    assert note.body == "revised"


def test_empty_edit_reopens_the_form_with_the_error(alice: User, client_for: Any) -> None:
    session = make_call(alice)
    note = Note.objects.get(session=session)
    response = client_for(alice).post(f"/calls/{session.pk}/notes/{note.pk}/", {"body": " "})
    assert response.status_code == 200
    page = html(response)
    assert '<details class="note-edit" open>' in page
    assert f'id="note-{note.pk}-errors"' in page
    note.refresh_from_db()
    assert note.body == "note 0"


def test_only_the_author_is_offered_and_allowed_to_edit(alice: User, carol: User, client_for: Any) -> None:
    session = make_call(alice)
    note = Note.objects.get(session=session)
    client = client_for(carol)
    page = html(client.get(detail_url(session.pk)))
    assert "note 0" in page
    assert f"/notes/{note.pk}/" not in page  # no edit form for someone else's note
    for body in ("hijacked", ""):
        response = client.post(f"/calls/{session.pk}/notes/{note.pk}/", {"body": body})
        assert response.status_code == 404
        assert "Note not found" in html(response)
    note.refresh_from_db()
    assert note.body == "note 0"


def test_editing_from_outside_or_another_call_is_not_found(alice: User, bob: User, client_for: Any) -> None:
    session = make_call(alice)
    other = make_call(alice)
    note = Note.objects.get(session=session)
    assert client_for(bob).post(f"/calls/{session.pk}/notes/{note.pk}/", {"body": "x"}).status_code == 404
    response = client_for(alice).post(f"/calls/{other.pk}/notes/{note.pk}/", {"body": "x"})
    assert response.status_code == 404
    note.refresh_from_db()
    assert note.body == "note 0"


def test_get_on_form_routes_goes_back_to_the_page(alice: User, client_for: Any) -> None:
    session = make_call(alice)
    client = client_for(alice)
    assert client.get(f"/calls/{session.pk}/notes/")["Location"] == f"/calls/{session.pk}/#notes"
    assert client.get(f"/calls/{session.pk}/adopt/")["Location"] == f"/calls/{session.pk}/"


def test_csrf_is_enforced_on_notes(alice: User) -> None:
    session = make_call(alice, items=0)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(f"/calls/{session.pk}/notes/", {"body": "no token"}).status_code == 403
    token = csrf_token_from(client.get(detail_url(session.pk)))
    assert (
        client.post(f"/calls/{session.pk}/notes/", {"body": "with token", "csrfmiddlewaretoken": token}).status_code
        == 302
    )
    assert list(Note.objects.filter(session=session).values_list("body", flat=True)) == ["with token"]
    note = Note.objects.get(session=session)
    assert client.post(f"/calls/{session.pk}/notes/{note.pk}/", {"body": "no token"}).status_code == 403


def test_csrf_is_enforced_on_adoption(carol: User, recordings_root: Path) -> None:
    orphan = write_orphan(recordings_root)
    client = Client(enforce_csrf_checks=True)
    client.force_login(carol)
    assert client.post(f"/calls/{orphan}/adopt/").status_code == 403
    assert not CallSession.objects.filter(pk=orphan).exists()


# --- The 404 page ------------------------------------------------------------------------------------------

MALFORMED = [
    "..",
    "..%5Cetc",
    "%2e%2e",
    "not-a-session",
    "x" * 10_240,
    # Look-alikes of a real id: Cyrillic a and e, a fullwidth digit, a trailing newline, braces, no dashes.
    "3f2b9c1e-8d4\u0430-4c6f-9b2\u0435-7a1d5c3e9f00",
    "\uff13f2b9c1e-8d4a-4c6f-9b2e-7a1d5c3e9f00",
    "3f2b9c1e-8d4a-4c6f-9b2e-7a1d5c3e9f00%0A",
    "{3f2b9c1e-8d4a-4c6f-9b2e-7a1d5c3e9f00}",
    "3f2b9c1e8d4a4c6f9b2e7a1d5c3e9f00",
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_ids_get_the_404_page_without_touching_storage(
    raw: str, alice: User, carol: User, client_for: Any, storage_down: list[int]
) -> None:
    for user in (alice, carol):
        client = client_for(user)
        response = client.get(f"/calls/{raw}/")
        assert response.status_code == 404
        page = html(response)
        assert NOT_FOUND in page
        assert "not a valid session id" in page
        assert 'action="/calls/"' in page  # the search form
        assert len(page) < 20_000  # the id is shown truncated
        assert client.post(f"/calls/{raw}/adopt/").status_code == 404
        assert client.get(f"/calls/{raw}/audio").status_code == 404
    assert storage_down == []
    assert CallSession.objects.count() == 0


def test_path_traversal_id_never_reaches_storage(alice: User, storage_down: list[int]) -> None:
    """``../etc`` cannot come through the URL (the slash ends the segment), so hand it to the view directly."""
    request = RequestFactory().get("/calls/x/")
    request.user = alice
    request.session = {}  # type: ignore[assignment]
    from django.contrib.messages.storage.fallback import FallbackStorage

    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    response = detail_views.call_detail(request, session_id="../etc")
    assert response.status_code == 404
    assert b"../etc" in response.content
    assert storage_down == []


def test_traversal_through_the_url_is_a_plain_404(alice: User, client_for: Any, storage_down: list[int]) -> None:
    assert client_for(alice).get("/calls/..%2Fetc/").status_code == 404
    assert storage_down == []


def test_not_found_page_escapes_and_truncates_the_id(alice: User, client_for: Any) -> None:
    response = client_for(alice).get("/calls/<script>alert(1)<%2Fscript>x/")
    # The encoded slash ends the id early or not at all: either way nothing is echoed raw.
    assert "<script>alert" not in html(response)
    response = client_for(alice).get('/calls/"><img src=x onerror=alert(1)>/')
    assert response.status_code == 404
    page = html(response)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    long_id = "a" * 5000
    page = html(client_for(alice).get(f"/calls/{long_id}/"))
    assert "a" * 100 + "…" in page
    assert "a" * 101 not in page


def test_missing_well_formed_id(alice: User, client_for: Any) -> None:
    missing = uuid.uuid4()
    response = client_for(alice).get(detail_url(missing))
    assert response.status_code == 404
    page = html(response)
    assert NOT_FOUND in page
    assert str(missing) in page
    assert "not a valid session id" not in page
    assert 'href="/calls/"' in page
    assert 'id="orphan-recording"' not in page
    assert_csp_clean(response)


def test_missing_id_when_storage_is_down_still_answers_404(
    alice: User, client_for: Any, storage_down: list[int]
) -> None:
    response = client_for(alice).get(detail_url(uuid.uuid4()))
    assert response.status_code == 404
    assert "recordings storage is not answering" in html(response)
    assert storage_down == [1]


def test_someone_elses_call_with_a_folder_says_nothing_more(
    alice: User, bob: User, client_for: Any, recordings_root: Path, storage_down: list[int]
) -> None:
    session = make_call(alice)
    page = html(client_for(bob).get(detail_url(session.pk)))
    assert NOT_FOUND in page
    assert 'id="orphan-recording"' not in page
    assert storage_down == []


# --- Orphaned recordings -----------------------------------------------------------------------------------


def test_agent_sees_who_can_adopt_an_orphan(
    alice: User, bob: User, carol: User, client_for: Any, recordings_root: Path
) -> None:
    orphan = write_orphan(recordings_root, {"owner": "alice"})
    response = client_for(bob).get(detail_url(orphan))
    assert response.status_code == 404
    page = html(response)
    assert 'id="orphan-recording"' in page
    assert "A recording for this id is waiting in storage" in page
    assert '<strong class="adopter">Carol</strong>, the manager of Sales' in page
    assert 'id="adopt-button"' not in page
    assert not CallSession.objects.filter(pk=orphan).exists()


def test_agent_without_a_named_owner_is_told_a_manager(client_for: Any, recordings_root: Path) -> None:
    loner = User.objects.create_user(username="loner", password="x", role=User.Role.AGENT)
    orphan = write_orphan(recordings_root)
    page = html(client_for(loner).get(detail_url(orphan)))
    assert '<strong class="adopter">a manager</strong>' in page
    assert 'id="adopt-button"' not in page


def test_orphan_naming_nobody_points_the_agent_to_their_manager(
    charlie: User, client_for: Any, recordings_root: Path
) -> None:
    orphan = write_orphan(recordings_root)
    page = html(client_for(charlie).get(detail_url(orphan)))
    assert '<strong class="adopter">Dave</strong>, the manager of Other team' in page


@pytest.mark.parametrize("viewer", ["carol", "admin_user"])
def test_manager_and_admin_see_the_adopt_button(
    viewer: str, request: pytest.FixtureRequest, alice: User, client_for: Any, recordings_root: Path
) -> None:
    orphan = write_orphan(recordings_root, {"owner": "alice"})
    response = client_for(request.getfixturevalue(viewer)).get(detail_url(orphan))
    assert response.status_code == 404
    page = html(response)
    assert 'id="adopt-button"' in page
    assert f'action="/calls/{orphan}/adopt/"' in page
    assert_csp_clean(response)
    # Looking is not adopting: the manager presses the button.
    assert not CallSession.objects.filter(pk=orphan).exists()


def test_manager_of_another_team_is_not_offered_the_button(
    alice: User, dave: User, client_for: Any, recordings_root: Path
) -> None:
    orphan = write_orphan(recordings_root, {"owner": "alice"})
    page = html(client_for(dave).get(detail_url(orphan)))
    assert 'id="adopt-button"' not in page
    assert "Carol" in page


def test_carol_adopts_with_the_button(alice: User, carol: User, client_for: Any, recordings_root: Path) -> None:
    orphan = write_orphan(recordings_root, {"owner": "alice", "external_id": "SIP-9"})
    client = client_for(carol)
    response = client.post(f"/calls/{orphan}/adopt/")
    assert response.status_code == 302
    assert response["Location"] == f"/calls/{orphan}/"
    session = CallSession.objects.get(pk=orphan)
    assert session.origin == CallSession.Origin.ADOPTED
    assert session.owner == alice
    page = html(client.get(response["Location"]))
    assert "Recording adopted" in page
    assert "this page refreshes itself" in page
    assert "SIP-9" in page
    # A second press finds it already there.
    again = client.post(f"/calls/{orphan}/adopt/")
    assert again.status_code == 302
    assert CallSession.objects.filter(pk=orphan).count() == 1


def test_manager_adopting_an_orphan_that_names_nobody_owns_it(
    carol: User, client_for: Any, recordings_root: Path
) -> None:
    orphan = write_orphan(recordings_root)
    assert client_for(carol).post(f"/calls/{orphan}/adopt/").status_code == 302
    assert CallSession.objects.get(pk=orphan).owner == carol


def test_bob_is_refused(alice: User, bob: User, client_for: Any, recordings_root: Path) -> None:
    orphan = write_orphan(recordings_root, {"owner": "alice"})
    response = client_for(bob).post(f"/calls/{orphan}/adopt/")
    assert response.status_code == 404
    page = html(response)
    assert NOT_FOUND in page
    assert "could not be adopted by you" in page
    assert not CallSession.objects.filter(pk=orphan).exists()


def test_adopting_someone_elses_existing_call_is_not_found(
    alice: User, bob: User, client_for: Any, storage_down: list[int]
) -> None:
    session = make_call(alice)
    assert client_for(bob).post(f"/calls/{session.pk}/adopt/").status_code == 404
    assert storage_down == []


def test_adopting_when_storage_is_down_is_a_503(carol: User, client_for: Any, storage_down: list[int]) -> None:
    orphan = uuid.uuid4()
    response = client_for(carol).post(f"/calls/{orphan}/adopt/")
    assert response.status_code == 503
    assert "recordings storage is not answering" in html(response)


def test_orphan_assigned_to_the_viewer_is_adopted_by_viewing(
    alice: User, client_for: Any, recordings_root: Path
) -> None:
    orphan = write_orphan(recordings_root, {"owner": "alice"})
    response = client_for(alice).get(detail_url(orphan))
    assert response.status_code == 200
    page = html(response)
    assert "it is now one of your calls" in page
    assert "this page refreshes itself" in page
    session = CallSession.objects.get(pk=orphan)
    assert session.owner == alice
    assert session.origin == CallSession.Origin.ADOPTED


def test_nothing_in_storage_is_a_plain_404_for_a_manager(carol: User, client_for: Any, recordings_root: Path) -> None:
    empty = uuid.uuid4()
    (recordings_root / "sessions" / str(empty)).mkdir(parents=True)
    (recordings_root / "sessions" / str(empty) / "meta.json").write_text("{}")
    page = html(client_for(carol).get(detail_url(empty)))
    assert 'id="orphan-recording"' not in page
    assert client_for(carol).post(f"/calls/{empty}/adopt/").status_code == 404
    assert not CallSession.objects.filter(pk=empty).exists()


# --- Query count, CSP, accessibility hooks -----------------------------------------------------------------

# Session and user of the signed-in request, the session with its joins, events, notes, segments, campaign,
# contact.
DETAIL_QUERIES = 8


@pytest.mark.parametrize("items", [1, 20])
def test_detail_query_count_is_pinned(
    items: int, alice: User, sales_team: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    campaign = Campaign.objects.create(name="Q", team=sales_team)
    contact = Contact.objects.create(team=sales_team, name="C", phone="+14155550124")
    session = make_call(alice, items=items, campaign=campaign, contact=contact)
    client = client_for(alice)
    with django_assert_max_num_queries(DETAIL_QUERIES):
        response = client.get(detail_url(session.pk))
    assert response.status_code == 200
    assert html(response).count('class="note"') == items


def test_detail_query_count_does_not_grow_with_the_call(alice: User, client_for: Any) -> None:
    small = make_call(alice, items=1)
    large = make_call(alice, items=20)
    client = client_for(alice)
    counts = []
    for session in (small, large, small):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(detail_url(session.pk)).status_code == 200
        counts.append(len(queries))
    assert counts[1] == counts[2]


def test_detail_page_markup_is_csp_clean_and_testable(alice: User, client_for: Any) -> None:
    session = make_call(alice, items=2)
    response = client_for(alice).get(detail_url(session.pk))
    assert_csp_clean(response)
    page = html(response)
    assert '<audio id="player" controls preload="metadata" src="/calls/' in page
    assert '<script src="/static/js/player.js" defer></script>' in page
    assert 'href="/static/css/detail.css"' in page
    assert 'id="note-form"' in page
    assert '<textarea id="note-body" name="body"' in page
    assert '<label for="note-body">' in page
    assert '<label for="player-speed">' in page
    for hook in (
        'id="waveform"',
        'class="transcript-segment',
        'class="note"',
        'id="player-toggle"',
        'id="player-current"',
    ):
        assert hook in page
    assert response["Cache-Control"] == "private, no-cache"


def test_every_form_field_has_a_label(alice: User, client_for: Any) -> None:
    session = make_call(alice, items=3)
    page = html(client_for(alice).get(detail_url(session.pk)))
    ids = re.findall(r'<(?:textarea|select|input(?![^>]*type="hidden"))[^>]*\bid="([^"]+)"', page)
    assert ids
    for field_id in ids:
        assert f'<label for="{field_id}">' in page, field_id


def test_static_files_exist() -> None:
    root = Path(__file__).resolve().parents[2] / "static"
    script = (root / "js" / "player.js").read_text()
    assert "aria-current" in script
    assert "is-current" in script
    assert (root / "css" / "detail.css").exists()
