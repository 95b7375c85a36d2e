"""Helpers of the run-engine tests: a recording dialer, campaigns whose calling window is always open, and a
way to play a call's end the way a voice agent would (events through calls.services)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from calls.models import CallSession
from calls.services import EventInput, call_event_record
from campaigns.dialers.base import Dialer, DialerError, DialRequest
from campaigns.models import Campaign, Contact, Dial, Run
from campaigns.runs import run_launch
from crm.models import User
from tests.factories import CampaignFactory, ContactFactory

# A calling window open all day, every day (window_end is exclusive).
ALWAYS_OPEN = {"window_start": dt.time(0, 0), "window_end": dt.time.max, "window_days": []}


class RecordingDialer(Dialer):
    """Accepts every dial and remembers it; numbers in ``refuse`` get a DialerError instead."""

    name = "recording"

    def __init__(self, *, refuse: Iterable[str] = (), source: str = "pipecat-prod") -> None:
        self.settings = {}
        self.requests: list[DialRequest] = []
        self.refuse = set(refuse)
        self.source = source

    @classmethod
    def validate_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        return dict(raw)

    def source_name(self) -> str:
        return self.source

    def dial(self, request: DialRequest) -> None:
        if request.to_number in self.refuse:
            raise DialerError("HTTP 503: agent overloaded", transient=True)
        self.requests.append(request)


def campaign_with_contacts(manager: User, count: int, *, tz: str = "UTC", **fields: Any) -> Campaign:
    campaign = CampaignFactory.create(manager=manager, **{**ALWAYS_OPEN, **fields})
    campaign.contacts.set(ContactFactory.create_batch(count, team=campaign.team, timezone=tz))
    return campaign


def launch(campaign: Campaign, actor: User | None = None) -> Run:
    launcher = actor or campaign.manager
    assert launcher is not None
    return run_launch(actor=launcher, campaign=campaign)


def end_call(session_id: uuid.UUID, outcome: str, *, answered: bool | None = None) -> CallSession:
    """Report a call's end as its voice agent would: answered first for a completed call."""
    if answered if answered is not None else outcome == "completed":
        call_event_record(session_id=session_id, event=EventInput(type="answered"))
    return call_event_record(session_id=session_id, event=EventInput(type=outcome)).session


def in_flight(run: Run) -> list[Dial]:
    return list(Dial.objects.filter(run=run, finished_at__isnull=True).select_related("session", "target__contact"))


def contact(phone: str, campaign: Campaign, **fields: Any) -> Contact:
    return ContactFactory.create(team=campaign.team, phone=phone, **fields)
