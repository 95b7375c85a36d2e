"""The campaign form of the campaign pages: every setting of a campaign, with errors a manager can act on.

The form speaks the page's language (percentages, one field per dialer setting, a "who is called" choice) and
hands ``campaigns.campaign_services`` plain model values through ``campaign_values()``: the JSON columns
(``dialer_settings``, ``contact_filter``, ``window_days``) are built here, in one place.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.validators import URLValidator

from calls.models import Source
from campaigns.dialers import DialerSettingsInvalid, dialer_build
from campaigns.models import CAMPAIGN_PACING_FIELDS, Campaign
from campaigns.phones import InvalidPhoneNumber, phone_normalize
from campaigns.runs import CUSTOM_KEY_RE
from crm.models import Team, User

WEEKDAYS = [(1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (7, "Sun")]
ALL_DAYS = [day for day, _ in WEEKDAYS]

TARGET_ALL = "all"
TARGET_FILTER = "filter"
TARGET_LIST = "list"

# The simulator's outcome odds, in the order the form shows them: (form field, dialer_settings key, label).
SIMULATOR_ODDS = (
    ("sim_completed_percent", "completed", "Answered and completed"),
    ("sim_no_answer_percent", "no_answer", "No answer"),
    ("sim_busy_percent", "busy", "Busy"),
    ("sim_failed_percent", "failed", "Failed"),
)
SIMULATOR_DEFAULT_ODDS = {"completed": 60, "no_answer": 20, "busy": 10, "failed": 10}
SIGNING_SECRET_MIN_CHARS = 16
# Where a backend's complaint about one of its settings is shown on the form.
SETTING_FIELDS = {
    "url": "http_url",
    "source": "http_source",
    "script_id": "http_script_id",
    "signing_secret": "http_signing_secret",
    "odds": "sim_completed_percent",
    "min_seconds": "sim_min_seconds",
    "max_seconds": "sim_max_seconds",
}

WEEK_SECONDS = 7 * 24 * 3600
HTTP_FIELDS = ("http_url", "http_script_id", "http_source", "http_signing_secret")
SIMULATOR_FIELDS = (*(name for name, _, _ in SIMULATOR_ODDS), "sim_min_seconds", "sim_max_seconds")


@cache
def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones()) if "/" in name or name == "UTC"]


def _int(
    label: str, *, min_value: int, max_value: int, help_text: str = "", required: bool = True
) -> forms.IntegerField:
    named = label.replace("%", "%%")  # the messages are %-formatted with the limit
    return forms.IntegerField(
        label=label,
        required=required,
        min_value=min_value,
        max_value=max_value,
        help_text=help_text,
        error_messages={
            "required": f"{label}: enter a number.",
            "min_value": f"{named} must be at least %(limit_value)s.",
            "max_value": f"{named} can be at most %(limit_value)s.",
            "invalid": f"{label}: enter a whole number.",
        },
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )


def _time(label: str) -> forms.TimeField:
    return forms.TimeField(
        label=label,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        error_messages={"required": f"{label}: enter a time.", "invalid": f"{label}: enter a time such as 09:00."},
    )


def odds_as_percentages(odds: dict[str, Any]) -> list[int]:
    """The simulator's outcome weights (any non-negative numbers) as whole percentages adding up to 100, in
    SIMULATOR_ODDS order: the form asks for percentages, the backend takes weights."""
    weights = [odds.get(key, 0) for _, key, _ in SIMULATOR_ODDS] if odds else []
    if not all(isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights) or not sum(weights):
        return [SIMULATOR_DEFAULT_ODDS[key] for _, key, _ in SIMULATOR_ODDS]
    exact = [100 * w / sum(weights) for w in weights]
    shares = [int(x) for x in exact]
    # Largest remainders first, so the rounded shares still add up to 100.
    for index in sorted(range(len(exact)), key=lambda i: exact[i] - shares[i], reverse=True)[: 100 - sum(shares)]:
        shares[index] += 1
    return shares


def as_dict(value: object) -> dict[str, Any]:
    """A JSON column's nested object, or an empty one when it holds anything else."""
    return value if isinstance(value, dict) else {}


class PeopleField(forms.ModelMultipleChoiceField):  # type: ignore[type-arg]  # untyped in django-stubs
    """People by their names rather than usernames."""

    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_full_name() or obj.username)


def normalise_caller_id(raw: str) -> str:
    """E.164 for a number written with its country code; ``forms.ValidationError`` with the reason otherwise
    (the contacts' own rule, ``phone_normalize``, without a default country: a caller id is written in full)."""
    text = raw.strip()
    if not text:
        return ""
    try:
        return phone_normalize(text).e164
    except InvalidPhoneNumber as exc:
        raise forms.ValidationError(str(exc)) from None


class CampaignForm(forms.Form):
    """Create (``campaign=None``) or edit a campaign.

    ``teams``: the teams the user may create campaigns in (asked only when there is more than one);
    ``team``: the campaign's team when editing (a campaign never changes team: its runs, calls and agents
    belong to it).
    """

    team = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        label="Team",
        empty_label=None,
        required=False,
        error_messages={"invalid_choice": "Choose one of the teams you manage."},
    )
    name = forms.CharField(
        label="Name",
        max_length=200,
        strip=True,
        error_messages={"required": "Give the campaign a name."},
    )
    description = forms.CharField(
        label="Description", required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000
    )
    status = forms.ChoiceField(
        label="Status",
        choices=Campaign.Status.choices,
        help_text="An archived campaign cannot be launched.",
    )
    caller_id = forms.CharField(
        label="Caller id",
        required=False,
        max_length=32,
        help_text="The number shown to the people called, with its country code: +14155550100.",
    )

    # --- The voice agent -----------------------------------------------------------------------------------
    dialer = forms.ChoiceField(label="Dialer", choices=Campaign.Dialer.choices, widget=forms.RadioSelect)
    http_url = forms.CharField(
        label="Voice agent URL",
        required=False,
        max_length=500,
        help_text="Where dial requests are POSTed, e.g. https://agent.example.com/dial.",
        widget=forms.URLInput(attrs={"placeholder": "https://"}),
    )
    http_script_id = forms.CharField(
        label="Script or prompt id",
        required=False,
        max_length=200,
        help_text="Sent with every dial request; the voice agent decides what it means.",
    )
    http_source = forms.ChoiceField(
        label="Integration",
        required=False,
        help_text="The integration the voice agent signs in as: the calls are recorded under its name.",
    )
    http_signing_secret = forms.CharField(
        label="Signing secret",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=f"Dial requests are signed with it (HMAC-SHA256); at least {SIGNING_SECRET_MIN_CHARS} characters.",
    )
    sim_completed_percent = _int("Answered and completed (%)", min_value=0, max_value=100, required=False)
    sim_no_answer_percent = _int("No answer (%)", min_value=0, max_value=100, required=False)
    sim_busy_percent = _int("Busy (%)", min_value=0, max_value=100, required=False)
    sim_failed_percent = _int("Failed (%)", min_value=0, max_value=100, required=False)
    sim_min_seconds = _int(
        "Shortest answered call (seconds)",
        min_value=1,
        max_value=3600,
        required=False,
        help_text="Empty: as long as the recording the simulator plays.",
    )
    sim_max_seconds = _int("Longest answered call (seconds)", min_value=1, max_value=3600, required=False)

    # --- Who is called ---------------------------------------------------------------------------------------
    targeting = forms.ChoiceField(
        label="Who is called",
        choices=[(TARGET_ALL, "All the team's contacts"), (TARGET_FILTER, "The team's contacts matching a filter")],
        widget=forms.RadioSelect,
    )
    filter_company = forms.CharField(label="Company", required=False, max_length=200, strip=True)
    filter_field = forms.CharField(
        label="Custom field",
        required=False,
        max_length=64,
        strip=True,
        help_text="The name of one of the contacts' custom fields, e.g. tier.",
    )
    filter_value = forms.CharField(label="Equal to", required=False, max_length=200, strip=True)

    # --- When ------------------------------------------------------------------------------------------------
    window_days = forms.TypedMultipleChoiceField(
        label="Days",
        choices=WEEKDAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one day to call on."},
    )
    window_start = _time("From")
    window_end = _time("Until")
    default_timezone = forms.ChoiceField(
        label="Default timezone",
        help_text="The window is in each contact's local time; this one is for contacts whose timezone is unknown.",
    )

    # --- Pace ------------------------------------------------------------------------------------------------
    max_concurrent_calls = _int("Concurrent calls at most", min_value=1, max_value=1000)
    max_calls_per_minute = _int("Calls per minute at most", min_value=1, max_value=6000)
    max_call_seconds = _int(
        "Longest call (seconds)",
        min_value=30,
        max_value=24 * 3600,
        help_text="A dial with no outcome after this long counts as failed.",
    )

    # --- Retries ---------------------------------------------------------------------------------------------
    retry_no_answer_delay = _int("Retry after (seconds)", min_value=0, max_value=WEEK_SECONDS)
    retry_no_answer_max_attempts = _int("Attempts at most", min_value=1, max_value=20)
    retry_busy_delay = _int("Retry after (seconds)", min_value=0, max_value=WEEK_SECONDS)
    retry_busy_max_attempts = _int("Attempts at most", min_value=1, max_value=20)
    retry_failed_delay = _int("Retry after (seconds)", min_value=0, max_value=WEEK_SECONDS)
    retry_failed_max_attempts = _int("Attempts at most", min_value=1, max_value=20)

    # --- Circuit breaker -------------------------------------------------------------------------------------
    breaker_window = _int("Look at the last … dials", min_value=1, max_value=1000)
    breaker_min_dials = _int("Once at least … dials finished", min_value=1, max_value=1000)
    breaker_failure_percent = _int("Pause when this share failed (%)", min_value=1, max_value=100)

    # --- Agents ----------------------------------------------------------------------------------------------
    agents = PeopleField(
        label="Agents",
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="They own the calls, in turn. None: the calls are the campaign manager's.",
    )

    def __init__(
        self,
        data: Any = None,
        *,
        campaign: Campaign | None = None,
        teams: list[Team] | None = None,
        explicit_contacts: int = 0,
    ) -> None:
        self.campaign = campaign
        self.explicit_contacts = explicit_contacts
        super().__init__(data, initial=self._initial(campaign))
        if campaign is not None:
            del self.fields["team"]
            team_ids = [campaign.team_id]
        else:
            options = teams or []
            self.fields["team"].queryset = Team.objects.filter(pk__in=[t.pk for t in options]).order_by("name")  # type: ignore[attr-defined]
            if options:
                self.fields["team"].initial = options[0].pk
            team_ids = [t.pk for t in options]
        agents = self.fields["agents"]
        assert isinstance(agents, forms.ModelMultipleChoiceField)  # noqa: S101  # declared above
        agents.queryset = User.objects.filter(team_id__in=team_ids, role=User.Role.AGENT, is_active=True).order_by(
            "first_name", "last_name", "username"
        )
        self.fields["default_timezone"].choices = timezone_choices()  # type: ignore[attr-defined]
        sources = list(Source.objects.filter(is_active=True).order_by("name").values_list("name", flat=True))
        current = (campaign.dialer_settings or {}).get("source", "") if campaign is not None else ""
        if current and current not in sources:
            sources.append(str(current))  # a deactivated one stays visible rather than silently switched
        self.fields["http_source"].choices = [("", "Choose an integration"), *[(s, s) for s in sources]]  # type: ignore[attr-defined]
        if explicit_contacts:
            choices = self.fields["targeting"].choices  # type: ignore[attr-defined]
            self.fields["targeting"].choices = [  # type: ignore[attr-defined]
                (
                    TARGET_LIST,
                    f"The {explicit_contacts} contact{'s' if explicit_contacts != 1 else ''} chosen one by one",
                ),
                *choices,
            ]
        self.has_secret = bool(campaign is not None and (campaign.dialer_settings or {}).get("signing_secret"))
        if self.has_secret:
            self.fields["http_signing_secret"].help_text = "A secret is set. Leave this empty to keep it."
        self.simulator_fields = [self[name] for name, _, _ in SIMULATOR_ODDS]

    def full_clean(self) -> None:
        super().full_clean()
        # Each invalid input points at its message, so a screen reader reads why when it gets the focus.
        for name in self.errors:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["aria-invalid"] = "true"
                attrs["aria-describedby"] = f"{name}-errors"

    @property
    def asks_for_team(self) -> bool:
        field = self.fields.get("team")
        return field is not None and len(field.queryset) > 1  # type: ignore[attr-defined]

    def _initial(self, campaign: Campaign | None) -> dict[str, Any]:
        source = campaign or Campaign()
        settings = source.dialer_settings or {}
        odds = as_dict(settings.get("odds"))
        contact_filter = source.contact_filter or {}
        custom = as_dict(contact_filter.get("custom"))
        field, value = next(iter(custom.items()), ("", ""))
        if campaign is not None and self.explicit_contacts:
            targeting = TARGET_LIST
        elif contact_filter.get("company") or custom:
            targeting = TARGET_FILTER
        else:
            targeting = TARGET_ALL
        initial: dict[str, Any] = {
            "name": source.name,
            "description": source.description,
            "status": source.status if campaign is not None else Campaign.Status.ACTIVE,
            "caller_id": source.caller_id,
            "dialer": source.dialer,
            "http_url": settings.get("url", ""),
            "http_script_id": settings.get("script_id", ""),
            "http_source": settings.get("source", ""),
            "sim_min_seconds": settings.get("min_seconds"),
            "sim_max_seconds": settings.get("max_seconds"),
            "targeting": targeting,
            "filter_company": contact_filter.get("company", ""),
            "filter_field": field,
            "filter_value": value,
            "window_days": source.window_days or ALL_DAYS,
            "window_start": source.window_start,
            "window_end": source.window_end,
            "default_timezone": source.default_timezone,
            "breaker_failure_percent": round(source.breaker_failure_rate * 100),
            "agents": list(campaign.agents.all()) if campaign is not None else [],
        }
        for (name, _, _), share in zip(SIMULATOR_ODDS, odds_as_percentages(odds), strict=True):
            initial[name] = share
        for name in (
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
        ):
            initial[name] = getattr(source, name)
        return initial

    # --- Validation --------------------------------------------------------------------------------------------

    def clean_team(self) -> Team | None:
        team = self.cleaned_data.get("team")
        if team is None and self.campaign is None:
            choices = list(self.fields["team"].queryset)  # type: ignore[attr-defined]
            if len(choices) != 1:
                raise forms.ValidationError("Choose the team the campaign belongs to.")
            return choices[0]  # type: ignore[no-any-return]
        return team if isinstance(team, Team) else None

    def clean_caller_id(self) -> str:
        return normalise_caller_id(self.cleaned_data.get("caller_id", ""))

    def clean_filter_field(self) -> str:
        name = str(self.cleaned_data.get("filter_field", ""))
        if name and (not CUSTOM_KEY_RE.match(name) or "__" in name):
            raise forms.ValidationError("A custom field's name is letters, digits, spaces, - and _ (no double _).")
        return name

    def clean_http_url(self) -> str:
        url = str(self.cleaned_data.get("http_url", "")).strip()
        if not url:
            return ""
        try:
            URLValidator(schemes=["http", "https"])(url)
        except forms.ValidationError:
            raise forms.ValidationError("Enter the full address of the voice agent, starting with https://.") from None
        if urlsplit(url).username or urlsplit(url).password:
            raise forms.ValidationError("Put no user name or password in the URL: use the signing secret.")
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # The other backend's fields are not used: a leftover mistake there must not block saving.
        unused = HTTP_FIELDS if data.get("dialer") == Campaign.Dialer.SIMULATOR else SIMULATOR_FIELDS
        for name in unused:
            self.errors.pop(name, None)
        self._check_window(data)
        self._check_dialer(data)
        self._check_targeting(data)
        self._check_breaker(data)
        return data

    def _check_window(self, data: dict[str, Any]) -> None:
        start, end = data.get("window_start"), data.get("window_end")
        if isinstance(start, dt.time) and isinstance(end, dt.time):
            start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
            data["window_start"], data["window_end"] = start, end
            if start == end:
                self.add_error(
                    "window_end",
                    "The calling window starts and ends at the same time, so it would never be open. "
                    "For a window open all day, use 00:00 until 23:59.",
                )

    def _check_dialer(self, data: dict[str, Any]) -> None:
        if data.get("dialer") == Campaign.Dialer.HTTP:
            self._check_http(data)
        elif data.get("dialer") == Campaign.Dialer.SIMULATOR:
            self._check_simulator(data)
        dialer_fields = ("dialer", *HTTP_FIELDS, *SIMULATOR_FIELDS)
        if data.get("dialer") in Campaign.Dialer.values and not any(name in self.errors for name in dialer_fields):
            # The backend has the last word on its own settings.
            try:
                dialer_build(name=data["dialer"], settings=self._dialer_settings())
            except DialerSettingsInvalid as exc:
                for setting, message in exc.errors.items():
                    field = SETTING_FIELDS.get(setting)
                    self.add_error(field, message if field else f"Dialer setting {setting}: {message}")

    def _check_http(self, data: dict[str, Any]) -> None:
        if not data.get("http_url") and "http_url" not in self.errors:
            self.add_error("http_url", "An HTTP voice agent needs its URL: dial requests are sent there.")
        if not data.get("http_source"):
            self.add_error("http_source", "Choose the integration the voice agent signs in as.")
        secret = data.get("http_signing_secret", "")
        if secret and len(secret) < SIGNING_SECRET_MIN_CHARS:
            self.add_error(
                "http_signing_secret", f"Use at least {SIGNING_SECRET_MIN_CHARS} characters: it signs every call."
            )
        elif not secret and not self._old_setting("signing_secret"):
            self.add_error("http_signing_secret", "An HTTP voice agent needs a signing secret to check requests.")

    def _check_simulator(self, data: dict[str, Any]) -> None:
        for name, _, _ in SIMULATOR_ODDS:
            if data.get(name) is None and name not in self.errors:
                self.add_error(name, f"{self.fields[name].label}: enter a number.")
        odds = [data.get(name) for name, _, _ in SIMULATOR_ODDS]
        if all(isinstance(odd, int) for odd in odds) and sum(odds) != 100:  # type: ignore[arg-type]
            self.add_error(
                "sim_completed_percent",
                f"The simulator's outcome shares add up to {sum(odds)} %; they must add up to 100 %.",  # type: ignore[arg-type]
            )
        low, high = data.get("sim_min_seconds"), data.get("sim_max_seconds")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            self.add_error("sim_max_seconds", "The longest call cannot be shorter than the shortest one.")

    def _old_setting(self, name: str) -> Any:
        if self.campaign is None or self.campaign.dialer != Campaign.Dialer.HTTP:
            return None
        return (self.campaign.dialer_settings or {}).get(name)

    def _check_targeting(self, data: dict[str, Any]) -> None:
        if data.get("targeting") != TARGET_FILTER:
            return
        company, field, value = data.get("filter_company"), data.get("filter_field"), data.get("filter_value")
        if not company and not field:
            self.add_error("filter_company", "Give a company, a custom field, or both to filter the contacts by.")
        if field and not value:
            self.add_error("filter_value", "Give the value the custom field must have.")
        if value and not field and "filter_field" not in self.errors:
            self.add_error("filter_field", "Name the custom field that must have this value.")

    def _check_breaker(self, data: dict[str, Any]) -> None:
        window, least = data.get("breaker_window"), data.get("breaker_min_dials")
        if isinstance(window, int) and isinstance(least, int) and least > window:
            self.add_error(
                "breaker_min_dials",
                f"The breaker looks at the last {window} dials; it cannot wait for {least} of them.",
            )

    # --- Output --------------------------------------------------------------------------------------------------

    def selected_team(self) -> Team:
        """The team a new campaign is created in (only after ``is_valid()``)."""
        if self.campaign is not None:
            return self.campaign.team
        team = self.cleaned_data["team"]
        assert isinstance(team, Team)  # noqa: S101  # a ModelChoiceField of teams
        return team

    def campaign_values(self) -> dict[str, Any]:
        """The model fields as ``campaign_create`` / ``campaign_update`` take them (only after ``is_valid()``)."""
        data = self.cleaned_data
        values = {
            name: data[name]
            for name in ("name", "description", "status", "caller_id", "dialer", *CAMPAIGN_PACING_FIELDS)
            # The form asks for the breaker's threshold as a percentage: converted below.
            if name != "breaker_failure_rate"
        }
        days = sorted(set(data["window_days"]))
        values["window_days"] = [] if days == ALL_DAYS else days
        values["breaker_failure_rate"] = data["breaker_failure_percent"] / 100
        values["dialer_settings"] = self._dialer_settings()
        values["contact_filter"] = self._contact_filter()
        return values

    def clears_contact_list(self) -> bool:
        """Whether saving replaces the campaign's contacts chosen one by one with the team's (filtered) contacts."""
        return bool(self.explicit_contacts) and self.cleaned_data.get("targeting") != TARGET_LIST

    def _dialer_settings(self) -> dict[str, Any]:
        """The chosen backend's settings: the form's fields over the ones it does not show (timeouts, a seed...),
        which are kept as they were when the backend stays the same."""
        data = self.cleaned_data
        old: dict[str, Any] = {}
        if self.campaign is not None and self.campaign.dialer == data["dialer"]:
            old = dict(self.campaign.dialer_settings or {})
        if data["dialer"] == Campaign.Dialer.HTTP:
            settings = {**old, "url": data["http_url"], "source": data["http_source"]}
            settings.pop("script_id", None)
            if data.get("http_script_id"):
                settings["script_id"] = data["http_script_id"]
            if data.get("http_signing_secret"):
                settings["signing_secret"] = data["http_signing_secret"]
            return settings
        settings = {**old, "odds": {key: data[name] for name, key, _ in SIMULATOR_ODDS}}
        for name, key in (("sim_min_seconds", "min_seconds"), ("sim_max_seconds", "max_seconds")):
            settings.pop(key, None)
            if data.get(name) is not None:
                settings[key] = data[name]
        return settings

    def _contact_filter(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data["targeting"] != TARGET_FILTER:
            return {}
        result: dict[str, Any] = {}
        if data["filter_company"]:
            result["company"] = data["filter_company"]
        if data["filter_field"]:
            result["custom"] = {data["filter_field"]: data["filter_value"]}
        return result
