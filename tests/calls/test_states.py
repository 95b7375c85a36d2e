from __future__ import annotations

import pytest

from calls import states
from calls.states import Status


@pytest.mark.parametrize(
    ("current", "event_type", "expected"),
    [
        (Status.QUEUED, "initiated", Status.INITIATED),
        (Status.INITIATED, "ringing", Status.RINGING),
        (Status.RINGING, "answered", Status.IN_PROGRESS),
        (Status.IN_PROGRESS, "completed", Status.COMPLETED),
        (Status.RINGING, "busy", Status.BUSY),
        (Status.RINGING, "no_answer", Status.NO_ANSWER),
        (Status.QUEUED, "failed", Status.FAILED),
        (Status.QUEUED, "canceled", Status.CANCELED),
        (Status.QUEUED, "completed", Status.COMPLETED),
        (Status.IN_PROGRESS, "abandoned", Status.ABANDONED),
    ],
)
def test_it_moves_forward_on_the_events_that_lead_somewhere(current: Status, event_type: str, expected: Status):
    assert states.transition_for(current=current, event_type=event_type) == expected


@pytest.mark.parametrize(
    ("current", "event_type"),
    [
        (Status.COMPLETED, "ringing"),  # late
        (Status.COMPLETED, "answered"),
        (Status.COMPLETED, "completed"),  # repeated
        (Status.IN_PROGRESS, "ringing"),  # backwards
        (Status.IN_PROGRESS, "initiated"),
        (Status.IN_PROGRESS, "busy"),  # an answered call cannot become busy
        (Status.IN_PROGRESS, "no_answer"),
        (Status.BUSY, "completed"),
        (Status.RINGING, "transfer"),  # not a status event
        (Status.RINGING, "dtmf"),
    ],
)
def test_it_never_moves_backwards_or_out_of_an_end(current: Status, event_type: str):
    assert states.transition_for(current=current, event_type=event_type) is None


def test_it_declares_every_status_and_ends_nowhere():
    assert set(states.ALLOWED) == set(Status.values)
    for terminal in states.TERMINAL:
        assert states.ALLOWED[terminal] == frozenset()
    for status, targets in states.ALLOWED.items():
        assert status not in targets, f"{status} may not transition to itself"


@pytest.mark.parametrize(("raw", "normalized"), [("bye", "completed"), ("BYE", "completed"), (" Hangup ", "completed")])
def test_it_treats_a_sip_bye_as_completed(raw: str, normalized: str):
    assert states.normalize_event_type(raw) == normalized


def test_it_keeps_terminal_event_types_in_step_with_terminal_statuses():
    assert {states.EVENT_TARGET[t] for t in states.TERMINAL_EVENT_TYPES} == set(states.TERMINAL)
