"""The call-session state machine: every status change goes through ``transition_for``.

Statuses only move forward. An event that arrives late (``ringing`` after ``completed``) is still recorded in
the timeline by the caller, but ``transition_for`` answers ``None`` and the status stays where it is.
"""

from __future__ import annotations

from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    INITIATED = "initiated", "Initiated"
    RINGING = "ringing", "Ringing"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    BUSY = "busy", "Busy"
    NO_ANSWER = "no_answer", "No answer"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    ABANDONED = "abandoned", "Abandoned"


class EventType(models.TextChoices):
    """Event types that move the status. Any other type (transfer, dtmf, hold, ...) is recorded only."""

    INITIATED = "initiated", "Initiated"
    RINGING = "ringing", "Ringing"
    ANSWERED = "answered", "Answered"
    COMPLETED = "completed", "Completed"
    BUSY = "busy", "Busy"
    NO_ANSWER = "no_answer", "No answer"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    # Not sent by integrations: written by Callbook when it gives up on a silent session.
    ABANDONED = "abandoned", "Abandoned"


# Aliases integrations send; a SIP BYE ends an answered call.
EVENT_TYPE_ALIASES = {"bye": EventType.COMPLETED, "hangup": EventType.COMPLETED, "no-answer": EventType.NO_ANSWER}

EVENT_TARGET: dict[str, Status] = {
    EventType.INITIATED: Status.INITIATED,
    EventType.RINGING: Status.RINGING,
    EventType.ANSWERED: Status.IN_PROGRESS,
    EventType.COMPLETED: Status.COMPLETED,
    EventType.BUSY: Status.BUSY,
    EventType.NO_ANSWER: Status.NO_ANSWER,
    EventType.FAILED: Status.FAILED,
    EventType.CANCELED: Status.CANCELED,
    EventType.ABANDONED: Status.ABANDONED,
}

TERMINAL: frozenset[str] = frozenset(
    {Status.COMPLETED, Status.BUSY, Status.NO_ANSWER, Status.FAILED, Status.CANCELED, Status.ABANDONED}
)
ACTIVE: frozenset[str] = frozenset(s.value for s in Status) - TERMINAL

# Terminal event types are stored once per session: a SIP peer's second and third BYE are duplicates.
TERMINAL_EVENT_TYPES: frozenset[str] = frozenset(t for t, status in EVENT_TARGET.items() if status in TERMINAL)

_ENDINGS_BEFORE_ANSWER = {Status.BUSY, Status.NO_ANSWER, Status.FAILED, Status.CANCELED, Status.ABANDONED}
_ENDINGS_AFTER_ANSWER = {Status.COMPLETED, Status.FAILED, Status.CANCELED, Status.ABANDONED}

ALLOWED: dict[str, frozenset[str]] = {
    Status.QUEUED: frozenset(
        {Status.INITIATED, Status.RINGING, Status.IN_PROGRESS, Status.COMPLETED, *_ENDINGS_BEFORE_ANSWER}
    ),
    Status.INITIATED: frozenset({Status.RINGING, Status.IN_PROGRESS, Status.COMPLETED, *_ENDINGS_BEFORE_ANSWER}),
    Status.RINGING: frozenset({Status.IN_PROGRESS, Status.COMPLETED, *_ENDINGS_BEFORE_ANSWER}),
    Status.IN_PROGRESS: frozenset(_ENDINGS_AFTER_ANSWER),
    **{status: frozenset() for status in TERMINAL},
}


def normalize_event_type(raw: str) -> str:
    value = raw.strip().lower()
    return EVENT_TYPE_ALIASES.get(value, value)


def transition_for(*, current: str, event_type: str) -> Status | None:
    """The status an event moves the session to, or None when it must not move it (unknown, late, repeated)."""
    target = EVENT_TARGET.get(event_type)
    if target is None or target not in ALLOWED[current]:
        return None
    return target
