"""Contacts, do-not-call lists, campaigns and their outbound runs.

A run's whole state lives in these rows (which contacts are pending, which are being dialed, how many attempts
each had, what the scheduler decided and why), never in a worker's memory: any worker can pick a run up where
another one died.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Contact(models.Model):
    team = models.ForeignKey("crm.Team", on_delete=models.CASCADE, related_name="contacts")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts"
    )
    name = models.CharField(max_length=200)
    company = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, help_text="E.164, e.g. +14155550123.")
    other_phones = models.JSONField(default=list, blank=True, help_text="Further numbers, each E.164.")
    timezone = models.CharField(
        max_length=64, blank=True, help_text="IANA name (Europe/Paris); inferred from the number when not given."
    )
    do_not_call = models.BooleanField(default=False)
    custom_fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # Contacts are deduplicated by normalised number within a team.
            models.UniqueConstraint(fields=["team", "phone"], name="contact_unique_phone_per_team"),
            models.CheckConstraint(condition=Q(phone__startswith="+"), name="contact_phone_e164"),
        ]
        indexes = [
            # The contacts page: a team's contacts by name.
            models.Index(fields=["team", "name"], name="contact_team_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone})"


class DoNotCall(models.Model):
    """A team-wide do-not-call entry; every run checks the number at dial time, not only at launch."""

    team = models.ForeignKey("crm.Team", on_delete=models.CASCADE, related_name="do_not_call")
    phone = models.CharField(max_length=32, help_text="E.164.")
    reason = models.CharField(max_length=255, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "id"]
        verbose_name = "do-not-call entry"
        verbose_name_plural = "do-not-call list"
        constraints = [
            models.UniqueConstraint(fields=["team", "phone"], name="dnc_unique_phone_per_team"),
            models.CheckConstraint(condition=Q(phone__startswith="+"), name="dnc_phone_e164"),
        ]

    def __str__(self) -> str:
        return self.phone


def _import_upload_to(instance: ContactImport, filename: str) -> str:
    return f"imports/{instance.team_id}/{timezone.now():%Y/%m}/{filename}"


class ContactImport(models.Model):
    """One CSV upload: the file, the column mapping, progress, and the per-row report (ContactImportRow)."""

    class Status(models.TextChoices):
        PREVIEW = "preview", "Awaiting confirmation"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    team = models.ForeignKey("crm.Team", on_delete=models.CASCADE, related_name="contact_imports")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="contact_imports"
    )
    file = models.FileField(upload_to=_import_upload_to, max_length=255)
    original_name = models.CharField(max_length=255, blank=True)
    encoding = models.CharField(max_length=32, blank=True)
    delimiter = models.CharField(max_length=1, default=",")
    headers = models.JSONField(default=list, blank=True)
    mapping = models.JSONField(default=dict, blank=True, help_text="Contact field -> CSV column.")
    default_region = models.CharField(
        max_length=2, blank=True, help_text="ISO country for numbers written without +country code."
    )
    update_existing = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PREVIEW)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life: queued, claimed by a worker, or a batch committed."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # resume_stalled_imports: queued or running imports that stopped showing signs of life.
            models.Index(
                fields=["heartbeat_at"], condition=Q(status__in=["queued", "running"]), name="import_live_heartbeat_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["preview", "queued", "running", "completed", "failed", "canceled"]),
                name="contact_import_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(processed_rows__lte=F("total_rows")) | Q(total_rows=0),
                name="contact_import_progress_bounded",
            ),
        ]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.original_name})"


class ContactImportRow(models.Model):
    """What happened to one data row of an import, and why."""

    class Outcome(models.TextChoices):
        IMPORTED = "imported", "Imported"
        UPDATED = "updated", "Updated"
        SKIPPED = "skipped", "Skipped"

    contact_import = models.ForeignKey(ContactImport, on_delete=models.CASCADE, related_name="rows")
    row_number = models.PositiveIntegerField(help_text="1-based line of the file, the header being line 1.")
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reason = models.CharField(max_length=255, blank=True)
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    data = models.JSONField(default=dict, blank=True, help_text="The row as read, for the report.")

    class Meta:
        ordering = ["contact_import", "row_number"]
        constraints = [
            models.UniqueConstraint(fields=["contact_import", "row_number"], name="import_row_unique_number"),
            models.CheckConstraint(
                condition=Q(outcome__in=["imported", "updated", "skipped"]), name="import_row_outcome_valid"
            ),
        ]
        indexes = [
            # The report's filter: "show me the skipped rows".
            models.Index(fields=["contact_import", "outcome", "row_number"], name="import_row_outcome_idx"),
        ]

    def __str__(self) -> str:
        return f"Row {self.row_number}: {self.outcome}"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    class Dialer(models.TextChoices):
        SIMULATOR = "simulator", "Simulator (a stand-in voice agent)"
        HTTP = "http", "HTTP voice agent"

    name = models.CharField(max_length=200)
    team = models.ForeignKey("crm.Team", on_delete=models.CASCADE, related_name="campaigns")
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="managed_campaigns"
    )
    agents = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="campaigns_assigned",
        help_text="The agents who own the calls, in turn. None: the campaign's manager.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    caller_id = models.CharField(max_length=32, blank=True, help_text="The number shown to the people called.")
    description = models.TextField(blank=True)

    # The voice agent: which backend dials, and its settings (agent URL, script/prompt id, signing secret,
    # simulator odds and call lengths...). The backend validates its own settings.
    dialer = models.CharField(max_length=16, choices=Dialer.choices, default=Dialer.SIMULATOR)
    dialer_settings = models.JSONField(default=dict, blank=True)

    # Who is called: the explicit list when it has members, else every contact of the team matching the filter
    # (keys: company, owner, custom field equality as {"custom": {"tier": "gold"}}).
    contacts = models.ManyToManyField(Contact, blank=True, related_name="campaigns")
    contact_filter = models.JSONField(default=dict, blank=True)

    # Calling window, in each contact's local time. Days are ISO weekdays 1 (Monday) .. 7 (Sunday).
    window_days = models.JSONField(default=list, blank=True, help_text="e.g. [1, 2, 3, 4, 5]; empty means every day.")
    window_start = models.TimeField(default=dt.time(9, 0))
    window_end = models.TimeField(default=dt.time(20, 0))
    default_timezone = models.CharField(
        max_length=64, default="UTC", help_text="For contacts whose timezone is unknown."
    )

    max_concurrent_calls = models.PositiveSmallIntegerField(default=5)
    max_calls_per_minute = models.PositiveSmallIntegerField(default=30)
    max_call_seconds = models.PositiveIntegerField(
        default=900, help_text="A dial with no final outcome after this long counts as failed."
    )

    # Retry rules per outcome: the delay before the next attempt and the total attempts allowed.
    retry_no_answer_delay = models.PositiveIntegerField(default=3600, help_text="Seconds.")
    retry_no_answer_max_attempts = models.PositiveSmallIntegerField(default=3)
    retry_busy_delay = models.PositiveIntegerField(default=600, help_text="Seconds.")
    retry_busy_max_attempts = models.PositiveSmallIntegerField(default=3)
    retry_failed_delay = models.PositiveIntegerField(default=1800, help_text="Seconds.")
    retry_failed_max_attempts = models.PositiveSmallIntegerField(default=2)

    # Circuit breaker: pause the run when, among the last `breaker_window` finished dials (at least
    # `breaker_min_dials` of them), the share that failed reaches `breaker_failure_rate`.
    breaker_window = models.PositiveSmallIntegerField(default=20)
    breaker_min_dials = models.PositiveSmallIntegerField(default=10)
    breaker_failure_rate = models.FloatField(default=0.5)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="campaign_unique_name_per_team"),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "active", "paused", "archived"]), name="campaign_status_valid"
            ),
            models.CheckConstraint(condition=Q(dialer__in=["simulator", "http"]), name="campaign_dialer_valid"),
            models.CheckConstraint(condition=Q(max_concurrent_calls__gte=1), name="campaign_concurrency_positive"),
            models.CheckConstraint(condition=Q(max_calls_per_minute__gte=1), name="campaign_rate_positive"),
            models.CheckConstraint(
                condition=Q(breaker_failure_rate__gt=0) & Q(breaker_failure_rate__lte=1),
                name="campaign_breaker_rate_fraction",
            ),
            models.CheckConstraint(condition=~Q(window_start=F("window_end")), name="campaign_window_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


# How a campaign paces its run: the calling window, limits, retry rules and breaker. Forms, serializers and the
# services read and write them alike.
CAMPAIGN_PACING_FIELDS = (
    "window_start",
    "window_end",
    "default_timezone",
    "max_concurrent_calls",
    "max_calls_per_minute",
    "max_call_seconds",
    "retry_no_answer_delay",
    "retry_no_answer_max_attempts",
    "retry_busy_delay",
    "retry_busy_max_attempts",
    "retry_failed_delay",
    "retry_failed_max_attempts",
    "breaker_window",
    "breaker_min_dials",
    "breaker_failure_rate",
)


class Run(models.Model):
    """One outbound run of a campaign. Counters are kept by the scheduler in the same transaction as the rows
    they count, so the progress bar never disagrees with the calls list."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        CANCELED = "canceled", "Canceled"
        FAILED = "failed", "Failed"

    ACTIVE_STATES = ("pending", "running", "paused")

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="runs")
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="launched_runs"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    state_reason = models.CharField(max_length=255, blank=True, help_text="Why it last changed state.")

    total = models.PositiveIntegerField(default=0)
    queued = models.PositiveIntegerField(default=0, help_text="Waiting for a (first or next) attempt.")
    dialing = models.PositiveIntegerField(default=0, help_text="In flight now.")
    connected = models.PositiveIntegerField(default=0, help_text="Dials that were answered.")
    completed = models.PositiveIntegerField(default=0, help_text="Contacts whose call completed.")
    no_answer = models.PositiveIntegerField(default=0)
    busy = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped_dnc = models.PositiveIntegerField(default=0)
    outside_window = models.PositiveIntegerField(
        default=0, help_text="Contacts waiting because it is outside their calling window now."
    )
    dials = models.PositiveIntegerField(default=0, help_text="Dial attempts made, retries included.")
    agent_cursor = models.PositiveIntegerField(default=0, help_text="Round-robin position in the campaign's agents.")
    # The scheduler's own bookkeeping (campaigns/scheduler/). A tick re-queues itself only when no follow-up is
    # pending (next_tick_at is empty or overdue), so launch, resume, the session hook and beat never multiply the
    # chain of ticks; a lost follow-up is overdue for the next tick that runs, which starts a new one.
    next_tick_at = models.DateTimeField(null=True, blank=True, help_text="When the scheduled follow-up tick is due.")
    breaker_reset_at = models.DateTimeField(
        null=True, blank=True, help_text="The circuit breaker counts only dials finished after this (set on resume)."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["pending", "running", "paused", "completed", "canceled", "failed"]),
                name="run_state_valid",
            ),
            # At most one live run per campaign: two runs would dial the same contacts.
            models.UniqueConstraint(
                fields=["campaign"], condition=Q(state__in=["pending", "running", "paused"]), name="run_one_active"
            ),
        ]
        indexes = [
            # The beat safety net: runs that need a scheduler tick.
            models.Index(fields=["state"], condition=Q(state="running"), name="run_running_idx"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.campaign_id}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def finished_contacts(self) -> int:
        return self.completed + self.no_answer + self.busy + self.failed + self.skipped_dnc


class RunContact(models.Model):
    """A contact's place in a run: the scheduler's work queue. Claiming a contact is a conditional update of
    `state` from pending to dialing, so one contact is never dialed twice at once."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        DIALING = "dialing", "Being dialed"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="targets")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="run_targets")
    position = models.PositiveIntegerField(help_text="Dial order within the run.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Not before; null means now.")
    last_outcome = models.CharField(max_length=16, blank=True)
    outcome_reason = models.CharField(max_length=255, blank=True)
    waiting_for_window = models.BooleanField(
        default=False, help_text="Pending until its calling window opens (counted in Run.outside_window)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "contact"], name="run_contact_unique"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "dialing", "done", "skipped"]), name="run_contact_state_valid"
            ),
        ]
        indexes = [
            # The scheduler's pick: a run's pending contacts that are due, in dial order.
            models.Index(
                fields=["run", "next_attempt_at", "position"],
                condition=Q(state="pending"),
                name="run_contact_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Contact {self.contact_id} in run {self.run_id} ({self.state})"


class Dial(models.Model):
    """One dial attempt: the CallSession created before the request left, and what became of it."""

    class Outcome(models.TextChoices):
        COMPLETED = "completed", "Completed"
        NO_ANSWER = "no_answer", "No answer"
        BUSY = "busy", "Busy"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="dials_made")
    target = models.ForeignKey(RunContact, on_delete=models.CASCADE, related_name="dials")
    session = models.OneToOneField("calls.CallSession", on_delete=models.PROTECT, related_name="dial")
    attempt = models.PositiveSmallIntegerField()
    dialed_at = models.DateTimeField()
    answered = models.BooleanField(default=False)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    outcome_reason = models.CharField(max_length=255, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Hand-off to the dialer backend, after the session and this row were committed. A dial whose hand-off never
    # completed (the worker died in between) is handed off again by a later tick with the same session id, which
    # is the voice agent's idempotency key: the contact is neither lost nor called twice.
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the dialer backend accepted the request.")
    dispatch_attempts = models.PositiveSmallIntegerField(default=0)
    dispatch_claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the latest hand-off started; claimed with a conditional update."
    )

    class Meta:
        ordering = ["run", "dialed_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["target", "attempt"], name="dial_unique_attempt"),
            # The database's own guard that a contact is never dialed twice at once within a run.
            models.UniqueConstraint(
                fields=["target"], condition=Q(finished_at__isnull=True), name="dial_one_in_flight"
            ),
            models.CheckConstraint(
                condition=Q(outcome="") | Q(outcome__in=["completed", "no_answer", "busy", "failed", "canceled"]),
                name="dial_outcome_valid",
            ),
        ]
        indexes = [
            # Pacing: dials in flight, and dials of the last minute.
            models.Index(
                fields=["run", "finished_at"], condition=Q(finished_at__isnull=True), name="dial_in_flight_idx"
            ),
            models.Index(fields=["run", "-dialed_at"], name="dial_recent_idx"),
            # The circuit breaker's window: the run's latest finished dials.
            models.Index(
                fields=["run", "-finished_at"], condition=Q(finished_at__isnull=False), name="dial_finished_recent_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Dial {self.attempt} of contact {self.target_id} ({self.outcome or 'in flight'})"


class RunLog(models.Model):
    """Append-only log of what the scheduler (or a person) decided for a run, and why."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(db_index=True)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    kind = models.CharField(max_length=32, help_text="launched, dialed, retry_scheduled, breaker_tripped, ...")
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["run", "at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(level__in=["info", "warning", "error"]), name="run_log_level_valid"),
        ]
        indexes = [models.Index(fields=["run", "-id"], name="run_log_recent_idx")]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind}: {self.message[:60]}"
