"""The ``simulator`` dialer: the embedded stand-in voice agent, for ``make run``'s demo and the tests.

``dial()`` only queues a Celery task; that task then behaves like a real voice agent and talks to Callbook over
its real HTTP API (base URL ``CALLBOOK_PUBLIC_URL``), authenticated as the integration named ``simulator``: it
posts ``ringing``, then ``answered`` and ``completed`` (or ``busy`` / ``no_answer`` / ``failed``) with event ids
of its own, and for answered calls PUTs a recording (one of the committed clips in
campaigns/simulator_assets/) and its transcript (timed segments, JSON).

Settings (``Campaign.dialer_settings``), all optional:

- ``odds``: relative weights of the outcomes, e.g. ``{"completed": 6, "no_answer": 2, "busy": 1, "failed": 1}``
  (missing outcomes weigh 0; the default is that mix);
- ``min_seconds``, ``max_seconds``: how long an answered call lasts, in seconds (default: the length of its
  recording; one of them alone means exactly that long);
- ``ring_seconds``: ``[min, max]`` seconds of ringing before the answer or the final status (default [1, 4]);
- ``seed``: an integer; with it, a number's call on a given attempt always goes the same way (tests).

Every event carries an id derived from the session id, and the plan of a call is fixed when it is dialed, so a
dial handed over twice (or a task retried) reports the same call again, which Callbook stores once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from calls.models import Source
from campaigns.dialers.base import (
    Dialer,
    DialerError,
    DialerSettingsInvalid,
    DialRequest,
    check_unknown,
    range_setting,
)
from crm.models import ApiToken

logger = logging.getLogger(__name__)

SIMULATOR_SOURCE = "simulator"
ASSETS = Path(__file__).resolve().parent.parent / "simulator_assets"
OUTCOMES = ("completed", "no_answer", "busy", "failed")
DEFAULT_ODDS = {"completed": 6.0, "no_answer": 2.0, "busy": 1.0, "failed": 1.0}
DEFAULT_RING = (1.0, 4.0)
MAX_TALK_SECONDS = 3600
FAILURE_REASONS = ("Carrier rejected the call (SIP 503)", "The voice agent's media stream dropped")
# A step due within this many seconds is slept through in the same task rather than queued with a countdown.
INLINE_WAIT_MAX = 1.0
HTTP_TIMEOUT = 15
TOKEN_LIFETIME = timedelta(hours=1)
TOKEN_RENEW_BEFORE = timedelta(minutes=15)


class SimulatorHttpError(Exception):
    """Callbook answered with an error the simulator cannot fix by trying again."""


@dataclass(frozen=True)
class Clip:
    name: str
    file: str
    content_type: str
    duration_ms: int
    language: str
    segments: list[dict[str, Any]]

    def audio(self) -> bytes:
        return (ASSETS / self.file).read_bytes()

    def transcript_json(self) -> bytes:
        return json.dumps({"language": self.language, "segments": self.segments}).encode()


@cache
def clips() -> tuple[Clip, ...]:
    manifest = json.loads((ASSETS / "clips.json").read_text())
    return tuple(Clip(**clip) for clip in manifest["clips"])


@dataclass(frozen=True)
class CallPlan:
    """How one simulated call goes, decided when it is dialed."""

    session_id: str
    outcome: str
    ring_seconds: float
    talk_seconds: float
    clip: str
    failure_reason: str = ""


def simulator_source_ensure() -> Source:
    """The ``simulator`` integration (its service user and Source row), created on first use."""
    source = Source.objects.filter(name=SIMULATOR_SOURCE).first()
    if source is not None:
        return source
    from calls.services import SessionInputError, source_create  # noqa: PLC0415  # calls imports campaigns models

    try:
        with transaction.atomic():
            source, _ = source_create(name=SIMULATOR_SOURCE)
            # source_create mints a long-lived first token nobody holds: the simulator mints short-lived ones.
            ApiToken.objects.filter(user=source.user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    except (SessionInputError, IntegrityError):
        # Created concurrently by another process: use that one.
        return Source.objects.get(name=SIMULATOR_SOURCE)
    return source


def _talk_range(raw: Mapping[str, Any], errors: dict[str, str]) -> tuple[float, float] | None:
    bounds: list[float] = []
    for name in ("min_seconds", "max_seconds"):
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TALK_SECONDS:
            errors[name] = f"Must be a number of seconds between 0 and {MAX_TALK_SECONDS}."
            return None
        bounds.append(float(value))
    if not bounds:
        return None
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        errors["max_seconds"] = "The longest call cannot be shorter than the shortest one."
        return None
    return (min(bounds), max(bounds))


class SimulatorDialer(Dialer):
    name: ClassVar[str] = "simulator"
    ALLOWED: ClassVar[frozenset[str]] = frozenset({"odds", "ring_seconds", "min_seconds", "max_seconds", "seed"})

    @classmethod
    def validate_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        check_unknown(raw, cls.ALLOWED, errors)
        odds: dict[str, float] = dict(DEFAULT_ODDS)
        if "odds" in raw:
            given = raw["odds"]
            if not isinstance(given, dict):
                errors["odds"] = f"Must be an object of outcome: weight ({', '.join(OUTCOMES)})."
            else:
                unknown = sorted(set(given) - set(OUTCOMES))
                weights = list(given.values())
                if unknown:
                    errors["odds"] = f"Unknown outcomes: {', '.join(unknown)} (known: {', '.join(OUTCOMES)})."
                elif not all(isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights):
                    errors["odds"] = "Each weight must be a number >= 0."
                elif sum(weights) <= 0:
                    errors["odds"] = "At least one outcome needs a weight above 0."
                else:
                    odds = {outcome: float(given.get(outcome, 0)) for outcome in OUTCOMES}
        ring = range_setting(raw, "ring_seconds", errors, default=DEFAULT_RING, maximum=120)
        talk = _talk_range(raw, errors)
        seed = raw.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            errors["seed"] = "Must be an integer."
        if errors:
            raise DialerSettingsInvalid(errors)
        return {"odds": odds, "ring_seconds": ring, "talk_seconds": talk, "seed": seed}

    def source_name(self) -> str:
        return SIMULATOR_SOURCE

    def plan(self, request: DialRequest) -> CallPlan:
        seed = self.settings["seed"]
        material = (
            f"{seed}:{request.to_number}:{request.attempt}"
            if seed is not None
            else f"{request.session_id}:{time.time_ns()}"
        )
        rng = random.Random(hashlib.sha256(material.encode()).digest())  # noqa: S311  # a simulation, not security
        odds: dict[str, float] = self.settings["odds"]
        outcome = rng.choices(list(odds), weights=list(odds.values()))[0]
        ring_low, ring_high = self.settings["ring_seconds"]
        clip = rng.choice(clips())
        talk = self.settings["talk_seconds"]
        talk_seconds = rng.uniform(*talk) if talk is not None else clip.duration_ms / 1000
        return CallPlan(
            session_id=str(request.session_id),
            outcome=outcome,
            ring_seconds=round(rng.uniform(ring_low, ring_high), 3),
            talk_seconds=round(talk_seconds, 3),
            clip=clip.name,
            failure_reason=rng.choice(FAILURE_REASONS) if outcome == "failed" else "",
        )

    def dial(self, request: DialRequest) -> None:
        from campaigns.tasks import simulate_call  # noqa: PLC0415  # tasks imports the scheduler, which imports us

        try:
            simulate_call.delay(asdict(self.plan(request)), "ring")
        except Exception as exc:  # broker errors share no base class
            raise DialerError(f"The simulator could not be reached: {exc}", transient=True) from exc


# --- The stand-in voice agent --------------------------------------------------------------------------------

_token_lock = threading.Lock()
_token: tuple[str, float] | None = None


def _simulator_token() -> str:
    """A short-lived API token of the simulator integration, minted in this process and reused until it nears
    expiry. It lives only in memory: never in a task's arguments, never in a log line."""
    global _token  # noqa: PLW0603  # one token per worker process, behind a lock
    from crm.services import api_token_create  # noqa: PLC0415

    with _token_lock:
        now = time.time()
        if _token is not None and _token[1] - TOKEN_RENEW_BEFORE.total_seconds() > now:
            return _token[0]
        source = simulator_source_ensure()
        expires = timezone.now() + TOKEN_LIFETIME
        ApiToken.objects.filter(user=source.user, expires_at__lt=timezone.now() - TOKEN_LIFETIME).delete()
        _, key = api_token_create(user=source.user, name="simulator (short-lived)", expires_at=expires)
        _token = (key, expires.timestamp())
        return key


def _forget_token() -> None:
    global _token  # noqa: PLW0603
    with _token_lock:
        _token = None


def _call_api(method: str, path: str, *, json_body: Any = None, data: bytes | None = None, **headers: str) -> None:
    url = settings.CALLBOOK_PUBLIC_URL.rstrip("/") + path
    request_headers = {"Authorization": f"Bearer {_simulator_token()}", "Accept": "application/json", **headers}
    response = requests.request(method, url, json=json_body, data=data, headers=request_headers, timeout=HTTP_TIMEOUT)
    if response.status_code == 401:
        _forget_token()  # revoked or expired under us: the retry mints a new one
        raise ConnectionError(f"{method} {path}: 401, token refused")
    if response.status_code >= 500 or response.status_code == 429:
        raise ConnectionError(f"{method} {path}: HTTP {response.status_code}")
    if response.status_code >= 400:
        raise SimulatorHttpError(f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}")


def _event(plan: CallPlan, event_type: str, **data: Any) -> None:
    _call_api(
        "POST",
        f"/api/crm/sessions/{plan.session_id}/events/",
        json_body={"type": event_type, "event_id": f"sim-{plan.session_id}-{event_type}", "data": data},
    )


def simulate_step(*, plan: CallPlan, step: str) -> tuple[str, float] | None:
    """Play one step of the call; returns the next step and its delay in seconds, or None when the call is over."""
    session = plan.session_id
    if step == "ring":
        _event(plan, "ringing")
        return ("answer", plan.ring_seconds)
    if step == "answer":
        if plan.outcome == "completed":
            _event(plan, "answered")
            return ("hangup", plan.talk_seconds)
        reasons = {"no_answer": "No answer", "busy": "Line busy", "failed": plan.failure_reason or "Call failed"}
        _event(plan, plan.outcome, reason=reasons[plan.outcome])
        return None
    if step == "hangup":
        _event(plan, "completed", reason="hangup")
        clip = next(c for c in clips() if c.name == plan.clip)
        _call_api("PUT", f"/api/crm/sessions/{session}/recording/", data=clip.audio(), **{"Content-Type": "audio/ogg"})
        _call_api(
            "PUT",
            f"/api/crm/sessions/{session}/transcript/?type=json",
            data=clip.transcript_json(),
            **{"Content-Type": "application/json"},
        )
        return None
    raise ValueError(f"unknown simulator step {step!r}")


def simulate_call(*, plan: CallPlan, step: str) -> tuple[str, float] | None:
    """Play the call from ``step``, sleeping through short waits; returns a long wait for the caller to queue."""
    current: str | None = step
    while current is not None:
        following = simulate_step(plan=plan, step=current)
        if following is None:
            return None
        current, delay = following
        if delay > INLINE_WAIT_MAX:
            return (current, delay)
        time.sleep(delay)
    return None
