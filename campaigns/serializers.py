"""API shapes of campaigns and runs. Input and output serializers are separate: what a client may send is not
what it reads back (a dialer's signing secret is written, never read)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db.models import Field
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.dialers import DialerSettingsInvalid, dialer_build
from campaigns.models import CAMPAIGN_PACING_FIELDS, Campaign, Dial, Run, RunLog
from campaigns.phones import InvalidPhoneNumber, InvalidTimezone, phone_normalize, timezone_clean
from campaigns.run_selectors import run_progress
from campaigns.runs import RunError, contact_filter_validate

SECRET_SETTINGS = frozenset({"signing_secret"})


def _absolute(context: Mapping[str, Any], path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request is not None else path


def public_dialer_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings without their secrets: a secret is write-only, its presence shown as ``<name>_set``."""
    shown = {key: value for key, value in settings.items() if key not in SECRET_SETTINGS}
    for key in SECRET_SETTINGS:
        if key in settings:
            shown[f"{key}_set"] = bool(settings[key])
    return shown


# --- Campaigns ---------------------------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$",
        "example": "09:00:00",
    }
)
class LocalTimeField(serializers.TimeField):
    """A wall-clock time ("09:00" or "09:00:00") that applies in each contact's own time zone, so it carries no
    offset. OpenAPI's "time" format is RFC 3339's, which requires one: documented as a pattern instead."""

    def to_internal_value(self, value: Any) -> dt.time:
        parsed = super().to_internal_value(value)
        if parsed.tzinfo is not None:
            self.fail("invalid", format="hh:mm[:ss], a local time without an offset")
        return parsed


class CampaignOutputSerializer(serializers.ModelSerializer[Campaign]):
    url = serializers.SerializerMethodField()
    runs_url = serializers.SerializerMethodField()
    team = serializers.CharField(source="team.name", read_only=True)
    team_id = serializers.IntegerField(read_only=True)
    manager = serializers.CharField(source="manager.username", read_only=True, allow_null=True, default=None)
    agents = serializers.SerializerMethodField()
    dialer_settings = serializers.SerializerMethodField()
    contacts_count = serializers.SerializerMethodField(help_text="Contacts on the explicit list (0: the filter).")
    window_start = LocalTimeField(read_only=True)
    window_end = LocalTimeField(read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "url",
            "runs_url",
            "name",
            "team",
            "team_id",
            "manager",
            "agents",
            "status",
            "caller_id",
            "description",
            "dialer",
            "dialer_settings",
            "contact_filter",
            "contacts_count",
            "window_days",
            *CAMPAIGN_PACING_FIELDS,
            "created_at",
            "updated_at",
        ]

    def get_url(self, obj: Campaign) -> str:
        return _absolute(self.context, reverse("api-campaign-detail", kwargs={"campaign_id": obj.pk}))

    def get_runs_url(self, obj: Campaign) -> str:
        return _absolute(self.context, reverse("api-campaign-runs", kwargs={"campaign_id": obj.pk}))

    def get_agents(self, obj: Campaign) -> list[str]:
        return [agent.username for agent in obj.agents.all()]

    def get_dialer_settings(self, obj: Campaign) -> dict[str, Any]:
        return public_dialer_settings(dict(obj.dialer_settings or {}))

    def get_contacts_count(self, obj: Campaign) -> int:
        annotated = getattr(obj, "contacts_count", None)
        return int(annotated) if annotated is not None else obj.contacts.count()


class CampaignInputSerializer(serializers.Serializer[dict[str, Any]]):
    """Create (``name`` required) or PATCH (any subset). Cross-field rules are checked against the campaign's
    current values by ``validate_against``."""

    name = serializers.CharField(max_length=200)
    team = serializers.IntegerField(required=False, help_text="Team id; defaults to the one team you manage.")
    description = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=Campaign.Status.choices, required=False)
    caller_id = serializers.CharField(required=False, allow_blank=True, max_length=32)
    agents = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, help_text="Usernames of the team's agents."
    )
    contact_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=100_000,
        help_text="The explicit contact list (replaces it; [] clears it and the filter applies).",
    )
    dialer = serializers.ChoiceField(choices=Campaign.Dialer.choices, required=False)
    dialer_settings = serializers.JSONField(required=False)
    contact_filter = serializers.JSONField(required=False)
    window_days = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=7), required=False, max_length=7
    )
    window_start = LocalTimeField(required=False)
    window_end = LocalTimeField(required=False)
    default_timezone = serializers.CharField(required=False, max_length=64)
    max_concurrent_calls = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    max_calls_per_minute = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    max_call_seconds = serializers.IntegerField(required=False, min_value=10, max_value=4 * 3600)
    retry_no_answer_delay = serializers.IntegerField(required=False, min_value=0, max_value=7 * 24 * 3600)
    retry_no_answer_max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=20)
    retry_busy_delay = serializers.IntegerField(required=False, min_value=0, max_value=7 * 24 * 3600)
    retry_busy_max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=20)
    retry_failed_delay = serializers.IntegerField(required=False, min_value=0, max_value=7 * 24 * 3600)
    retry_failed_max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=20)
    breaker_window = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    breaker_min_dials = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    breaker_failure_rate = serializers.FloatField(required=False, min_value=0.01, max_value=1.0)

    def validate_caller_id(self, value: str) -> str:
        if not value:
            return value
        try:
            return phone_normalize(value).e164
        except InvalidPhoneNumber as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_default_timezone(self, value: str) -> str:
        try:
            cleaned = timezone_clean(value)
        except InvalidTimezone as exc:
            raise serializers.ValidationError(str(exc)) from exc
        if not cleaned:
            raise serializers.ValidationError("Give an IANA time zone name such as Europe/Paris.")
        return cleaned

    def validate_window_days(self, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each weekday once (1 = Monday ... 7 = Sunday).")
        return sorted(value)

    def validate_contact_filter(self, value: Any) -> dict[str, Any]:
        try:
            return contact_filter_validate(value)
        except RunError as exc:
            raise serializers.ValidationError(exc.detail) from exc

    def validate_against(self, data: dict[str, Any], current: Campaign | None) -> dict[str, Any]:
        """Rules across fields, with the campaign's current values standing in for those not sent."""

        def value(name: str) -> Any:
            if name in data:
                return data[name]
            if current is not None:
                return getattr(current, name)
            field = Campaign._meta.get_field(name)
            return field.get_default() if isinstance(field, Field) else None

        errors: dict[str, Any] = {}
        start, end = value("window_start"), value("window_end")
        if isinstance(start, dt.time) and start == end:
            errors["window_end"] = ["The window would never be open: start and end are the same time."]
        if value("breaker_min_dials") > value("breaker_window"):
            errors["breaker_min_dials"] = ["Cannot exceed breaker_window: the breaker would never have enough dials."]
        if "dialer" in data or "dialer_settings" in data:
            dialer = value("dialer")
            settings = data.get("dialer_settings", value("dialer_settings"))
            if not isinstance(settings, dict):
                errors["dialer_settings"] = ["Must be a JSON object."]
            else:
                previous = dict(current.dialer_settings or {}) if current is not None else {}
                # A secret is write-only: a client that PATCHes the other settings of the same backend keeps it.
                if current is not None and current.dialer == dialer:
                    for key in SECRET_SETTINGS:
                        if key not in settings and key in previous:
                            settings = {**settings, key: previous[key]}
                try:
                    dialer_build(name=dialer, settings=settings)
                except DialerSettingsInvalid as exc:
                    errors["dialer_settings"] = exc.errors
                data["dialer_settings"] = settings
        if errors:
            raise serializers.ValidationError(errors)
        return data


class CampaignCreateInputSerializer(CampaignInputSerializer):
    pass


class CampaignUpdateInputSerializer(CampaignInputSerializer):
    name = serializers.CharField(max_length=200, required=False)


# --- Runs --------------------------------------------------------------------------------------------------


class RunOutputSerializer(serializers.Serializer[Run]):
    """A run's progress (campaigns.run_selectors.run_progress) with its links."""

    id = serializers.IntegerField()
    url = serializers.URLField()
    campaign = serializers.IntegerField()
    campaign_name = serializers.CharField()
    state = serializers.ChoiceField(choices=Run.State.choices)
    state_label = serializers.CharField()
    state_reason = serializers.CharField()
    active = serializers.BooleanField()
    total = serializers.IntegerField()
    queued = serializers.IntegerField(help_text="Waiting for a first or next attempt.")
    dialing = serializers.IntegerField(help_text="Calls in flight.")
    connected = serializers.IntegerField(help_text="Dials that were answered.")
    completed = serializers.IntegerField()
    no_answer = serializers.IntegerField()
    busy = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped_dnc = serializers.IntegerField()
    skipped_canceled = serializers.IntegerField()
    outside_window = serializers.IntegerField(help_text="Waiting because their calling window is closed now.")
    dials = serializers.IntegerField(help_text="Dial attempts, retries included.")
    finished = serializers.IntegerField(help_text="Contacts with a final outcome.")
    percent = serializers.FloatField()
    launched_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()
    eta = serializers.DateTimeField(allow_null=True, help_text="Estimated end at the pace so far.")
    dials_url = serializers.URLField()
    log_url = serializers.URLField()

    def to_representation(self, instance: Run) -> dict[str, Any]:
        progress = run_progress(run=instance)
        return {
            **progress,
            "url": _absolute(self.context, reverse("api-run-detail", kwargs={"run_id": instance.pk})),
            "campaign_name": instance.campaign.name,
            "dials_url": _absolute(self.context, reverse("api-run-dials", kwargs={"run_id": instance.pk})),
            "log_url": _absolute(self.context, reverse("api-run-log", kwargs={"run_id": instance.pk})),
        }


class RunPauseInputSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


class DialOutputSerializer(serializers.ModelSerializer[Dial]):
    contact = serializers.SerializerMethodField()
    session = serializers.SerializerMethodField()

    class Meta:
        model = Dial
        fields = [
            "id",
            "attempt",
            "dialed_at",
            "sent_at",
            "answered",
            "outcome",
            "outcome_reason",
            "finished_at",
            "contact",
            "session",
        ]

    def get_contact(self, obj: Dial) -> dict[str, Any]:
        contact = obj.target.contact
        return {"id": contact.pk, "name": contact.name, "phone": contact.phone}

    def get_session(self, obj: Dial) -> dict[str, Any]:
        session = obj.session
        return {
            "id": str(session.pk),
            "url": _absolute(self.context, reverse("api-session-detail", kwargs={"session_id": str(session.pk)})),
            "status": session.status,
            "owner": session.owner.username if session.owner_id and session.owner else None,
            "duration_ms": session.duration_ms,
            "recording_status": session.recording_status,
        }


class RunLogOutputSerializer(serializers.ModelSerializer[RunLog]):
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = RunLog
        fields = ["id", "at", "level", "kind", "message", "data", "actor"]
