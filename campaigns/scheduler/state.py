"""What one tick works with: the locked run, the decisions it logs, what it hands off, its result."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from calls import states
from campaigns.dialers import Dialer, DialRequest
from campaigns.models import Campaign, Dial, Run, RunLog
from campaigns.runs import run_log_entry

RATE_WINDOW = dt.timedelta(seconds=60)
# Hand-offs that fail this many times fail the dial (and the contact's retry rules apply).
MAX_DISPATCH_ATTEMPTS = 3
# Longest a waiting run sleeps between ticks when nothing is due: beat's safety net is the backstop anyway.
IDLE_TICK_MAX_SECONDS = 60.0
# Candidates read per query while looking for contacts to dial; a tick examines at most SCAN_LIMIT of them
# (skipped and postponed contacts included), so one tick stays short however the list is made up.
SCAN_BATCH = 200
SCAN_LIMIT = 2000

COUNTER_FIELDS = [
    "queued",
    "dialing",
    "connected",
    "completed",
    "no_answer",
    "busy",
    "failed",
    "skipped_dnc",
    "outside_window",
    "dials",
    "agent_cursor",
    "next_tick_at",
    "updated_at",
]

# What a terminal session status means for the dial.
OUTCOME_FOR_STATUS: dict[str, str] = {
    states.Status.COMPLETED: Dial.Outcome.COMPLETED,
    states.Status.NO_ANSWER: Dial.Outcome.NO_ANSWER,
    states.Status.BUSY: Dial.Outcome.BUSY,
    states.Status.FAILED: Dial.Outcome.FAILED,
    states.Status.CANCELED: Dial.Outcome.CANCELED,
    states.Status.ABANDONED: Dial.Outcome.FAILED,
}
OUTCOME_LABELS = {
    Dial.Outcome.COMPLETED: "completed",
    Dial.Outcome.NO_ANSWER: "no answer",
    Dial.Outcome.BUSY: "busy",
    Dial.Outcome.FAILED: "failed",
    Dial.Outcome.CANCELED: "canceled",
}


@dataclass
class TickResult:
    run_id: int
    state: str = ""
    reconciled: int = 0
    dialed: int = 0
    skipped_dnc: int = 0
    postponed: int = 0
    retries: int = 0
    redispatched: int = 0
    dispatch_failed: int = 0
    breaker_tripped: bool = False
    completed: bool = False
    # Seconds until the follow-up tick the caller must queue; None: no follow-up (or one is already scheduled).
    next_tick_in: float | None = None
    session_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass
class Tick:
    run: Run
    campaign: Campaign
    now: dt.datetime
    result: TickResult
    logs: list[RunLog] = field(default_factory=list)
    handoffs: list[DialRequest] = field(default_factory=list)
    backend: Dialer | None = None

    def log(self, kind: str, message: str, *, level: str = RunLog.Level.INFO, **data: Any) -> None:
        self.logs.append(run_log_entry(run=self.run, kind=kind, message=message, at=self.now, level=level, data=data))
