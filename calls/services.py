"""Writes of call sessions, events and notes. Every status change goes through calls.states."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from calls import states
from calls.models import CallEvent, CallSession, Note, Source
from calls.selectors import (
    SessionNotFound,
    get_call_session_for_user,
    integration_of,
    parse_session_id,
    visible_sessions,
)
from crm import metrics
from crm.models import Team, User

logger = logging.getLogger(__name__)


class SessionInputError(Exception):
    """Input a client can fix: answered with 400 and this message."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


class ExternalIdConflict(Exception):
    """The (source, external_id) pair belongs to a session the caller may not see."""


class NotAllowed(Exception):
    """The caller sees the session but may not do this to it."""


@dataclass
class SessionInput:
    source: str | None = None
    external_id: str = ""
    direction: str | None = None
    owner: str | None = None  # a username
    from_number: str = ""
    to_number: str = ""
    started_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str | None = None


@dataclass
class EventInput:
    type: str
    event_id: str = ""
    occurred_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventResult:
    session: CallSession
    event: CallEvent
    created: bool


# --- Who owns what -----------------------------------------------------------------------------------------


def _source_for(*, actor: User, requested: str | None) -> str:
    integration = integration_of(actor)
    if integration is not None:
        if requested and requested != integration.name:
            raise SessionInputError(
                f"This token belongs to the integration {integration.name!r}; it cannot report calls for "
                f"{requested!r}.",
                field="source",
                code="source_mismatch",
            )
        return integration.name
    return requested or "manual"


def _owner_and_team(*, actor: User, requested_owner: str | None) -> tuple[User | None, Team | None]:
    """Who owns a session ``actor`` creates: agents own theirs; managers and admins may name an owner."""
    integration = integration_of(actor)
    if requested_owner:
        owner = User.objects.filter(username=requested_owner, is_active=True).select_related("team").first()
        if owner is None or owner.is_integration:
            raise SessionInputError(f"No active user named {requested_owner!r}.", field="owner")
        allowed = (
            actor.is_admin
            or owner.pk == actor.pk
            or (actor.is_manager and owner.team is not None and owner.team.manager_id == actor.pk)
            or (integration is not None and integration.default_team_id in (None, owner.team_id))
        )
        if not allowed:
            raise SessionInputError(
                f"You cannot assign sessions to {requested_owner!r}.", field="owner", code="owner_not_allowed"
            )
        return owner, owner.team
    if integration is not None:
        owner = integration.default_owner
        return owner, (owner.team if owner is not None and owner.team_id else integration.default_team)
    return actor, actor.team


# --- Sessions ----------------------------------------------------------------------------------------------


def call_session_create(
    *, actor: User, data: SessionInput, origin: str = CallSession.Origin.API, auto_created: bool = False
) -> tuple[CallSession, bool]:
    """Create a session, or with ``source`` + ``external_id`` return the one that exists (created=False).

    Two racing requests for the same pair end with one row: the unique constraint decides, the loser reads the
    winner's row.
    """
    source = _source_for(actor=actor, requested=data.source)
    owner, team = _owner_and_team(actor=actor, requested_owner=data.owner)
    if data.external_id:
        existing = _existing_by_external_id(actor=actor, source=source, external_id=data.external_id)
        if existing is not None:
            return existing, False
    session = CallSession(
        source=source,
        external_id=data.external_id,
        owner=owner,
        team=team,
        direction=data.direction or CallSession.Direction.INBOUND,
        status=data.status or states.Status.QUEUED,
        origin=origin,
        auto_created=auto_created,
        from_number=data.from_number,
        to_number=data.to_number,
        started_at=data.started_at,
        metadata=data.metadata,
    )
    try:
        with transaction.atomic():
            session.save(force_insert=True)
    except IntegrityError:
        existing = _existing_by_external_id(actor=actor, source=source, external_id=data.external_id)
        if existing is None:
            raise
        return existing, False
    # Counted once the row is committed: a caller's transaction that rolls back created nothing.
    transaction.on_commit(metrics.SESSIONS_CREATED.labels(origin).inc)
    if auto_created:
        transaction.on_commit(metrics.SESSIONS_AUTO_CREATED.inc)
        logger.info(
            "auto-created call session %s for %s/%s (owner %s)",
            session.pk,
            source,
            data.external_id,
            owner.username if owner else "unassigned",
        )
    return session, True


def _existing_by_external_id(*, actor: User, source: str, external_id: str) -> CallSession | None:
    if not external_id:
        return None
    session = CallSession.objects.filter(source=source, external_id=external_id).first()
    if session is None:
        return None
    if session.archived_at is not None or not visible_sessions(user=actor).filter(pk=session.pk).exists():
        raise ExternalIdConflict(f"A session for {source}/{external_id} already exists and is not visible to you.")
    return session


EDITABLE_FIELDS = frozenset({"direction", "from_number", "to_number", "metadata", "end_reason", "owner"})


def call_session_update(*, actor: User, session: CallSession, changes: dict[str, Any]) -> CallSession:
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise SessionInputError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.")
    update_fields = []
    if "owner" in changes:
        if not (actor.is_admin or actor.is_manager):
            raise NotAllowed("Only managers and admins can reassign a session.")
        owner, team = _owner_and_team(actor=actor, requested_owner=changes.pop("owner"))
        session.owner, session.team = owner, team
        update_fields += ["owner", "team"]
    for name, value in changes.items():
        setattr(session, name, value)
        update_fields.append(name)
    if update_fields:
        session.save(update_fields=[*update_fields, "updated_at"])
    return session


def call_session_archive(*, actor: User, session: CallSession) -> CallSession:
    """Soft delete: the row, its events and its recording files are kept."""
    if not actor.is_admin:
        raise NotAllowed("Only admins can delete call sessions.")
    if session.archived_at is None:
        session.archived_at = timezone.now()
        session.save(update_fields=["archived_at", "updated_at"])
        logger.info("call session %s archived by %s", session.pk, actor.username)
    return session


# --- Events ------------------------------------------------------------------------------------------------


def _duplicate_of(*, session: CallSession, event_type: str, event_id: str) -> CallEvent | None:
    if event_id:
        found = CallEvent.objects.filter(session=session, event_id=event_id).first()
        if found is not None:
            return found
    if event_type in states.TERMINAL_EVENT_TYPES:
        return CallEvent.objects.filter(session=session, type=event_type).first()
    return None


def call_event_record(*, session_id: uuid.UUID, event: EventInput) -> EventResult:
    """Append an event; a repeat (same event_id, or a second terminal event of one type) is stored once.

    The session row is locked for the duration, so events of one session apply one at a time and in the
    order they arrive; an event that arrives late is kept in the timeline but never moves the status back.
    """
    event_type = _event_type(event.type)
    with transaction.atomic():
        session = CallSession.objects.select_for_update().get(pk=session_id)
        return _record_locked(session=session, event_type=event_type, event=event)


def call_session_abandon_if_quiet(*, session_id: uuid.UUID, quiet_since: datetime, reason: str) -> bool:
    """Mark a live session ``abandoned`` if, checked under its row lock, it has had no event since
    ``quiet_since``: an event that arrives while the expiry job runs keeps the call alive."""
    with transaction.atomic():
        session = CallSession.objects.select_for_update().get(pk=session_id)
        last_sign_of_life = session.last_event_at or session.created_at
        if session.status not in states.ACTIVE or session.archived_at is not None or last_sign_of_life >= quiet_since:
            return False
        result = _record_locked(
            session=session,
            event_type=states.EventType.ABANDONED,
            event=EventInput(type=states.EventType.ABANDONED, data={"reason": reason, "by": "expire_stale_sessions"}),
        )
    if result.created:
        transaction.on_commit(metrics.SESSIONS_EXPIRED.inc)
    return result.created


def _event_type(raw: str) -> str:
    event_type = states.normalize_event_type(raw)
    if not event_type or len(event_type) > 32:
        raise SessionInputError("An event needs a type of 1 to 32 characters.", field="type")
    return event_type


def _record_locked(*, session: CallSession, event_type: str, event: EventInput) -> EventResult:
    """Record ``event`` on ``session``, whose row the caller holds locked inside a transaction."""
    duplicate = _duplicate_of(session=session, event_type=event_type, event_id=event.event_id)
    if duplicate is not None:
        metrics.EVENTS_DUPLICATE.inc()
        return EventResult(session=session, event=duplicate, created=False)
    target = states.transition_for(current=session.status, event_type=event_type)
    row = CallEvent(
        session=session,
        type=event_type,
        event_id=event.event_id,
        occurred_at=event.occurred_at or timezone.now(),
        data=event.data,
        status_before=session.status if target else "",
        status_after=target or "",
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        # Only reachable where the row lock is weaker than the constraint (SQLite serialises instead).
        duplicate = _duplicate_of(session=session, event_type=event_type, event_id=event.event_id)
        if duplicate is None:
            raise
        metrics.EVENTS_DUPLICATE.inc()
        return EventResult(session=session, event=duplicate, created=False)
    _apply(session=session, target=target, event=row)
    # Integrations may send any type (transfer, dtmf, ...): only the known ones get a label of their own, so that
    # no client can grow the number of series without bound.
    label = event_type if event_type in states.EVENT_TARGET else "other"
    transaction.on_commit(metrics.EVENTS_RECORDED.labels(label).inc)
    return EventResult(session=session, event=row, created=True)


def _apply(*, session: CallSession, target: states.Status | None, event: CallEvent) -> None:
    fields = ["last_event_at", "updated_at"]
    last_sign_of_life = session.last_event_at
    if session.last_event_at is None or event.occurred_at > session.last_event_at:
        session.last_event_at = event.occurred_at
    if target is not None:
        at = event.occurred_at
        session.status = target
        fields.append("status")
        if session.started_at is None:
            session.started_at = at
            fields.append("started_at")
        if target == states.Status.IN_PROGRESS and session.answered_at is None:
            session.answered_at = max(at, session.started_at)
            fields.append("answered_at")
        if target in states.TERMINAL:
            # An abandoned call ended when it was last heard from, not when the expiry job noticed: hours of
            # silence are not talk time.
            end = (last_sign_of_life or at) if target == states.Status.ABANDONED else at
            session.ended_at = max(end, session.started_at)
            answered = session.answered_at
            session.duration_ms = int((session.ended_at - answered).total_seconds() * 1000) if answered else 0
            reason = event.data.get("reason") if isinstance(event.data, dict) else None
            session.end_reason = str(reason)[:255] if reason else event.type
            fields += ["ended_at", "duration_ms", "end_reason"]
            if session.origin == CallSession.Origin.CAMPAIGN:
                _campaign_call_ended(session_id=session.pk)
    session.save(update_fields=fields)


def _campaign_call_ended(*, session_id: uuid.UUID) -> None:
    """A campaign's call ended: tick its run once this commits, rather than at its next scheduled tick. Only an
    accelerator: the scheduler reconciles every dial from its session's status whether this runs or not."""
    from campaigns.tasks import tick_on_session_end  # noqa: PLC0415  # campaigns imports calls at load time

    transaction.on_commit(lambda: tick_on_session_end(session_id=session_id))


def call_event_report(
    *, actor: User, source: str | None, external_id: str, event: EventInput, session_data: SessionInput
) -> tuple[EventResult, bool]:
    """The webhook: find the session by the integration's own id, creating it on first report."""
    if not external_id:
        raise SessionInputError("external_id is required.", field="external_id")
    session_data.source = source
    session_data.external_id = external_id
    session, created = call_session_create(
        actor=actor, data=session_data, origin=CallSession.Origin.DIRECT, auto_created=True
    )
    return call_event_record(session_id=session.pk, event=event), created


# --- Notes -------------------------------------------------------------------------------------------------


def note_create(*, author: User, session: CallSession, body: str) -> Note:
    text = body.strip()
    if not text:
        raise SessionInputError("A note needs some text.", field="body")
    return Note.objects.create(session=session, author=author, body=text)


def note_update(*, actor: User, note: Note, body: str) -> Note:
    if note.author_id != actor.pk and not actor.is_admin:
        raise NotAllowed("Only the author can edit a note.")
    text = body.strip()
    if not text:
        raise SessionInputError("A note needs some text.", field="body")
    note.body = text
    note.save(update_fields=["body", "updated_at"])
    return note


# --- Reading with adoption ---------------------------------------------------------------------------------


def call_session_get_or_adopt(*, user: User, session_id: str) -> tuple[CallSession, bool]:
    """The session by id for ``user``; a well-formed id with no row but a recording folder is adopted first.

    Returns (session, adopted). Raises SessionNotFound when there is nothing ``user`` may see.
    """
    from calls.adoption import orphan_adopt  # noqa: PLC0415  # keeps storage code out of every services import

    try:
        return get_call_session_for_user(user=user, session_id=session_id, details=True), False
    except SessionNotFound:
        parsed = parse_session_id(session_id)
        if parsed is None:
            raise
        if CallSession.objects.filter(pk=parsed).exists():
            # Either not theirs to see, or a concurrent request adopted it since the lookup above: ask again.
            return get_call_session_for_user(user=user, session_id=session_id, details=True), False
        adopted = orphan_adopt(session_id=parsed, requester=user)
        # Whether this call adopted it or lost the race to another, the access rule decides what is returned.
        return get_call_session_for_user(user=user, session_id=session_id, details=True), adopted is not None


# --- Integrations ------------------------------------------------------------------------------------------


def source_create(
    *, name: str, default_owner: User | None = None, default_team: Team | None = None, signing_secret: str = ""
) -> tuple[Source, str]:
    """Create an integration with its service user and a first API token; returns the token's key."""
    from crm.services import api_token_create  # noqa: PLC0415  # crm must not import calls at load time

    if Source.objects.filter(name=name).exists():
        raise SessionInputError(f"An integration named {name!r} already exists.", field="name")
    with transaction.atomic():
        user = User.objects.create(
            username=f"{name}@integration", role=User.Role.INTEGRATION, team=default_team, first_name=name
        )
        user.set_unusable_password()
        user.save(update_fields=["password"])
        source = Source.objects.create(
            name=name,
            user=user,
            default_owner=default_owner,
            default_team=default_team or (default_owner.team if default_owner else None),
            signing_secret=signing_secret,
        )
        _, key = api_token_create(user=user, name=f"{name} integration")
    return source, key
