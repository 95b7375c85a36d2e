"""The hand-tuned read and write paths: the session detail's compiled (and, on PostgreSQL, prepared) query, and
the ingest's single transaction of results. Their plain-ORM equivalents are what the other test files pin; these
tests hold what the tuning could get wrong: one user's values in another's cached query, a prepared statement
lost with its database session, a claim left behind when the results could not be written."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from django.db import DatabaseError, connection

from calls import ingest
from calls.ingest import session_ingest
from calls.models import CallEvent, CallSession, Recording, Transcript, TranscriptSegment
from calls.selectors import (
    SessionNotFound,
    call_session_detail_by_external_id,
    call_session_detail_for_user,
    call_session_search_q,
)
from crm.models import User
from tests.audio import speech_wav
from tests.factories import CallSessionFactory, make_integration


def _detail_ids(user: User, *sessions: CallSession) -> list[str]:
    """The ids among ``sessions`` whose detail ``user`` gets (the others answer SessionNotFound)."""
    seen = []
    for session in sessions:
        with contextlib.suppress(SessionNotFound):
            seen.append(str(call_session_detail_for_user(user=user, session_id=str(session.pk)).session["id"]))
    return seen


@pytest.mark.django_db
def test_it_serves_each_user_only_what_the_access_rule_lets_them_see_through_the_cached_query(
    alice, bob, carol, charlie, dave, admin_user
):
    # Every call below after the first of each kind reuses the query compiled for that kind of user.
    alices = CallSessionFactory.create(owner=alice, team=alice.team)
    bobs = CallSessionFactory.create(owner=bob, team=bob.team)
    charlies = CallSessionFactory.create(owner=charlie, team=charlie.team)
    unassigned = CallSessionFactory.create(owner=None, team=None)
    everything = (alices, bobs, charlies, unassigned)
    ids = {s: str(s.pk) for s in everything}

    assert _detail_ids(alice, *everything) == [ids[alices]]
    assert _detail_ids(bob, *everything) == [ids[bobs]]
    assert _detail_ids(charlie, *everything) == [ids[charlies]]
    assert _detail_ids(carol, *everything) == [ids[alices], ids[bobs], ids[unassigned]]
    assert _detail_ids(dave, *everything) == [ids[charlies], ids[unassigned]]
    assert _detail_ids(admin_user, *everything) == [ids[s] for s in everything]
    assert _detail_ids(alice, *everything) == [ids[alices]]  # the owners' query again, with alice's values


@pytest.mark.django_db
def test_it_keeps_integrations_to_their_source_and_looks_up_by_external_id(alice):
    own = CallSessionFactory.create(owner=alice, source="pipecat-prod", external_id="CA-1")
    other = CallSessionFactory.create(owner=alice, source="twilio", external_id="CA-1")
    pipecat, _ = make_integration("pipecat-prod", owner=alice)
    twilio, _ = make_integration("twilio", owner=alice)

    assert _detail_ids(pipecat.user, own, other) == [str(own.pk)]
    assert _detail_ids(twilio.user, own, other) == [str(other.pk)]
    found = call_session_detail_by_external_id(user=twilio.user, source="twilio", external_id="CA-1")
    assert found.session["id"] == other.pk
    with pytest.raises(SessionNotFound):
        call_session_detail_by_external_id(user=pipecat.user, source="twilio", external_id="CA-1")

    pipecat.is_active = False
    pipecat.save(update_fields=["is_active"])
    pipecat.user.refresh_from_db()
    assert _detail_ids(pipecat.user, own, other) == []


@pytest.mark.django_db(transaction=True)
def test_it_answers_the_detail_again_on_a_new_database_connection(alice):
    # On PostgreSQL the detail's statement is prepared once per database session: a new connection has none.
    session = CallSessionFactory.create(owner=alice)
    CallEvent.objects.create(session=session, type="initiated", occurred_at=session.created_at)
    first = call_session_detail_for_user(user=alice, session_id=str(session.pk))
    connection.close()
    again = call_session_detail_for_user(user=alice, session_id=str(session.pk))
    assert again == first
    assert [event["type"] for event in again.events] == ["initiated"]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech_wav(tmp_path_factory.mktemp("audio") / "speech.wav", "hello from the fast path", rate=8000)


def _session_with_files(owner: User, root: Path, speech: Path, transcript: str) -> CallSession:
    session = CallSessionFactory.create(owner=owner, recording_status=CallSession.RecordingStatus.PENDING)
    folder = root / "sessions" / str(session.pk)
    folder.mkdir(parents=True)
    (folder / "recording.wav").write_bytes(speech.read_bytes())
    (folder / "transcript.txt").write_text(transcript, encoding="utf-8")
    Recording.objects.create(session=session, file=f"sessions/{session.pk}/recording.wav")
    return session


@pytest.mark.django_db
def test_it_gives_the_claim_back_when_the_results_cannot_be_written(alice, recordings_root, speech, monkeypatch):
    session = _session_with_files(alice, recordings_root, speech, "Agent: Hello.\nCaller: Hi.")

    def database_gone(**kwargs: object) -> None:
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(ingest, "_transcript_write", database_gone)
    with pytest.raises(DatabaseError):
        session_ingest(session_id=session.pk)
    # Nothing of the results was kept (one transaction), and the retry may claim the recording at once.
    recording = Recording.objects.get(session=session)
    assert recording.status == Recording.Status.PENDING
    assert recording.sha256 == ""
    assert CallSession.objects.get(pk=session.pk).recording_status == CallSession.RecordingStatus.PENDING

    monkeypatch.undo()
    assert session_ingest(session_id=session.pk) == Recording.Status.AVAILABLE
    assert Recording.objects.get(session=session).attempts == 2
    assert Transcript.objects.get(session=session).text == "Agent: Hello.\nCaller: Hi."


@pytest.mark.django_db
def test_it_replaces_the_transcript_and_its_segments_when_the_file_changes(alice, recordings_root, speech):
    session = _session_with_files(alice, recordings_root, speech, "Agent: Hello.\nCaller: Hi.")
    assert session_ingest(session_id=session.pk) == Recording.Status.AVAILABLE
    first = Transcript.objects.get(session=session)
    assert list(first.segments.order_by("position").values_list("speaker", "text")) == [
        ("Agent", "Hello."),
        ("Caller", "Hi."),
    ]

    folder = recordings_root / "sessions" / str(session.pk)
    (folder / "transcript.txt").write_text("Agent: Hello again.\nCaller: Yes?\nAgent: Bye.", encoding="utf-8")
    assert session_ingest(session_id=session.pk) == Recording.Status.AVAILABLE  # already ingested: not claimed

    replaced = Transcript.objects.get(session=session)
    assert replaced.pk == first.pk  # the same row, updated in place
    assert replaced.created_at == first.created_at
    assert replaced.text == "Agent: Hello again.\nCaller: Yes?\nAgent: Bye."
    assert list(TranscriptSegment.objects.filter(transcript=replaced).order_by("position").values_list("text")) == [
        ("Hello again.",),
        ("Yes?",),
        ("Bye.",),
    ]
    # The search index follows (PostgreSQL: the search vector written with the row).
    assert list(CallSession.objects.filter(call_session_search_q("bye")).values_list("pk", flat=True)) == [session.pk]
