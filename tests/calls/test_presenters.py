"""The GET endpoints' fast path (row selectors + ``calls.presenters``) against the DRF output serializers.

The serializers are the documented schema; the presenters must render exactly what they render. These tests are
that contract: on sessions with every optional part present and absent, the presenters' output must equal the
serializers' (as Python data and as the JSON bytes the API sends), and so must the endpoints' answers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from calls.models import CallEvent, CallSession, Note, Recording, Transcript, TranscriptSegment
from calls.presenters import present_session_detail, present_session_list
from calls.selectors import (
    SessionFilters,
    SessionNotFound,
    call_session_detail_by_external_id,
    call_session_detail_for_user,
    call_session_list,
    call_session_rows,
    get_call_session_for_user,
)
from calls.serializers import CallSessionDetailOutputSerializer, CallSessionOutputSerializer
from campaigns.models import Campaign, Contact
from crm.models import User
from tests.factories import CallSessionFactory

pytestmark = pytest.mark.django_db

# Microseconds on some values and none on others: isoformat() writes them only when there are some.
T0 = datetime(2025, 3, 30, 0, 59, 58, 250_000, tzinfo=UTC)  # an hour before Europe/Berlin's DST switch


def _rich_session(owner: User, *, with_campaign: bool) -> CallSession:
    """A session with every part the detail shows: events, notes, an available recording, a transcript."""
    campaign = contact = None
    if with_campaign:
        assert owner.team is not None
        campaign = Campaign.objects.create(name="Spring renewals", team=owner.team, manager=owner)
        contact = Contact.objects.create(team=owner.team, owner=owner, name="Zoë Müller", phone="+4930123456")
    session = CallSessionFactory.create(
        owner=owner,
        campaign=campaign,
        contact=contact,
        direction=CallSession.Direction.OUTBOUND,
        status=CallSession.Status.COMPLETED,
        origin=CallSession.Origin.CAMPAIGN if with_campaign else CallSession.Origin.API,
        auto_created=True,
        started_at=T0,
        answered_at=T0 + timedelta(seconds=4, microseconds=750_000),
        ended_at=T0 + timedelta(minutes=2),
        duration_ms=115_250,
        end_reason="hangup by callee",
        recording_status=CallSession.RecordingStatus.AVAILABLE,
        metadata={"agent": "pipecat", "nested": {"list": [1, 2.5, None, True], "ünïcode": "☎"}, "n": 0},
        last_event_at=T0 + timedelta(minutes=2),
    )
    timeline = [
        ("initiated", "evt-1", 0, "queued", "initiated", {"sip": {"code": 100}}),
        ("answered", "", 4, "initiated", "in_progress", {}),
        ("dtmf", "evt-3", 30, "", "", {"digits": "42#"}),
        ("dtmf", "evt-4", 30, "", "", {"digits": "0"}),  # same instant: the id orders them
        ("completed", "evt-5", 120, "in_progress", "completed", {"reason": "bye", "ok": False}),
    ]
    for event_type, event_id, seconds, before, after, data in timeline:
        CallEvent.objects.create(
            session=session,
            type=event_type,
            event_id=event_id,
            occurred_at=T0 + timedelta(seconds=seconds),
            data=data,
            status_before=before,
            status_after=after,
        )
    Note.objects.create(session=session, author=owner, body="Wants the enterprise tier.\nCall back Thursday.")
    Note.objects.create(session=session, author=owner, body="Sent the quote ✅")
    Recording.objects.create(
        session=session,
        file=f"sessions/{session.pk}/recording.wav",
        format="wav",
        codec="pcm_s16le",
        content_type="audio/wav",
        duration_ms=120_000,
        size_bytes=3_840_044,
        sha256="ab" * 32,
        channels=2,
        sample_rate=16_000,
        status=Recording.Status.AVAILABLE,
        ingested_at=T0 + timedelta(minutes=3),
        waveform=[0.1, 0.5],
        talk_ms=[60_000, 40_000],
    )
    transcript = Transcript.objects.create(
        session=session,
        text="Hello?\nHi, this is Callbook.",
        language="en",
        source=Transcript.Source.ASR,
        encoding="utf-8",
        had_replacements=True,
    )
    TranscriptSegment.objects.create(transcript=transcript, position=1, speaker="agent", text="Hi, this is Callbook.")
    TranscriptSegment.objects.create(
        transcript=transcript, position=0, speaker="caller", start_ms=0, end_ms=900, text="Hello?"
    )
    return session


def _lean_session(owner: User | None) -> CallSession:
    """Nothing optional: no owner or team (an unassigned session), no events, notes, recording or transcript."""
    return CallSessionFactory.create(owner=owner, team=None, metadata={}, external_id="")


def _request() -> Request:
    return Request(APIRequestFactory().get("/api/crm/sessions/"))


def _assert_same(fast: Any, drf: Any) -> None:
    # Equal as data (a readable diff) and as the bytes the API sends (True == 1 in Python, not in JSON).
    assert fast == drf
    assert JSONRenderer().render(fast) == JSONRenderer().render(drf)


def _detail_both(user: User, session: CallSession, request: Request | None, *, adopted: bool = False) -> None:
    instance = get_call_session_for_user(user=user, session_id=str(session.pk), details=True)
    drf = CallSessionDetailOutputSerializer(instance, context={"request": request, "adopted": adopted}).data
    rows = call_session_detail_for_user(user=user, session_id=str(session.pk))
    _assert_same(present_session_detail(rows, request=request, adopted=adopted), drf)


@pytest.mark.parametrize("with_campaign", [True, False])
@pytest.mark.parametrize("with_request", [True, False])
@pytest.mark.parametrize("adopted", [False, True])
def test_the_detail_presenter_renders_what_the_serializer_renders(
    alice: User, with_campaign: bool, with_request: bool, adopted: bool
) -> None:
    session = _rich_session(alice, with_campaign=with_campaign)
    _detail_both(alice, session, _request() if with_request else None, adopted=adopted)


@pytest.mark.parametrize(
    "recording_status", [Recording.Status.PENDING, Recording.Status.FAILED, Recording.Status.DELETED]
)
def test_the_detail_presenter_matches_for_a_recording_that_cannot_be_played(alice: User, recording_status: str) -> None:
    session = _rich_session(alice, with_campaign=False)
    Recording.objects.filter(session=session).update(
        status=recording_status, failure_reason="decoder said no", ingested_at=None, channels=None
    )
    _detail_both(alice, session, _request())


def test_the_detail_presenter_matches_for_a_session_with_nothing_optional(admin_user: User) -> None:
    _detail_both(admin_user, _lean_session(None), _request())


def test_the_detail_presenter_matches_for_a_transcript_without_segments(alice: User) -> None:
    session = _rich_session(alice, with_campaign=True)
    TranscriptSegment.objects.filter(transcript__session=session).delete()
    _detail_both(alice, session, _request())


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/St_Johns"])
def test_the_presenters_match_in_another_time_zone(settings: Any, alice: User, zone: str) -> None:
    settings.TIME_ZONE = zone  # DRF writes datetimes in the current time zone: "+02:00", "-02:30", not "Z"
    session = _rich_session(alice, with_campaign=True)
    _detail_both(alice, session, _request())
    fast = present_session_list(call_session_rows(user=alice, filters=SessionFilters()), request=None)
    assert not fast[0]["started_at"].endswith("Z")
    instances = list(call_session_list(user=alice, filters=SessionFilters()))
    _assert_same(fast, CallSessionOutputSerializer(instances, many=True, context={"request": None}).data)


def test_the_detail_by_external_id_matches(alice: User) -> None:
    session = _rich_session(alice, with_campaign=True)
    drf = CallSessionDetailOutputSerializer(
        get_call_session_for_user(user=alice, session_id=str(session.pk), details=True),
        context={"request": None, "adopted": False},
    ).data
    rows = call_session_detail_by_external_id(user=alice, source=session.source, external_id=session.external_id)
    _assert_same(present_session_detail(rows, request=None), drf)


@pytest.mark.parametrize("with_request", [True, False])
def test_the_list_presenter_renders_what_the_serializer_renders(
    alice: User, admin_user: User, with_request: bool
) -> None:
    _rich_session(alice, with_campaign=True)
    _rich_session(alice, with_campaign=False)
    _lean_session(None)
    CallSessionFactory.create(owner=alice, recording_status=CallSession.RecordingStatus.FAILED)
    request = _request() if with_request else None
    ordering = ("-created_at", "-id")
    instances = list(call_session_list(user=admin_user, filters=SessionFilters()).order_by(*ordering))
    rows = list(call_session_rows(user=admin_user, filters=SessionFilters()).order_by(*ordering))
    assert len(rows) == len(instances) == 4
    drf = CallSessionOutputSerializer(instances, many=True, context={"request": request}).data
    _assert_same(present_session_list(rows, request=request), drf)


def test_the_endpoints_answer_what_the_serializers_render(alice: User, api_client_for: Any) -> None:
    session = _rich_session(alice, with_campaign=True)
    _rich_session(alice, with_campaign=False)
    client = api_client_for(alice)
    request = _request()  # http://testserver, as the test client's requests

    detail = client.get(f"/api/crm/sessions/{session.pk}")
    instance = get_call_session_for_user(user=alice, session_id=str(session.pk), details=True)
    drf = CallSessionDetailOutputSerializer(instance, context={"request": request, "adopted": False}).data
    assert detail.content == JSONRenderer().render(drf)

    by_external = client.get(f"/api/crm/sessions/by-external/{session.source}/{session.external_id}")
    assert by_external.content == detail.content

    listing = client.get("/api/crm/sessions/?page_size=1")
    body = listing.json()
    first = call_session_list(user=alice, filters=SessionFilters()).order_by("-created_at", "-id")[:1]
    assert body["results"] == CallSessionOutputSerializer(list(first), many=True, context={"request": request}).data
    assert body["next"] is not None
    assert body["previous"] is None


def test_the_row_selectors_keep_the_access_rule(alice: User, bob: User, carol: User, charlie: User) -> None:
    session = _rich_session(alice, with_campaign=True)
    for user, visible in ((alice, True), (carol, True), (bob, False), (charlie, False)):
        try:
            call_session_detail_for_user(user=user, session_id=str(session.pk))
        except SessionNotFound:
            assert not visible
        else:
            assert visible
        listed = [row["id"] for row in call_session_rows(user=user, filters=SessionFilters())]
        assert listed == ([session.pk] if visible else [])
    with pytest.raises(SessionNotFound):
        call_session_detail_for_user(user=alice, session_id=str(uuid.uuid4()))
    with pytest.raises(SessionNotFound):
        call_session_detail_for_user(user=alice, session_id="not-a-uuid")
    CallSession.objects.filter(pk=session.pk).update(archived_at=T0)
    with pytest.raises(SessionNotFound):
        call_session_detail_for_user(user=alice, session_id=str(session.pk))
