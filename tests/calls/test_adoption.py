"""Lazy adoption of orphaned recordings: ``GET /api/crm/sessions/<id>`` (and ``call_session_get_or_adopt``).

A folder ``sessions/<id>/`` in the recordings storage that holds audio but has no session row becomes a session
(origin ``adopted``) on the first look by someone allowed to see the result; anything else answers 404 and
writes nothing. Malformed ids never reach the storage at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import uuid
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.core.files.storage import FileSystemStorage, Storage
from django.utils import timezone
from rest_framework.test import APIClient

from calls import services
from calls.adoption import orphan_adopt
from calls.models import CallEvent, CallSession, Recording
from calls.selectors import SessionNotFound, get_call_session_for_user
from calls.services import call_session_get_or_adopt
from campaigns.models import Campaign
from tests.factories import CallSessionFactory

pytestmark = pytest.mark.django_db

NOT_FOUND_SESSION = {"detail": "Call session not found.", "code": "session_not_found"}
NOT_FOUND_GENERIC = {"detail": "Not found.", "code": "not_found"}


# --- Helpers -----------------------------------------------------------------------------------------------


def wav_bytes(seconds: float = 0.2, rate: int = 8000) -> bytes:
    """A valid, tiny mono 16-bit PCM WAV of silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def write_folder(
    root: Path,
    session_id: uuid.UUID | None = None,
    *,
    audio: bytes | None = None,
    audio_name: str = "recording.wav",
    meta: dict[str, Any] | list[Any] | bytes | None = None,
    transcript: bytes | None = None,
    folder_name: str | None = None,
) -> tuple[uuid.UUID, Path]:
    """Writes ``sessions/<id>/`` (or ``sessions/<folder_name>/``) the way a media server would; ``audio=b""``
    writes an empty audio file."""
    sid = session_id if session_id is not None else uuid.uuid4()
    folder = root / "sessions" / (folder_name or str(sid))
    folder.mkdir(parents=True)
    if audio is not None:
        (folder / audio_name).write_bytes(audio)
    if meta is not None:
        raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
        (folder / "meta.json").write_bytes(raw)
    if transcript is not None:
        (folder / "transcript.txt").write_bytes(transcript)
    return sid, folder


def url(session_id: uuid.UUID | str) -> str:
    return f"/api/crm/sessions/{session_id}"


def counts() -> tuple[int, int, int]:
    return CallSession.objects.count(), Recording.objects.count(), CallEvent.objects.count()


@pytest.fixture
def storage_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Records every access to the recordings storage (the filesystem backend's listdir/open/size/exists)."""
    calls: list[tuple[str, str]] = []
    for name in ("listdir", "open", "size", "exists"):
        original = getattr(FileSystemStorage, name)

        def spy(self: FileSystemStorage, key: str, *args: Any, _name: str = name, _orig: Any = original) -> Any:
            calls.append((_name, key))
            return _orig(self, key, *args)

        monkeypatch.setattr(FileSystemStorage, name, spy)
    return calls


_FORBIDDEN_ATTEMPTS: list[str] = []


class ForbiddenStorage(Storage):
    """A recordings storage that must never be reached: building it is recorded and fails the request."""

    def __init__(self, **options: Any) -> None:
        _FORBIDDEN_ATTEMPTS.append("recordings storage instantiated")
        raise AssertionError("the recordings storage was touched")


@pytest.fixture
def storage_forbidden(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any attempt to reach the recordings storage fails the request loudly, and is counted.

    The storage is swapped through settings (``storages`` forgets built backends when STORAGES changes) and the
    filesystem backend's methods are patched on the class, so no module keeps a stand-in after the test.
    """

    def forbidden(self: Storage, name: str, *args: Any, **kwargs: Any) -> Any:
        _FORBIDDEN_ATTEMPTS.append(f"FileSystemStorage({name!r})")
        raise AssertionError(f"the recordings storage was touched: {name!r}")

    settings.STORAGES = {**settings.STORAGES, "recordings": {"BACKEND": f"{__name__}.ForbiddenStorage"}}
    for name in ("listdir", "open", "size", "exists", "path"):
        monkeypatch.setattr(FileSystemStorage, name, forbidden)
    _FORBIDDEN_ATTEMPTS.clear()
    yield _FORBIDDEN_ATTEMPTS
    _FORBIDDEN_ATTEMPTS.clear()


# File-system reads seen by the interpreter itself (PEP 578 audit events), so a read that bypasses the storage
# class (os.scandir, open) is caught too. The hook is installed once per process and records only when asked.
_AUDIT_LOGS: list[list[str]] = []
_AUDIT_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "os.stat"})


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if not _AUDIT_LOGS or event not in _AUDIT_EVENTS or not args:
        return
    target = args[0]
    if isinstance(target, str | bytes | os.PathLike):
        for log in _AUDIT_LOGS:
            log.append(os.fsdecode(target))


if not getattr(sys, "_callbook_adoption_audit_hook", False):
    sys.addaudithook(_audit_hook)
    sys._callbook_adoption_audit_hook = True  # type: ignore[attr-defined]


@pytest.fixture
def fs_reads() -> Iterator[list[str]]:
    log: list[str] = []
    _AUDIT_LOGS.append(log)
    try:
        yield log
    finally:
        _AUDIT_LOGS.remove(log)


@pytest.fixture
def bait(recordings_root: Path, tmp_path: Path) -> Path:
    """Files a traversal out of ``sessions/<id>/`` would find: an orphan-looking folder and an "etc" outside."""
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (outside / "recording.wav").write_bytes(wav_bytes())
    (outside / "meta.json").write_text(json.dumps({"owner": "carol"}))
    (tmp_path / "recording.wav").write_bytes(wav_bytes())
    write_folder(recordings_root, folder_name="not-a-session-id!", audio=wav_bytes())
    write_folder(recordings_root, folder_name="etc", audio=wav_bytes())
    return tmp_path


def reads_under(reads: list[str], root: Path) -> list[str]:
    resolved_root = root.resolve()
    found = []
    for path in reads:
        try:
            Path(path).resolve().relative_to(resolved_root)
        except (ValueError, OSError, RuntimeError):
            if path.startswith("/etc/passwd") or "etc/passwd" in path:
                found.append(path)
            continue
        found.append(path)
    return found


def adopted_event(session: CallSession) -> CallEvent:
    events = list(CallEvent.objects.filter(session=session))
    assert [e.type for e in events] == ["adopted"]
    return events[0]


# --- Ids that are not session ids --------------------------------------------------------------------------

SAMPLE = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"


def lookalike_digits(text: str, zero: int) -> str:
    """``text`` with its ASCII digits swapped for another script's (which str.isdigit and int() accept)."""
    return text.translate({ord("0") + d: chr(zero + d) for d in range(10)})


# Each stays one URL segment after Django decodes it, so it reaches the view and must be refused there.
MALFORMED_IN_VIEW = {
    "dotdot": "..",
    "dotdot-encoded": "%2e%2e",
    "dotdot-slash-encoded": "%2e%2e%2f",
    "nul": "%00",
    "uuid-then-nul": f"{SAMPLE}%00",
    "backslashes": "..%5C..%5Cetc%5Cpasswd",
    "not-a-session-id": quote("not-a-session-id!"),
    "etc": "etc",
    "ten-kilobytes": "a" * 10_240,
    "ten-kilobytes-of-uuids": (SAMPLE * 300)[:10_240],
    "braced": "{" + SAMPLE + "}",
    "urn": f"urn:uuid:{SAMPLE}",
    "no-hyphens": SAMPLE.replace("-", ""),
    "hyphens-moved": SAMPLE.replace("-", "")[:9] + "-" + SAMPLE.replace("-", "")[9:],
    "trailing-newline": f"{SAMPLE}%0A",
    "leading-space": f"%20{SAMPLE}",
    "short": SAMPLE[:-1],
    "long": SAMPLE + "0",
    "fullwidth-digits": quote(lookalike_digits(SAMPLE, 0xFF10)),
    "arabic-indic-digits": quote(lookalike_digits(SAMPLE, 0x0660)),
    "devanagari-digits": quote(lookalike_digits(SAMPLE, 0x0966)),
    "cyrillic-a": quote(SAMPLE.replace("a", "\u0430")),
    "superscript-two": quote(SAMPLE.replace("2", "\u00b2")),
}

# These decode to more than one path segment (or an empty one), so no session route matches them at all.
ESCAPING_PATHS = {
    "traversal-encoded": "/api/crm/sessions/..%2F..%2Fetc",
    "traversal-encoded-deep": "/api/crm/sessions/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "traversal-plain": "/api/crm/sessions/../../etc/passwd",
    "absolute-encoded": "/api/crm/sessions/%2Fetc%2Fpasswd",
    "absolute": "/api/crm/sessions//etc/passwd",
    "uuid-then-traversal": f"/api/crm/sessions/{SAMPLE}%2F..%2F..%2Fetc",
    "uuid-then-file": f"/api/crm/sessions/{SAMPLE}/meta.json",
}


@pytest.mark.parametrize("raw", list(MALFORMED_IN_VIEW.values()), ids=list(MALFORMED_IN_VIEW))
def test_it_answers_session_not_found_for_a_malformed_id_without_touching_storage(
    raw, admin_user, api_client_for, bait, storage_forbidden, fs_reads
):
    response = api_client_for(admin_user).get(url(raw))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND_SESSION
    assert storage_forbidden == []
    assert reads_under(fs_reads, bait) == []
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize("path", list(ESCAPING_PATHS.values()), ids=list(ESCAPING_PATHS))
def test_it_answers_a_json_not_found_for_paths_that_leave_the_session_segment(
    path, admin_user, api_client_for, bait, storage_forbidden, fs_reads
):
    response = api_client_for(admin_user).get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND_GENERIC
    assert storage_forbidden == []
    assert reads_under(fs_reads, bait) == []
    assert counts() == (0, 0, 0)


def test_it_refuses_malformed_ids_in_the_service_before_touching_storage(carol, admin_user, storage_forbidden):
    for raw in ["", "..", "../../etc/passwd", "/etc/passwd", "\x00", f"{SAMPLE}\x00", "{" + SAMPLE + "}", "x" * 10_240]:
        for user in (carol, admin_user):
            with pytest.raises(SessionNotFound):
                call_session_get_or_adopt(user=user, session_id=raw)
    assert storage_forbidden == []
    assert counts() == (0, 0, 0)


def test_it_reads_only_the_canonical_folder_for_an_uppercase_id(
    carol, api_client_for, recordings_root, storage_spy, bait, fs_reads
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes())

    response = api_client_for(carol).get(url(str(sid).upper()))

    # Hex digits are case-insensitive (RFC 9562): the uppercase spelling names the same session, and only the
    # canonical lowercase key is ever built from it.
    assert response.status_code == 200
    assert response.json()["id"] == str(sid)
    assert response.json()["adopted"] is True
    assert {key for _, key in storage_spy} <= {f"sessions/{sid}", f"sessions/{sid}/recording.wav"}
    assert ("listdir", f"sessions/{sid}") in storage_spy
    assert all(str(sid).upper() not in path for path in fs_reads)
    assert list(CallSession.objects.values_list("id", flat=True)) == [sid]


def test_it_never_adopts_a_folder_whose_name_is_not_a_session_id(carol, admin_user, api_client_for, recordings_root):
    write_folder(recordings_root, folder_name="not-a-session-id!", audio=wav_bytes(), meta={"owner": "carol"})

    for user in (carol, admin_user):
        response = api_client_for(user).get(url(quote("not-a-session-id!")))
        assert response.status_code == 404
        assert response.json() == NOT_FOUND_SESSION
    assert counts() == (0, 0, 0)


def test_it_answers_404_for_a_well_formed_id_with_neither_row_nor_folder(admin_user, api_client_for, storage_spy):
    sid = uuid.uuid4()

    response = api_client_for(admin_user).get(url(sid))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_SESSION
    assert storage_spy == [("listdir", f"sessions/{sid}")]
    assert counts() == (0, 0, 0)


def test_it_does_not_look_in_storage_for_a_row_the_user_may_not_see(
    alice, bob, api_client_for, recordings_root, storage_forbidden
):
    session = CallSessionFactory.create(owner=alice)
    write_folder(recordings_root, session.pk, audio=wav_bytes(), meta={"owner": "bob"})

    response = api_client_for(bob).get(url(session.pk))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_SESSION
    assert storage_forbidden == []
    session.refresh_from_db()
    assert (session.owner, session.origin) == (alice, CallSession.Origin.API)
    assert counts() == (1, 0, 0)


def test_it_does_not_readopt_an_archived_session_whose_folder_is_still_there(
    alice, admin_user, api_client_for, recordings_root, storage_forbidden
):
    session = CallSessionFactory.create(owner=alice, archived_at=timezone.now())
    write_folder(recordings_root, session.pk, audio=wav_bytes())

    response = api_client_for(admin_user).get(url(session.pk))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_SESSION
    assert storage_forbidden == []
    assert counts() == (1, 0, 0)
    assert CallSession.objects.get().archived_at is not None


# --- Adoption ----------------------------------------------------------------------------------------------


def test_it_adopts_an_orphan_for_a_manager_and_ingests_its_recording(
    carol, api_client_for, recordings_root, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    audio = wav_bytes()
    sid, _ = write_folder(recordings_root, audio=audio)
    client = api_client_for(carol)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.get(url(sid))

    assert len(callbacks) == 1
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(sid)
    assert body["adopted"] is True
    assert body["origin"] == "adopted"
    assert body["status"] == "completed"
    assert body["auto_created"] is True
    assert (body["owner"], body["team"], body["source"], body["external_id"]) == ("carol", "Sales", "storage", "")
    # The answer is written before the ingest (queued on commit) runs.
    assert body["recording_status"] == "pending"
    assert body["recording"]["status"] == "pending"
    assert body["metadata"] == {}
    assert [(e["type"], e["data"]["by"], e["data"]["files"]) for e in body["events"]] == [
        ("adopted", "carol", ["recording.wav"])
    ]

    session = CallSession.objects.get()
    assert session.pk == sid
    assert session.origin == CallSession.Origin.ADOPTED
    assert session.status == CallSession.Status.COMPLETED
    assert session.auto_created is True
    assert session.owner == carol
    assert session.team is not None
    assert session.team.name == "Sales"
    # The ingest ran in-process when the adoption committed.
    assert session.recording_status == CallSession.RecordingStatus.AVAILABLE
    recording = Recording.objects.get(session=session)
    assert recording.file == f"sessions/{sid}/recording.wav"
    assert recording.status == Recording.Status.AVAILABLE
    assert recording.size_bytes == len(audio)
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()
    assert (recording.format, recording.content_type) == ("wav", "audio/wav")
    assert recording.failure_reason == ""
    assert recording.attempts == 1
    adopted_event(session)

    with django_capture_on_commit_callbacks(execute=True) as again_callbacks:
        again = client.get(url(sid))

    assert again_callbacks == []
    assert again.status_code == 200
    assert again.json()["id"] == str(sid)
    assert again.json()["adopted"] is False
    assert again.json()["recording_status"] == "available"
    assert again.json()["recording"]["sha256"] == hashlib.sha256(audio).hexdigest()
    assert again.json()["recording"]["stream_url"].endswith(f"/api/crm/sessions/{sid}/recording")
    assert counts() == (1, 1, 1)


def test_it_adopts_through_the_service_once(carol, recordings_root):
    sid, _ = write_folder(recordings_root, audio=wav_bytes())

    first, first_adopted = call_session_get_or_adopt(user=carol, session_id=str(sid))
    second, second_adopted = call_session_get_or_adopt(user=carol, session_id=str(sid))

    assert (first.pk, first_adopted) == (sid, True)
    assert (second.pk, second_adopted) == (sid, False)
    assert counts() == (1, 1, 1)


def test_it_adopts_an_orphan_for_an_admin_as_their_own(admin_user, api_client_for, recordings_root):
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), transcript=b"hello")

    response = api_client_for(admin_user).get(url(sid))

    assert response.status_code == 200
    assert response.json()["adopted"] is True
    assert (response.json()["owner"], response.json()["team"]) == ("admin", None)
    session = CallSession.objects.get(pk=sid)
    assert (session.owner, session.team, session.origin) == (admin_user, None, CallSession.Origin.ADOPTED)
    assert adopted_event(session).data["files"] == ["recording.wav", "transcript.txt"]


def test_it_copies_ownership_and_fields_from_meta_for_the_agent_it_names(
    alice, api_client_for, recordings_root, sales_team
):
    campaign = Campaign.objects.create(name="Spring push", team=sales_team)
    meta = {
        "owner": "alice",
        "team": "Sales",
        "campaign": "Spring push",
        "external_id": "CA-42",
        "source": "pipecat-prod",
        "from_number": "+14155550100",
        "to_number": "+14155550199",
        "started_at": "2025-03-01T10:00:00Z",
        "ended_at": "2025-03-01T10:02:30Z",
        "direction": "outbound",
    }
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta=meta)

    response = api_client_for(alice).get(url(sid))

    assert response.status_code == 200
    body = response.json()
    assert body["adopted"] is True
    assert (body["owner"], body["team"], body["campaign"]) == ("alice", "Sales", campaign.pk)
    assert (body["source"], body["external_id"], body["direction"]) == ("pipecat-prod", "CA-42", "outbound")
    assert (body["from_number"], body["to_number"]) == ("+14155550100", "+14155550199")
    assert body["metadata"] == {}
    session = CallSession.objects.get(pk=sid)
    assert session.owner == alice
    assert session.team == sales_team
    assert session.campaign == campaign
    assert session.started_at is not None
    assert session.started_at.isoformat() == "2025-03-01T10:00:00+00:00"
    assert session.ended_at is not None
    assert session.ended_at.isoformat() == "2025-03-01T10:02:30+00:00"
    assert session.duration_ms == 150_000
    assert adopted_event(session).data == {"by": "alice", "files": ["meta.json", "recording.wav"], "problems": []}


def test_it_keeps_the_meta_owner_when_their_manager_adopts(alice, carol, api_client_for, recordings_root):
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"owner": "alice"})

    response = api_client_for(carol).get(url(sid))

    assert response.status_code == 200
    assert (response.json()["owner"], response.json()["team"]) == ("alice", "Sales")
    assert adopted_event(CallSession.objects.get(pk=sid)).data["by"] == "carol"
    # And alice, whose call it is, sees it too (not adopted again).
    mine = api_client_for(alice).get(url(sid))
    assert (mine.status_code, mine.json()["adopted"]) == (200, False)
    assert counts() == (1, 1, 1)


def _assert_refused(client: APIClient, sid: uuid.UUID, capture: Callable[..., Any]) -> None:
    with capture(execute=True) as callbacks:
        response = client.get(url(sid))
    assert response.status_code == 404
    assert response.json() == NOT_FOUND_SESSION
    assert callbacks == []
    assert counts() == (0, 0, 0)


def test_it_refuses_an_agent_an_orphan_whose_meta_names_someone_else(
    alice, bob, api_client_for, recordings_root, django_capture_on_commit_callbacks
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"owner": "alice"})

    _assert_refused(api_client_for(bob), sid, django_capture_on_commit_callbacks)

    # Nothing was left behind: the folder's rightful owner adopts it afterwards.
    response = api_client_for(alice).get(url(sid))
    assert (response.status_code, response.json()["adopted"], response.json()["owner"]) == (200, True, "alice")
    assert adopted_event(CallSession.objects.get(pk=sid)).data["by"] == "alice"


def test_it_refuses_an_agent_an_orphan_without_meta(
    bob, api_client_for, recordings_root, django_capture_on_commit_callbacks
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes())

    _assert_refused(api_client_for(bob), sid, django_capture_on_commit_callbacks)


def test_it_refuses_an_agent_an_orphan_whose_meta_owner_is_unknown(
    bob, api_client_for, recordings_root, django_capture_on_commit_callbacks
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"owner": "nobody", "team": "Sales"})

    _assert_refused(api_client_for(bob), sid, django_capture_on_commit_callbacks)


def test_it_refuses_a_manager_of_another_team_an_orphan_whose_meta_names_alice(
    alice, carol, dave, api_client_for, recordings_root, django_capture_on_commit_callbacks
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"owner": "alice"})

    _assert_refused(api_client_for(dave), sid, django_capture_on_commit_callbacks)

    response = api_client_for(carol).get(url(sid))
    assert (response.status_code, response.json()["adopted"], response.json()["owner"]) == (200, True, "alice")


def test_it_adopts_for_the_integration_with_its_source_and_default_owner(
    alice, integration, integration_client, api_client_for, recordings_root
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes())

    response = integration_client.get(url(sid))

    assert response.status_code == 200
    body = response.json()
    assert body["adopted"] is True
    assert (body["source"], body["owner"], body["team"]) == ("pipecat-prod", "alice", "Sales")
    session = CallSession.objects.get(pk=sid)
    assert (session.source, session.owner, session.origin) == ("pipecat-prod", alice, CallSession.Origin.ADOPTED)
    assert adopted_event(session).data["by"] == "pipecat-prod@integration"
    # alice, the integration's default owner, sees it as hers; it is not adopted twice.
    mine = api_client_for(alice).get(url(sid))
    assert (mine.status_code, mine.json()["adopted"], mine.json()["id"]) == (200, False, str(sid))
    assert counts() == (1, 1, 1)


def test_it_refuses_the_integration_an_orphan_whose_meta_names_another_source(
    alice, integration_client, recordings_root
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"source": "someone-else"})

    response = integration_client.get(url(sid))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_SESSION
    assert counts() == (0, 0, 0)


def test_it_adopts_for_the_integration_a_folder_whose_meta_names_an_owner_but_no_source(
    alice, integration_client, recordings_root
):
    # Regression: the integration's name used to be applied only when meta.json named no owner, so this folder
    # got source "storage", was invisible to the integration that asked, and answered 404.
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"owner": "alice", "external_id": "CA-7"})

    response = integration_client.get(url(sid))

    assert response.status_code == 200
    assert (response.json()["source"], response.json()["owner"]) == ("pipecat-prod", "alice")
    assert response.json()["external_id"] == "CA-7"


# --- Malformed meta.json -----------------------------------------------------------------------------------

MALFORMED_META: dict[str, tuple[bytes, str]] = {
    "invalid-json": (b'{"owner": "alice",', "meta.json is not valid JSON"),
    "json-list": (b'["alice", "Sales"]', "meta.json must hold a JSON object"),
    "json-string": (b'"alice"', "meta.json must hold a JSON object"),
    "not-utf8": (b'{"owner": "al\xffice", "team": "\xfe"}', "meta.json is not UTF-8"),
    "too-large": (json.dumps({"owner": "alice", "pad": "x" * 70_000}).encode(), "meta.json is larger than 64 KiB"),
}


@pytest.mark.parametrize(("raw", "problem"), list(MALFORMED_META.values()), ids=list(MALFORMED_META))
def test_it_adopts_despite_an_unreadable_meta_and_reports_why(
    raw, problem, carol, api_client_for, recordings_root, django_capture_on_commit_callbacks
):
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta=raw)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client_for(carol).get(url(sid))

    assert response.status_code == 200
    body = response.json()
    assert body["adopted"] is True
    # meta.json was ignored as a whole: the manager who asked owns it.
    assert (body["owner"], body["team"], body["source"]) == ("carol", "Sales", "storage")
    session = CallSession.objects.get(pk=sid)
    problems = session.metadata["adoption"]["problems"]
    assert len(problems) == 1
    assert problems[0].startswith(problem)
    assert session.metadata["adoption"]["files"] == ["meta.json", "recording.wav"]
    assert adopted_event(session).data["problems"] == problems
    assert body["metadata"]["adoption"]["problems"] == problems
    assert [e["data"]["problems"] for e in body["events"]] == [problems]
    assert len(callbacks) == 1
    assert Recording.objects.get(session=session).status == Recording.Status.PENDING


BAD_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown-owner": ({"owner": "nobody"}, "meta.json: owner 'nobody' is not an active user; ignored."),
    "owner-not-a-string": ({"owner": ["alice"]}, "meta.json: owner must be a string of at most 150 characters"),
    "unknown-team": ({"team": "Nowhere"}, "meta.json: team 'Nowhere' does not exist; ignored."),
    "bad-started-at": ({"started_at": "yesterday"}, "meta.json: started_at is not an ISO 8601 time; ignored."),
    "bad-ended-at-type": ({"ended_at": 1740823200}, "meta.json: ended_at is not an ISO 8601 time; ignored."),
    "ended-before-started": (
        {"started_at": "2025-03-01T10:00:00Z", "ended_at": "2025-03-01T09:00:00Z"},
        "meta.json: ended_at is before started_at; ended_at ignored.",
    ),
    "bad-direction": ({"direction": "sideways"}, "meta.json: direction 'sideways' is not inbound or outbound"),
    "unknown-campaign": ({"campaign": "Nope"}, "meta.json: campaign 'Nope' is not a campaign of the session's team"),
    "long-from-number": ({"from_number": "1" * 65}, "meta.json: from_number must be a string of at most 64"),
    "long-source": ({"source": "s" * 65}, "meta.json: source must be a string of at most 64"),
}


@pytest.mark.parametrize(("bad", "problem"), list(BAD_FIELDS.values()), ids=list(BAD_FIELDS))
def test_it_ignores_bad_meta_fields_keeps_the_good_ones_and_reports_them(
    bad, problem, alice, carol, api_client_for, recordings_root
):
    good = {"owner": "alice", "external_id": "CA-1", "to_number": "+14155550199", "direction": "outbound"}
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta={**good, **bad})

    response = api_client_for(carol).get(url(sid))

    assert response.status_code == 200
    assert response.json()["adopted"] is True
    session = CallSession.objects.get(pk=sid)
    problems = session.metadata["adoption"]["problems"]
    assert len(problems) == 1
    assert problems[0].startswith(problem)
    assert adopted_event(session).data["problems"] == problems
    expected_owner = carol if "owner" in bad else alice
    assert session.owner == expected_owner
    assert session.team is not None
    assert session.team.name == "Sales"
    assert session.external_id == "CA-1"
    assert session.to_number == "+14155550199"
    assert session.direction == ("inbound" if "direction" in bad else "outbound")
    assert session.source == "storage"
    assert session.from_number == ""
    assert session.campaign is None
    if "ended_at" in bad:
        assert session.ended_at is None
        assert session.duration_ms is None


def test_it_reports_an_impossible_meta_time_instead_of_failing(carol, api_client_for, recordings_root):
    # Regression: parse_datetime raises ValueError (rather than answering None) for February 30th: that was a 500.
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta={"owner": "carol", "ended_at": "2025-02-30T10:00Z"})
    client = api_client_for(carol)
    client.raise_request_exception = False

    response = client.get(url(sid))

    assert response.status_code == 200
    assert response.json()["adopted"] is True
    problems = CallSession.objects.get(pk=sid).metadata["adoption"]["problems"]
    assert problems == ["meta.json: ended_at is not an ISO 8601 time; ignored."]


def test_it_reports_a_deeply_nested_meta_instead_of_failing(carol, api_client_for, recordings_root):
    # Regression: json.loads raises RecursionError (not JSONDecodeError) for 50,000 nested arrays: that was a 500.
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta=b"[" * 50_000)
    client = api_client_for(carol)
    client.raise_request_exception = False

    response = client.get(url(sid))

    assert response.status_code == 200
    assert (response.json()["adopted"], response.json()["owner"]) == (True, "carol")
    problems = CallSession.objects.get(pk=sid).metadata["adoption"]["problems"]
    assert problems == ["meta.json is nested too deeply to read; ignored."]


def test_it_adopts_without_an_external_id_another_session_of_the_source_uses(
    alice, carol, api_client_for, recordings_root
):
    existing = CallSessionFactory.create(owner=alice, source="pipecat-prod", external_id="CA-dup")
    meta = {"owner": "alice", "source": "pipecat-prod", "external_id": "CA-dup", "to_number": "+14155550123"}
    sid, _ = write_folder(recordings_root, audio=wav_bytes(), meta=meta)

    response = api_client_for(carol).get(url(sid))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["adopted"], body["external_id"], body["source"]) == (str(sid), True, "", "pipecat-prod")
    assert (body["owner"], body["to_number"]) == ("alice", "+14155550123")
    session = CallSession.objects.get(pk=sid)
    problems = session.metadata["adoption"]["problems"]
    assert problems == [
        "meta.json: external_id 'CA-dup' is already used by another session of 'pipecat-prod'; not copied."
    ]
    assert adopted_event(session).data["problems"] == problems
    existing.refresh_from_db()
    assert existing.external_id == "CA-dup"
    assert CallSession.objects.filter(source="pipecat-prod", external_id="CA-dup").get() == existing


# --- What is not adoptable, and recordings that are not audio ----------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        {"transcript.txt": b"agent: hello"},
        {"transcript.txt": b"agent: hello", "meta.json": json.dumps({"owner": "carol"}).encode()},
        {"meta.json": json.dumps({"owner": "carol"}).encode()},
        {"notes.bin": b"\x00\x01"},
    ],
    ids=["transcript", "transcript-and-meta", "meta-only", "unknown-file"],
)
def test_it_does_not_adopt_a_folder_without_audio(files, carol, admin_user, api_client_for, recordings_root):
    sid = uuid.uuid4()
    folder = recordings_root / "sessions" / str(sid)
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)

    for user in (carol, admin_user):
        response = api_client_for(user).get(url(sid))
        assert response.status_code == 404
        assert response.json() == NOT_FOUND_SESSION
    assert counts() == (0, 0, 0)


def test_it_does_not_adopt_an_empty_folder_or_a_file_in_place_of_one(admin_user, api_client_for, recordings_root):
    empty = uuid.uuid4()
    (recordings_root / "sessions" / str(empty)).mkdir(parents=True)
    a_file = uuid.uuid4()
    (recordings_root / "sessions" / str(a_file)).write_bytes(wav_bytes())
    client = api_client_for(admin_user)

    for sid in (empty, a_file):
        response = client.get(url(sid))
        assert response.status_code == 404
        assert response.json() == NOT_FOUND_SESSION
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(
    ("audio", "reason"),
    [
        (b"this is not audio, just a text file with a .wav name\n", "not a recognised audio format"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", "not a recognised audio format"),
        (b"", "empty"),
    ],
    ids=["text", "riff-but-not-wave", "zero-bytes"],
)
def test_it_adopts_a_recording_that_is_not_audio_and_fails_its_ingest(
    audio, reason, carol, api_client_for, recordings_root, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    sid, _ = write_folder(recordings_root, audio=audio)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api_client_for(carol).get(url(sid))

    assert len(callbacks) == 1
    assert response.status_code == 200
    assert (response.json()["adopted"], response.json()["recording_status"]) == (True, "pending")
    session = CallSession.objects.get(pk=sid)
    assert session.origin == CallSession.Origin.ADOPTED
    assert session.recording_status == CallSession.RecordingStatus.FAILED
    recording = Recording.objects.get(session=session)
    assert recording.status == Recording.Status.FAILED
    assert reason in recording.failure_reason.lower()
    assert (recording.sha256, recording.size_bytes) == ("", None)
    assert recording.ingested_at is not None
    again = api_client_for(carol).get(url(sid))
    assert again.json()["recording"]["status"] == "failed"
    assert again.json()["recording"]["stream_url"] is None
    assert again.json()["recording"]["failure_reason"] == recording.failure_reason


def test_it_prefers_the_conventional_audio_name(carol, api_client_for, recordings_root):
    sid, folder = write_folder(recordings_root, audio=wav_bytes(), audio_name="recording.wav")
    (folder / "a-backup.mp3").write_bytes(b"ID3" + b"\x00" * 20)

    response = api_client_for(carol).get(url(sid))

    assert response.status_code == 200
    assert Recording.objects.get(session_id=sid).file == f"sessions/{sid}/recording.wav"


# --- Races -------------------------------------------------------------------------------------------------


def test_it_returns_the_session_when_a_concurrent_request_adopts_it_first(
    carol, recordings_root, monkeypatch: pytest.MonkeyPatch
):
    # Regression: a request whose lookup ran just before another request's adoption committed answered 404.
    sid, _ = write_folder(recordings_root, audio=wav_bytes())
    real_lookup = get_call_session_for_user
    lookups: list[str] = []

    def lookup_then_lose_the_race(**kwargs: Any) -> CallSession:
        lookups.append(kwargs["session_id"])
        try:
            return real_lookup(**kwargs)
        except SessionNotFound:
            if len(lookups) == 1:
                # Another request (same manager, another tab) adopts and commits right after our lookup.
                assert orphan_adopt(session_id=uuid.UUID(kwargs["session_id"]), requester=carol) is not None
            raise

    monkeypatch.setattr(services, "get_call_session_for_user", lookup_then_lose_the_race)

    session, adopted = call_session_get_or_adopt(user=carol, session_id=str(sid))

    assert (session.pk, adopted) == (sid, False)
    assert counts() == (1, 1, 1)
