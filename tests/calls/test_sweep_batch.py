"""The orphan sweep's batch paths (calls/maintenance.py, calls/adoption.py): adoption in bulk writes what adopting
one folder at a time writes, and ingests are queued only for folders that have something to ingest."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from calls import adoption, maintenance, storage, tasks
from calls.adoption import orphan_adopt
from calls.maintenance import orphans_sweep
from calls.models import CallEvent, CallSession, Recording, StorageFolder, Transcript
from campaigns.models import Campaign
from crm.models import Team, User
from tests.calls.test_maintenance import wav_bytes
from tests.factories import CallSessionFactory, RecordingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_speech_to_text(settings: Any) -> None:
    settings.TRANSCRIPTION_BACKEND = "none"


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    calls: list[uuid.UUID] = []

    def enqueue(*, session_id: uuid.UUID) -> bool:
        calls.append(session_id)
        return True

    monkeypatch.setattr(tasks, "ingest_enqueue", enqueue)
    return calls


def write_folder(
    root: Path,
    session_id: uuid.UUID | None = None,
    *,
    audio: bool = True,
    transcript: bytes | None = None,
    meta: dict[str, Any] | None = None,
) -> uuid.UUID:
    sid = session_id or uuid.uuid4()
    folder = root / "sessions" / str(sid)
    folder.mkdir(parents=True, exist_ok=True)
    if audio:
        (folder / "recording.wav").write_bytes(wav_bytes())
    if transcript is not None:
        (folder / "transcript.txt").write_bytes(transcript)
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta))
    return sid


def adopted_rows(session_id: uuid.UUID) -> dict[str, Any]:
    """Everything adoption wrote for one folder, without what differs between two folders (ids, clocks)."""
    session = CallSession.objects.get(pk=session_id)
    recordings = list(Recording.objects.filter(session_id=session_id).values_list("file", "status"))
    events = list(CallEvent.objects.filter(session_id=session_id).values_list("type", "data"))
    return {
        "session": {
            "owner": session.owner_id,
            "team": session.team_id,
            "campaign": session.campaign_id,
            "status": session.status,
            "origin": session.origin,
            "auto_created": session.auto_created,
            "source": session.source,
            "from_number": session.from_number,
            "to_number": session.to_number,
            "direction": session.direction,
            "started_at": session.started_at,
            "ended_at": session.ended_at,
            "duration_ms": session.duration_ms,
            "end_reason": session.end_reason,
            "recording_status": session.recording_status,
            "metadata": session.metadata,
            "last_event_at_set": session.last_event_at is not None,
        },
        "recordings": [(file.replace(str(session_id), "<id>"), status) for file, status in recordings],
        "events": events,
    }


METAS: list[dict[str, Any] | None] = [
    {
        "owner": "alice",
        "campaign": "Spring",
        "source": "media",
        "from": "+14155550100",
        "to_number": "+14155550199",
        "direction": "outbound",
        "started_at": "2025-03-01T09:00:00Z",
        "ended_at": "2025-03-01T09:01:35",
    },
    {"owner": "nobody", "team": "No such team", "campaign": 987654, "direction": "sideways", "ended_at": "30 Feb"},
    {"team": "Sales", "campaign": "by-id"},
    {"owner": "bob", "team": "Other team", "campaign": "Spring"},  # Spring is not a campaign of Other team
    {"owner": "alice", "source": "media", "external_id": "taken-1"},
    {"owner": "integration-user", "to": 5550100, "started_at": "2025-03-01T10:00:00Z", "ended_at": "2025-03-01"},
    None,
]


def test_batch_adoption_writes_exactly_what_adopting_each_folder_alone_writes(
    alice: User,
    bob: User,
    sales_team: Team,
    other_team: Team,
    integration: Any,
    recordings_root: Path,
    queued: list[uuid.UUID],
    django_capture_on_commit_callbacks: Any,
) -> None:
    spring = Campaign.objects.create(name="Spring", team=sales_team)
    by_id = Campaign.objects.create(name="Summer", team=sales_team)
    metas = [dict(m, campaign=str(by_id.pk)) if m and m.get("campaign") == "by-id" else m for m in METAS]
    metas[5] = dict(metas[5] or {}, owner=integration[0].user.username)  # an integration's user is no owner
    CallSessionFactory.create(owner=alice, source="media", external_id="taken-1")
    existing = CallSessionFactory.create(owner=alice)
    RecordingFactory.create(session=existing)
    write_folder(recordings_root, existing.pk, transcript=b"Agent: hi\n")
    Transcript.objects.create(session=existing, text="Agent: hi")
    batch = [write_folder(recordings_root, meta=meta) for meta in metas]
    waiting = write_folder(recordings_root, audio=False, transcript=b"Agent: early\n")

    with django_capture_on_commit_callbacks(execute=True):
        report = orphans_sweep()

    assert sorted(report.adopted) == sorted(batch)
    assert (report.attached, report.without_audio, report.unchanged, report.folders) == ([], 1, 0, len(batch) + 2)
    assert sorted(queued) == sorted(batch)  # the complete session's folder queues nothing
    assert not CallSession.objects.filter(pk=waiting).exists()
    ledger = dict(StorageFolder.objects.values_list("session_id", "state"))
    assert ledger == {**dict.fromkeys(batch, StorageFolder.State.ADOPTED), existing.pk: StorageFolder.State.HAS_SESSION}
    assert Recording.objects.filter(session_id__in=batch, status=Recording.Status.PENDING).count() == len(batch)
    assert CallEvent.objects.filter(session_id__in=batch, type="adopted").count() == len(batch)
    assert CallEvent.objects.filter(session_id__in=batch).count() == len(batch)
    assert CallSession.objects.get(pk=batch[0]).campaign == spring

    # The same folders adopted one at a time, outside any sweep: the same rows.
    for meta, swept in zip(metas, batch, strict=True):
        alone = write_folder(recordings_root, meta=meta)
        with django_capture_on_commit_callbacks(execute=True):
            assert orphan_adopt(session_id=alone, requester=None) is not None
        assert adopted_rows(alone) == adopted_rows(swept), meta
    assert len(queued) == 2 * len(batch)


def test_batch_adoption_gives_an_external_id_named_twice_to_one_folder(recordings_root: Path, queued: list[Any]):
    first = write_folder(recordings_root, meta={"source": "media", "external_id": "dup-1"})
    second = write_folder(recordings_root, meta={"source": "media", "external_id": "dup-1"})

    report = orphans_sweep()

    assert sorted(report.adopted) == sorted([first, second])
    rows = dict(CallSession.objects.values_list("pk", "external_id"))
    assert sorted(rows.values()) == ["", "dup-1"]
    loser = next(pk for pk, external_id in rows.items() if external_id == "")
    problems = CallSession.objects.get(pk=loser).metadata["adoption"]["problems"]
    assert problems == ["meta.json: external_id 'dup-1' is already used by another session of 'media'; not copied."]


def test_the_sweep_leaves_alone_a_folder_adopted_meanwhile_by_someone_else(
    carol: User, recordings_root: Path, queued: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch
):
    raced = write_folder(recordings_root)
    other = write_folder(recordings_root)
    real_write = adoption.AdoptionBatch.write

    def someone_adopts_first(self: adoption.AdoptionBatch) -> adoption.BatchAdoption:
        # A manager opens the call page after the sweep looked at the folder, before it writes.
        assert orphan_adopt(session_id=raced, requester=carol) is not None
        return real_write(self)

    monkeypatch.setattr(adoption.AdoptionBatch, "write", someone_adopts_first)

    report = orphans_sweep()

    assert report.adopted == [other]
    assert CallEvent.objects.get(session_id=raced, type="adopted").data["by"] == "carol"
    assert Recording.objects.filter(session_id=raced).count() == 1
    assert CallSession.objects.get(pk=raced).owner == carol
    ledger = dict(StorageFolder.objects.values_list("session_id", "state"))
    assert ledger == {raced: StorageFolder.State.HAS_SESSION, other: StorageFolder.State.ADOPTED}


def test_the_sweep_adopts_alone_a_folder_the_bulk_insert_could_not_write(
    alice: User,
    recordings_root: Path,
    queued: list[uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
):
    sid = write_folder(recordings_root, meta={"source": "media", "external_id": "late-1"})
    real_insert = adoption._batch_insert

    def external_id_taken_meanwhile(*args: Any) -> Any:
        CallSessionFactory.create(owner=alice, source="media", external_id="late-1")
        return real_insert(*args)

    monkeypatch.setattr(adoption, "_batch_insert", external_id_taken_meanwhile)

    with django_capture_on_commit_callbacks(execute=True):
        report = orphans_sweep()

    assert report.adopted == [sid]
    session = CallSession.objects.get(pk=sid)
    assert session.external_id == ""
    assert "external_id 'late-1' is already used" in session.metadata["adoption"]["problems"][0]
    assert StorageFolder.objects.get(session_id=sid).state == StorageFolder.State.ADOPTED
    assert queued == [sid]


def test_the_first_sweep_queues_no_ingest_for_complete_sessions(
    alice: User, recordings_root: Path, queued: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch
):
    complete = RecordingFactory.create(session__owner=alice).session
    Transcript.objects.create(session=complete, text="Agent: hello", file=f"sessions/{complete.pk}/transcript.txt")
    write_folder(recordings_root, complete.pk, transcript=b"Agent: hello\n")
    audio_only = RecordingFactory.create(session__owner=alice).session
    write_folder(recordings_root, audio_only.pk)
    pending = RecordingFactory.create(session__owner=alice, status=Recording.Status.PENDING).session
    write_folder(recordings_root, pending.pk)
    listed: list[str] = []
    real_holds = maintenance._holds_transcript

    def spy(session_id: str) -> bool:
        listed.append(session_id)
        return real_holds(session_id)

    def opened(**kwargs: Any) -> Any:
        raise AssertionError(f"a folder was opened: {kwargs!r}")

    monkeypatch.setattr(maintenance, "_holds_transcript", spy)
    for module in (maintenance, adoption, storage):
        monkeypatch.setattr(module, "inspect_session_folder", opened)

    report = orphans_sweep()

    assert (report.folders, report.adopted, report.attached, report.without_audio) == (3, [], [], 0)
    assert queued == [pending.pk]
    # Only the folder of a session without a transcript is listed (not read); the complete one is not touched.
    assert listed == [str(audio_only.pk)]
    assert StorageFolder.objects.filter(state=StorageFolder.State.HAS_SESSION).count() == 3
    assert orphans_sweep().unchanged == 3
    assert queued == [pending.pk]


def test_the_first_sweep_queues_a_transcript_that_arrived_for_a_complete_session(
    alice: User, recordings_root: Path, settings: Any, django_capture_on_commit_callbacks: Any
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    session = RecordingFactory.create(session__owner=alice, sha256="a" * 64).session
    write_folder(recordings_root, session.pk, transcript=b"Caller: the parcel never arrived\n")

    with django_capture_on_commit_callbacks(execute=True):
        report = orphans_sweep()

    assert (report.adopted, report.attached, report.unchanged) == ([], [], 0)
    assert Transcript.objects.get(session=session).text == "Caller: the parcel never arrived"
    assert Recording.objects.get(session=session).attempts == 0  # the recording was not ingested again
    assert StorageFolder.objects.get(session_id=session.pk).state == StorageFolder.State.HAS_SESSION


def test_the_sweep_costs_a_bounded_number_of_queries_per_batch(
    alice: User, recordings_root: Path, queued: list[uuid.UUID], django_assert_max_num_queries: Any
):
    orphans = [write_folder(recordings_root, meta={"owner": "alice", "external_id": f"e-{i}"}) for i in range(60)]
    known = [RecordingFactory.create(session__owner=alice).session.pk for _ in range(60)]
    for sid in known:
        write_folder(recordings_root, sid)

    with django_assert_max_num_queries(40):
        report = orphans_sweep()

    assert sorted(report.adopted) == sorted(orphans)
    assert queued == []  # the complete sessions queue nothing (the adoptions queue theirs on commit)
    assert StorageFolder.objects.count() == 120


_MODELS: tuple[Any, ...] = (CallSession, Recording, CallEvent)
_STAMPS = ("created_at", "updated_at", "received_at")


def test_the_sweeps_bulk_insert_writes_what_bulk_create_writes(alice: User, sales_team: Team) -> None:
    """``adoption._insert_rows`` (SQL written once per batch) against Django's ``bulk_create``, column by column;
    its auto_now timestamps are one time for the whole insert, also set on the rows it was given."""
    started = timezone.now() - timedelta(minutes=5)

    def rows() -> list[list[Any]]:
        sessions = [
            CallSession(
                id=uuid.uuid4(),
                owner=alice if n % 2 else None,
                team=sales_team,
                origin=CallSession.Origin.ADOPTED,
                auto_created=bool(n % 2),
                source="media",
                started_at=started + timedelta(seconds=n) if n else None,
                duration_ms=n * 1000 or None,
                metadata={} if n % 2 else {"adoption": {"files": ["recording.wav"], "problems": ["é"]}},
                last_event_at=started,
            )
            for n in range(3)
        ]
        recordings = [Recording(session=s, file="sessions/x/recording.wav") for s in sessions]
        events = [CallEvent(session=s, type="adopted", occurred_at=started, data={"by": "sweep"}) for s in sessions]
        return [sessions, recordings, events]

    def written(model: Any, sessions: list[CallSession]) -> list[dict[str, Any]]:
        key = "pk" if model is CallSession else "session_id"
        skip = {"id", "created_at", "updated_at", "received_at", "session"}
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in skip and f.name not in skip]
        found = model.objects.filter(**{f"{key}__in": [s.pk for s in sessions]}).values(key, *names)
        by_session = {row.pop(key): row for row in found}
        return [by_session[s.pk] for s in sessions]

    ours, theirs = rows(), rows()
    for model, mine, django in zip(_MODELS, ours, theirs, strict=True):
        adoption._insert_rows(model, mine, ignore_conflicts=model is CallSession)
        model.objects.bulk_create(django)
        assert written(model, ours[0]) == written(model, theirs[0]), model.__name__
    # One time per insert, on every stamp of every row, in the table as on the instances.
    for model, mine in zip(_MODELS, ours, strict=True):
        stamps = [f.attname for f in model._meta.concrete_fields if f.attname in _STAMPS]
        lookup = {"pk__in": [row.pk for row in mine]} if model is CallSession else {"session__in": ours[0]}
        in_table = {value for row in model.objects.filter(**lookup).values_list(*stamps) for value in row}
        on_rows = {getattr(row, name) for row in mine for name in stamps}
        assert in_table == on_rows, model.__name__
        if connection.vendor != "postgresql":  # there it is Django's bulk_create: a clock reading per row
            assert len(on_rows) == 1, model.__name__
