"""Adopting orphaned recordings: a folder ``sessions/<id>/`` with audio but no session row becomes a session.

This is what makes a call that was handled "directly" (its recording written to storage by a process that
never told Callbook) findable: the first authorised look at its id, or the periodic sweep, creates the row.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from calls import states
from calls.models import CallEvent, CallSession, Recording
from calls.selectors import integration_of, visible_sessions
from calls.storage import SessionFolder, inspect_session_folder
from campaigns.models import Campaign
from crm.models import Team, User

logger = logging.getLogger(__name__)


@dataclass
class Ownership:
    owner: User | None
    team: Team | None
    campaign: Campaign | None
    fields: dict[str, Any]


def _text(meta: dict[str, Any], key: str, limit: int, problems: list[str]) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int) or len(str(value)) > limit:
        problems.append(f"meta.json: {key} must be a string of at most {limit} characters; ignored.")
        return ""
    return str(value)


def _time(meta: dict[str, Any], key: str, problems: list[str]) -> datetime | None:
    value = meta.get(key)
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed but impossible, e.g. February 30th
        parsed = None
    if parsed is None:
        problems.append(f"meta.json: {key} is not an ISO 8601 time; ignored.")
        return None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def read_ownership(*, folder: SessionFolder) -> Ownership:
    """Owner, team, campaign and session fields from meta.json; each invalid field is reported and ignored."""
    meta = folder.meta or {}
    problems = folder.problems
    owner = team = None
    campaign = None
    username = _text(meta, "owner", 150, problems)
    if username:
        owner = User.objects.filter(username=username, is_active=True).select_related("team").first()
        if owner is None or owner.is_integration:
            problems.append(f"meta.json: owner {username!r} is not an active user; ignored.")
            owner = None
    team_name = _text(meta, "team", 120, problems)
    if team_name:
        team = Team.objects.filter(name=team_name).first()
        if team is None:
            problems.append(f"meta.json: team {team_name!r} does not exist; ignored.")
    if team is None and owner is not None:
        team = owner.team
    campaign_ref = meta.get("campaign")
    if campaign_ref is not None:
        lookup = Campaign.objects.filter(team=team) if team else Campaign.objects.none()
        if isinstance(campaign_ref, int) or (isinstance(campaign_ref, str) and campaign_ref.isdigit()):
            campaign = lookup.filter(pk=int(campaign_ref)).first()
        elif isinstance(campaign_ref, str):
            campaign = lookup.filter(name=campaign_ref).first()
        if campaign is None:
            problems.append(f"meta.json: campaign {campaign_ref!r} is not a campaign of the session's team; ignored.")
    direction = _text(meta, "direction", 8, problems)
    if direction and direction not in CallSession.Direction.values:
        problems.append(f"meta.json: direction {direction!r} is not inbound or outbound; ignored.")
        direction = ""
    fields: dict[str, Any] = {
        "source": _text(meta, "source", 64, problems) or "storage",
        "external_id": _text(meta, "external_id", 255, problems),
        "from_number": _text(meta, "from_number", 64, problems) or _text(meta, "from", 64, problems),
        "to_number": _text(meta, "to_number", 64, problems) or _text(meta, "to", 64, problems),
        "direction": direction or CallSession.Direction.INBOUND,
        "started_at": _time(meta, "started_at", problems),
        "ended_at": _time(meta, "ended_at", problems),
    }
    if fields["started_at"] and fields["ended_at"] and fields["ended_at"] < fields["started_at"]:
        problems.append("meta.json: ended_at is before started_at; ended_at ignored.")
        fields["ended_at"] = None
    return Ownership(owner=owner, team=team, campaign=campaign, fields=fields)


def orphan_adopt(*, session_id: uuid.UUID, requester: User | None) -> CallSession | None:
    """Adopt ``sessions/<session_id>/`` if it holds audio and has no row; None when there is nothing to adopt
    or ``requester`` may not see the result (then nothing is written).

    ``requester=None`` is the periodic sweep: meta.json's owner, else unassigned for managers to triage.
    Concurrent calls for one id create one row (the primary key decides); the others read it.
    """
    folder = inspect_session_folder(session_id=session_id)
    if folder is None or folder.audio is None:
        return None
    ownership = read_ownership(folder=folder)
    owner, team = ownership.owner, ownership.team
    integration = integration_of(requester) if requester is not None else None
    if integration is not None and not (folder.meta or {}).get("source"):
        # An integration asking for a folder adopts it as its own call unless meta.json names another source.
        ownership.fields["source"] = integration.name
    if owner is None and requester is not None:
        if integration is not None:
            owner = integration.default_owner
            team = team or integration.default_team
        elif requester.is_manager or requester.is_admin:
            owner, team = requester, team or requester.team
        else:
            # An agent may adopt only what meta.json assigns to them.
            return None
    return _create_adopted(folder=folder, ownership=ownership, owner=owner, team=team, requester=requester)


def _create_adopted(
    *, folder: SessionFolder, ownership: Ownership, owner: User | None, team: Team | None, requester: User | None
) -> CallSession | None:
    fields = dict(ownership.fields)
    ended_at = fields.pop("ended_at")
    started_at = fields["started_at"]
    if (
        fields["external_id"]
        and CallSession.objects.filter(source=fields["source"], external_id=fields["external_id"]).exists()
    ):
        folder.problems.append(
            f"meta.json: external_id {fields['external_id']!r} is already used by another session of "
            f"{fields['source']!r}; not copied."
        )
        fields["external_id"] = ""
    session = CallSession(
        id=folder.session_id,
        owner=owner,
        team=team,
        campaign=ownership.campaign,
        status=states.Status.COMPLETED,
        origin=CallSession.Origin.ADOPTED,
        auto_created=True,
        ended_at=ended_at,
        duration_ms=int((ended_at - started_at).total_seconds() * 1000) if ended_at and started_at else None,
        end_reason="adopted from storage",
        recording_status=CallSession.RecordingStatus.PENDING,
        metadata={"adoption": {"files": folder.files, "problems": folder.problems}} if folder.problems else {},
        last_event_at=timezone.now(),
        **fields,
    )
    try:
        with transaction.atomic():
            session.save(force_insert=True)
            if requester is not None and not visible_sessions(user=requester).filter(pk=session.pk).exists():
                # Never let someone create a row they could not see: it would hint the id exists.
                transaction.set_rollback(True)
                return None
            Recording.objects.create(session=session, file=folder.audio or "", status=Recording.Status.PENDING)
            CallEvent.objects.create(
                session=session,
                type="adopted",
                occurred_at=session.last_event_at or timezone.now(),
                data={
                    "by": requester.username if requester else "sweep",
                    "files": folder.files,
                    "problems": folder.problems,
                },
            )
            transaction.on_commit(lambda: _queue_ingest(session.pk))
    except IntegrityError:
        # Someone else adopted it first (or the id was taken meanwhile): theirs is the row.
        return None
    logger.info(
        "adopted orphaned recording %s (owner %s, by %s)%s",
        session.pk,
        owner.username if owner else "unassigned",
        requester.username if requester else "sweep",
        f"; problems: {'; '.join(folder.problems)}" if folder.problems else "",
    )
    return session


def _queue_ingest(session_id: uuid.UUID) -> None:
    from calls.tasks import ingest_enqueue  # noqa: PLC0415  # tasks import this module

    ingest_enqueue(session_id=session_id)
