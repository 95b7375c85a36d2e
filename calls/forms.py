"""Forms of the calls pages: the calls list's filters (shared by its CSV export) and the dashboard's period.

Both are GET forms bound to ``request.GET``: a bad value is a field error shown in place, never a crash.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.http import QueryDict
from django.utils import timezone

from calls.models import CallSession
from calls.reports.call_list import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_SORT,
    PAGE_SIZES,
    SORT_CHOICES,
    CallListQuery,
    Cursor,
    InvalidCursor,
)
from calls.reports.choices import campaign_choices, owner_choices
from calls.reports.dashboard import DEFAULT_PERIOD, PERIODS
from calls.selectors import SessionFilters
from calls.states import Status
from crm.models import User

# Dates a person may type: far enough to cover any real call, near enough that no time-zone arithmetic overflows.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2999, 12, 31)


class _DescribedErrorsMixin:
    """Points each invalid field's input at its error message (``aria-describedby``) and marks it invalid."""

    fields: dict[str, forms.Field]
    errors: Any

    def full_clean(self) -> None:
        super().full_clean()  # type: ignore[misc]  # mixed into forms.Form below
        for name in self.errors:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["aria-invalid"] = "true"
                attrs["aria-describedby"] = f"{name}-errors"


class CallFilterForm(_DescribedErrorsMixin, forms.Form):
    """The calls list's filters, sort order, page size and page cursor.

    The campaign and owner choices depend on who asks (one query each; none for an agent's owners).
    """

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Words from a transcript, a phone number or a call id"}
        ),
    )
    status = forms.MultipleChoiceField(
        label="Status", required=False, choices=Status.choices, widget=forms.CheckboxSelectMultiple
    )
    direction = forms.ChoiceField(
        label="Direction", required=False, choices=[("", "Any direction"), *CallSession.Direction.choices]
    )
    campaign = forms.TypedChoiceField(label="Campaign", required=False, coerce=int, empty_value=None)
    owner = forms.ChoiceField(label="Owner", required=False)
    started_from = forms.DateField(
        label="Started from",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    started_to = forms.DateField(
        label="Started to",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    has_recording = forms.ChoiceField(
        label="Recording",
        required=False,
        choices=[("", "With or without"), ("yes", "With a recording"), ("no", "Without a recording")],
    )
    sort = forms.ChoiceField(label="Order", required=False, choices=SORT_CHOICES)
    page_size = forms.TypedChoiceField(
        label="Per page",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[(str(size), str(size)) for size in PAGE_SIZES],
    )
    # Set by the Newer/Older links only, never by the form: changing a filter starts again from the first page.
    cursor = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def __init__(self, data: QueryDict | None = None, *, user: User) -> None:
        if data is not None:
            # The order and page size in force show as selected even when the URL leaves them out.
            data = data.copy()
            for name, default in (("sort", DEFAULT_SORT), ("page_size", str(DEFAULT_PAGE_SIZE))):
                if not data.get(name):
                    data[name] = default
        super().__init__(data)
        self.user = user
        # list.js leaves a field at its default out of the URL, as it does an empty one.
        self.fields["sort"].widget.attrs["data-default"] = DEFAULT_SORT
        self.fields["page_size"].widget.attrs["data-default"] = str(DEFAULT_PAGE_SIZE)
        campaign = cast(forms.ChoiceField, self.fields["campaign"])
        campaign.choices = [("", "Any campaign"), *((str(pk), name) for pk, name in campaign_choices(user=user))]
        owners = owner_choices(user=user)
        if owners:
            owner = cast(forms.ChoiceField, self.fields["owner"])
            owner.choices = [("", "Anyone"), *owners]
        else:
            # Agents see only their own calls: an owner filter would offer nothing.
            del self.fields["owner"]

    def _clean_date(self, name: str) -> date | None:
        value: date | None = self.cleaned_data.get(name)
        if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise forms.ValidationError(
                f"Pick a date between {EARLIEST_DATE:%Y-%m-%d} and {LATEST_DATE:%Y-%m-%d}.", code="out_of_range"
            )
        return value

    def clean_started_from(self) -> date | None:
        return self._clean_date("started_from")

    def clean_started_to(self) -> date | None:
        return self._clean_date("started_to")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("started_from"), data.get("started_to")
        if start and end and end < start:
            self.add_error("started_to", "The end date is before the start date.")
        sort = data.get("sort") or DEFAULT_SORT
        data["sort"] = sort
        raw_cursor = data.get("cursor") or ""
        data["cursor"] = None
        if raw_cursor:
            try:
                data["cursor"] = Cursor.decode(raw_cursor, sort=sort)
            except InvalidCursor:
                self.add_error(None, "This page link is broken or out of date. Start again from the first page.")
        return data

    def list_query(self) -> CallListQuery:
        """What the valid form asks for; only after ``is_valid()``."""
        data = self.cleaned_data
        has_recording = {"yes": True, "no": False}.get(data.get("has_recording") or "")
        filters = SessionFilters(
            status=sorted(data["status"]) or None,
            direction=data.get("direction") or None,
            owner=data.get("owner") or None,
            campaign=data.get("campaign"),
            started_after=_local_midnight(data.get("started_from")),
            # "to" is inclusive: up to the start of the next day. (LATEST_DATE keeps the next day in range.)
            started_before=_local_midnight(data["started_to"] + timedelta(days=1) if data.get("started_to") else None),
            has_recording=has_recording,
            q=data.get("q") or None,
        )
        return CallListQuery(
            filters=filters,
            sort=data["sort"],
            cursor=data["cursor"],
            page_size=data.get("page_size") or DEFAULT_PAGE_SIZE,
        )

    @property
    def is_filtered(self) -> bool:
        """Whether any filter (not the order or the page size) is set: the empty state then offers to clear."""
        if not self.is_bound:
            return False
        return any(self.data.get(name) for name in self.fields if name not in {"sort", "page_size", "cursor"})


def _local_midnight(day: date | None) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


class DashboardForm(_DescribedErrorsMixin, forms.Form):
    days = forms.TypedChoiceField(
        label="Period",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[(str(days), f"Last {days} days") for days in PERIODS],
    )

    def period(self) -> int:
        """The chosen number of days; the default when the value given is not one of the choices."""
        if self.is_valid():
            days: int | None = self.cleaned_data["days"]
            return days or DEFAULT_PERIOD
        return DEFAULT_PERIOD
