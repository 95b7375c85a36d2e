"""Run control: launch, pause, resume and cancel an outbound run of a campaign.

Access is the caller's check (``campaigns.access.get_campaign_for_control`` / ``get_run_for_control``); these
services check the rules of the run itself and raise ``RunError`` for what cannot be done now. Every change
locks the Run row, so it never interleaves with a scheduler tick (campaigns/scheduler/), and is written to the
run's log with who did it.

Allowed state changes live in ``TRANSITIONS``, here and nowhere else:

- launch: a new run starts ``running`` (``pending`` is never left standing: the targets are snapshotted in the
  same transaction);
- pause: running -> paused (a person, or the circuit breaker with ``actor=None``). No new dials; calls in flight
  go on and are still reconciled;
- resume: paused -> running; the circuit breaker starts counting afresh;
- cancel: running/paused -> canceled at once. Waiting contacts become skipped (reason "canceled"); calls in
  flight end on their own and are reconciled by later ticks, without retries; ``finished_at`` is set when the
  last of them has ended. A new run of the campaign cannot be launched while calls of an earlier one are still
  in flight, so a contact is never called by two runs at once;
- completed (the scheduler, when no contact is waiting or being dialed).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from calls.models import Source
from campaigns.access import NotAllowed, can_control_campaign
from campaigns.dialers import Dialer, DialerSettingsInvalid, dialer_build
from campaigns.models import Campaign, Contact, Dial, Run, RunContact, RunLog
from crm.metrics import RUN_TRANSITIONS
from crm.models import User

logger = logging.getLogger(__name__)

State = Run.State

TRANSITIONS: dict[str, frozenset[str]] = {
    State.PENDING: frozenset({State.RUNNING, State.PAUSED, State.CANCELED, State.FAILED}),
    State.RUNNING: frozenset({State.PAUSED, State.CANCELED, State.COMPLETED, State.FAILED}),
    State.PAUSED: frozenset({State.RUNNING, State.CANCELED, State.FAILED}),
    State.COMPLETED: frozenset(),
    State.CANCELED: frozenset(),
    State.FAILED: frozenset(),
}

# Codes a client can fix by changing its request (400); every other RunError is a conflict with the run's or the
# campaign's current state (409).
BAD_REQUEST_CODES = frozenset(
    {"no_contacts", "invalid_dialer_settings", "invalid_contact_filter", "unknown_source", "unknown_contacts"}
)

TARGET_BATCH = 1000
CUSTOM_KEY_RE = re.compile(r"^[A-Za-z0-9_\- ]{1,64}$")
FILTER_KEYS = frozenset({"company", "owner", "custom"})


class RunError(Exception):
    """A rule of runs forbids this now: ``detail`` says why (shown to people), ``code`` is for programs."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code

    @property
    def status(self) -> int:
        return 400 if self.code in BAD_REQUEST_CODES else 409


def actor_label(actor: User | None) -> str:
    return actor.get_username() if actor is not None else "the scheduler"


# --- The log -----------------------------------------------------------------------------------------------


def run_log_entry(
    *,
    run: Run,
    kind: str,
    message: str,
    at: datetime,
    level: str = RunLog.Level.INFO,
    actor: User | None = None,
    data: dict[str, Any] | None = None,
) -> RunLog:
    """An unsaved log row: the scheduler writes a tick's rows in one bulk insert."""
    return RunLog(run=run, at=at, level=level, kind=kind, message=message, data=data or {}, actor=actor)


def run_log_add(
    *,
    run: Run,
    kind: str,
    message: str,
    level: str = RunLog.Level.INFO,
    actor: User | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> RunLog:
    entry = run_log_entry(
        run=run, kind=kind, message=message, at=at or timezone.now(), level=level, actor=actor, data=data
    )
    entry.save(force_insert=True)
    return entry


# --- Targets and the dialer --------------------------------------------------------------------------------


def contact_filter_validate(raw: Any) -> dict[str, Any]:
    """Raise RunError (400) unless ``raw`` is a contact filter the launch understands."""
    if not isinstance(raw, dict):
        raise RunError("The contact filter must be a JSON object.", "invalid_contact_filter")
    unknown = set(raw) - FILTER_KEYS
    if unknown:
        raise RunError(
            f"Unknown contact filter keys: {', '.join(sorted(unknown))} (allowed: company, owner, custom).",
            "invalid_contact_filter",
        )
    for key in ("company", "owner"):
        if key in raw and not isinstance(raw[key], str):
            raise RunError(f"The contact filter's {key!r} must be a string.", "invalid_contact_filter")
    custom = raw.get("custom", {})
    if not isinstance(custom, dict):
        raise RunError("The contact filter's 'custom' must be an object of field: value.", "invalid_contact_filter")
    for key, value in custom.items():
        if not CUSTOM_KEY_RE.match(key) or "__" in key:
            raise RunError(f"Invalid custom field name in the contact filter: {key!r}.", "invalid_contact_filter")
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise RunError(f"The custom field {key!r} must be matched against a plain value.", "invalid_contact_filter")
    return raw


def campaign_targets(*, campaign: Campaign) -> QuerySet[Contact]:
    """Who a run of ``campaign`` calls: its contact list when it has one, else the team's contacts matching its
    filter. Always within the campaign's team. Do-not-call contacts are included: they are checked (and skipped,
    with a log line) at dial time, so a number added to the list mid-run is honoured the same way."""
    contacts = Contact.objects.filter(team_id=campaign.team_id)
    if campaign.contacts.exists():
        return contacts.filter(pk__in=campaign.contacts.values("pk")).order_by("pk")
    criteria = contact_filter_validate(campaign.contact_filter or {})
    condition = Q()
    if criteria.get("company"):
        condition &= Q(company__iexact=criteria["company"])
    if criteria.get("owner"):
        condition &= Q(owner__username=criteria["owner"])
    for key, value in criteria.get("custom", {}).items():
        condition &= Q(**{f"custom_fields__{key}": value})
    return contacts.filter(condition).order_by("pk")


def campaign_contacts_set(*, actor: User, campaign: Campaign, contact_ids: list[int]) -> int:
    """Replace the campaign's explicit contact list (empty: its filter applies again); returns its size. A run
    in progress keeps the targets it was launched with."""
    if not can_control_campaign(user=actor, campaign=campaign):
        raise NotAllowed("Only the campaign's team manager or an admin may change its contacts.")
    wanted = set(contact_ids)
    found = set(Contact.objects.filter(team_id=campaign.team_id, pk__in=wanted).values_list("pk", flat=True))
    missing = sorted(wanted - found)
    if missing:
        shown = ", ".join(str(pk) for pk in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise RunError(f"Not contacts of the campaign's team: {shown}.", "unknown_contacts")
    campaign.contacts.set(found)
    return len(found)


def campaign_dialer(*, campaign: Campaign) -> Dialer:
    """The campaign's dialer backend; RunError (400) when its settings are invalid or its integration missing."""
    try:
        dialer = dialer_build(name=campaign.dialer, settings=campaign.dialer_settings or {})
    except DialerSettingsInvalid as exc:
        raise RunError(f"The campaign's dialer settings are invalid: {exc}", "invalid_dialer_settings") from exc
    if campaign.dialer == Campaign.Dialer.SIMULATOR:
        from campaigns.dialers.simulator import simulator_source_ensure  # noqa: PLC0415

        simulator_source_ensure()
    elif not Source.objects.filter(name=dialer.source_name(), is_active=True).exists():
        raise RunError(
            f"No active integration named {dialer.source_name()!r}: the voice agent reports its calls as that "
            "integration. Create it first, or fix dialer_settings.source.",
            "unknown_source",
        )
    return dialer


# --- Transitions -------------------------------------------------------------------------------------------


def _locked(run: Run) -> Run:
    return Run.objects.select_for_update().select_related("campaign").get(pk=run.pk)


def run_transition(
    *,
    run: Run,
    to: str,
    reason: str,
    kind: str,
    actor: User | None,
    at: datetime,
    level: str = RunLog.Level.INFO,
    data: dict[str, Any] | None = None,
    pending_logs: list[RunLog] | None = None,
) -> None:
    """Move ``run`` (locked by the caller, inside its transaction) to ``to``, log it and count it on commit.

    ``pending_logs``: the caller's unsaved log rows (a scheduler tick writes its rows in one insert at the end),
    to which this entry is appended so that the log keeps the order in which things were decided."""
    if to not in TRANSITIONS[run.state]:
        raise RunError(f"A {run.state} run cannot become {to}.", "invalid_transition")
    run.state = to
    run.state_reason = reason[:255]
    fields = ["state", "state_reason", "updated_at"]
    if to == State.COMPLETED or (to in (State.CANCELED, State.FAILED) and run.dialing == 0):
        run.finished_at = at
        fields.append("finished_at")
    if to == State.RUNNING:
        run.breaker_reset_at = at
        fields.append("breaker_reset_at")
    run.save(update_fields=fields)
    entry = run_log_entry(run=run, kind=kind, message=reason, at=at, level=level, actor=actor, data=data)
    if pending_logs is not None:
        pending_logs.append(entry)
    else:
        entry.save(force_insert=True)
    transaction.on_commit(lambda: RUN_TRANSITIONS.labels(state=to).inc())
    logger.info("run %s: %s (%s)", run.pk, to, reason)


def _queue_tick(run_id: int) -> None:
    from campaigns.tasks import tick_enqueue  # noqa: PLC0415  # tasks imports the scheduler, which imports this

    transaction.on_commit(lambda: tick_enqueue(run_id=run_id))


def run_launch(*, actor: User, campaign: Campaign) -> Run:
    """Snapshot the campaign's contacts as the run's targets, start it and queue its first tick on commit."""
    campaign_dialer(campaign=campaign)
    now = timezone.now()
    with transaction.atomic():
        # Two managers pressing "launch" at once: the campaign row serialises them (the run_one_active constraint
        # would refuse the second anyway; this gives it a clear answer).
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status == Campaign.Status.ARCHIVED:
            raise RunError("This campaign is archived: restore it before launching a run.", "campaign_archived")
        if campaign.status == Campaign.Status.PAUSED:
            raise RunError("This campaign is paused: set it active before launching a run.", "campaign_paused")
        active = Run.objects.filter(campaign=campaign, state__in=Run.ACTIVE_STATES).first()
        if active is not None:
            raise RunError(
                f"Run {active.pk} of this campaign is still {active.state}: cancel it or let it finish first.",
                "run_active",
            )
        in_flight = Dial.objects.filter(run__campaign=campaign, finished_at__isnull=True).count()
        if in_flight:
            raise RunError(
                f"{in_flight} call(s) of an earlier run are still in progress: launch again when they have ended.",
                "calls_in_flight",
            )
        contact_ids = list(campaign_targets(campaign=campaign).values_list("pk", flat=True))
        if not contact_ids:
            raise RunError(
                "This campaign has no contacts to call: add contacts to its list or widen its filter.", "no_contacts"
            )
        total = len(contact_ids)
        try:
            with transaction.atomic():
                run = Run.objects.create(
                    campaign=campaign,
                    launched_by=actor,
                    state=State.RUNNING,
                    state_reason=f"Launched by {actor_label(actor)}",
                    total=total,
                    queued=total,
                    started_at=now,
                    breaker_reset_at=now,
                )
        except IntegrityError:
            raise RunError("Another run of this campaign was launched at the same time.", "run_active") from None
        RunContact.objects.bulk_create(
            (
                RunContact(run=run, contact_id=contact_id, position=index)
                for index, contact_id in enumerate(contact_ids)
            ),
            batch_size=TARGET_BATCH,
        )
        if campaign.status == Campaign.Status.DRAFT:
            campaign.status = Campaign.Status.ACTIVE
            campaign.save(update_fields=["status", "updated_at"])
        run_log_add(
            run=run,
            kind="launched",
            message=f"Launched by {actor_label(actor)} with {total} contact(s) to call "
            f"(at most {campaign.max_concurrent_calls} at once, {campaign.max_calls_per_minute} a minute).",
            actor=actor,
            data={"total": total},
            at=now,
        )
        transaction.on_commit(lambda: RUN_TRANSITIONS.labels(state=State.RUNNING).inc())
        _queue_tick(run.pk)
    logger.info("run %s of campaign %s launched by %s (%s contacts)", run.pk, campaign.pk, actor_label(actor), total)
    return run


def run_pause(*, actor: User | None, run: Run, reason: str = "", now: datetime | None = None) -> Run:
    """Stop dialing new contacts; calls in flight go on and are reconciled. ``actor=None``: the system.
    ``now`` (all control services): the time recorded, for tests that drive a run along a simulated timeline."""
    with transaction.atomic():
        locked = _locked(run)
        if locked.state not in (State.RUNNING, State.PENDING):
            raise RunError(f"This run is {locked.state}: only a running run can be paused.", "not_running")
        why = reason.strip() or "no reason given"
        run_transition(
            run=locked,
            to=State.PAUSED,
            reason=f"Paused by {actor_label(actor)}: {why}",
            kind="paused",
            actor=actor,
            at=now or timezone.now(),
        )
    return locked


def run_resume(*, actor: User, run: Run, now: datetime | None = None) -> Run:
    """Continue a paused run where it stopped; the circuit breaker counts only dials finished from now on."""
    with transaction.atomic():
        locked = _locked(run)
        if locked.state != State.PAUSED:
            raise RunError(f"This run is {locked.state}: only a paused run can be resumed.", "not_paused")
        if locked.campaign.status == Campaign.Status.ARCHIVED:
            raise RunError("The campaign is archived: its runs cannot be resumed.", "campaign_archived")
        run_transition(
            run=locked,
            to=State.RUNNING,
            reason=f"Resumed by {actor_label(actor)}",
            kind="resumed",
            actor=actor,
            at=now or timezone.now(),
        )
        # Whatever follow-up was scheduled while paused, the resumed run gets a tick now.
        locked.next_tick_at = None
        locked.save(update_fields=["next_tick_at"])
        _queue_tick(locked.pk)
    return locked


def run_cancel(*, actor: User, run: Run, now: datetime | None = None) -> Run:
    """Cancel now: waiting contacts are skipped (reason "canceled"); calls in flight finish and are reconciled."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(run)
        if locked.state not in Run.ACTIVE_STATES:
            raise RunError(f"This run is already {locked.state}.", "run_finished")
        skipped = RunContact.objects.filter(run=locked, state=RunContact.State.PENDING).update(
            state=RunContact.State.SKIPPED,
            last_outcome="canceled",
            outcome_reason=f"Run canceled by {actor_label(actor)}",
            waiting_for_window=False,
            next_attempt_at=None,
            updated_at=now,
        )
        locked.queued = max(0, locked.queued - skipped)
        locked.outside_window = 0
        locked.save(update_fields=["queued", "outside_window"])
        in_flight = locked.dialing
        tail = f"; {in_flight} call(s) in progress will end on their own" if in_flight else ""
        run_transition(
            run=locked,
            to=State.CANCELED,
            reason=f"Canceled by {actor_label(actor)}: {skipped} waiting contact(s) skipped{tail}",
            kind="canceled",
            actor=actor,
            at=now,
            data={"skipped": skipped, "in_flight": in_flight},
        )
        if in_flight:
            _queue_tick(locked.pk)
    return locked
