"""The one interface every dialer backend implements, and the dial request it is handed.

A backend is built from a campaign's ``dialer_settings`` (validated by the backend itself, with errors a manager
can act on) and is handed one ``DialRequest`` per dial, after the dial's CallSession has been committed. It
either accepts the request (returns) or raises ``DialerError``; it never writes to the database itself.

The session id is the request's idempotency key: the scheduler may hand the same request over again when it
cannot know whether the first hand-off completed (a worker killed in between), and a voice agent must place the
call once per session id.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class DialerSettingsInvalid(Exception):
    """``dialer_settings`` a backend cannot work with: ``errors`` maps each setting to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in sorted(errors.items())))


class DialerError(Exception):
    """The backend could not hand the dial over; ``reason`` is recorded on the dial and its session."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason[:255]
        self.transient = transient


@dataclass(frozen=True)
class DialRequest:
    """Everything a voice agent needs to place one call and report on it under Callbook's id."""

    session_id: uuid.UUID
    dial_id: int
    run_id: int
    campaign_id: int
    campaign_name: str
    attempt: int
    from_number: str
    to_number: str
    source: str
    max_call_seconds: int
    contact: dict[str, Any]
    settings: dict[str, Any]
    session_url: str
    events_url: str
    recording_url: str
    transcript_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The JSON body of the http backend's request (documented in README "Campaigns and outbound runs")."""
        return {
            "session_id": str(self.session_id),
            "dial_id": self.dial_id,
            "run_id": self.run_id,
            "campaign": {"id": self.campaign_id, "name": self.campaign_name},
            "attempt": self.attempt,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "source": self.source,
            "max_call_seconds": self.max_call_seconds,
            "contact": self.contact,
            "settings": self.settings,
            "urls": {
                "session": self.session_url,
                "events": self.events_url,
                "recording": self.recording_url,
                "transcript": self.transcript_url,
            },
        }


class Dialer(ABC):
    """A dialer backend. Subclasses set ``name`` (a ``Campaign.Dialer`` value) and implement the three methods."""

    name: ClassVar[str]

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = self.validate_settings(settings)

    @classmethod
    @abstractmethod
    def validate_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The settings with defaults filled in; raises DialerSettingsInvalid naming each bad setting."""

    @abstractmethod
    def source_name(self) -> str:
        """The integration (calls.Source name) that reports the calls: written into each dial's session."""

    @abstractmethod
    def dial(self, request: DialRequest) -> None:
        """Hand the dial over; raise DialerError when it cannot be (after the backend's own retries)."""

    def public_settings(self) -> dict[str, Any]:
        """The settings the voice agent receives with each dial: never a secret or the backend's own plumbing."""
        return {}


# --- Shared validation helpers -----------------------------------------------------------------------------


def check_unknown(raw: Mapping[str, Any], allowed: frozenset[str], errors: dict[str, str]) -> None:
    for name in sorted(set(raw) - allowed):
        errors[name] = f"Unknown setting (allowed: {', '.join(sorted(allowed))})."


def number_setting(
    raw: Mapping[str, Any],
    name: str,
    errors: dict[str, str],
    *,
    default: float,
    minimum: float,
    maximum: float,
    integer: bool = False,
) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        errors[name] = f"Must be {'an integer' if integer else 'a number'} between {minimum:g} and {maximum:g}."
        return default
    if not minimum <= value <= maximum:
        errors[name] = f"Must be between {minimum:g} and {maximum:g} (got {value:g})."
        return default
    return value


def range_setting(
    raw: Mapping[str, Any],
    name: str,
    errors: dict[str, str],
    *,
    default: tuple[float, float] | None,
    maximum: float,
) -> tuple[float, float] | None:
    """A ``[min, max]`` pair of seconds (a single number means exactly that long)."""
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        errors[name] = "Must be a number of seconds or a [min, max] pair."
        return default
    low, high = float(value[0]), float(value[1])
    if not 0 <= low <= high <= maximum:
        errors[name] = f"Must satisfy 0 <= min <= max <= {maximum:g} (got [{low:g}, {high:g}])."
        return default
    return (low, high)
