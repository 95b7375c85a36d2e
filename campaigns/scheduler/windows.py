"""Calling windows, in each contact's local time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.models import Campaign, Contact


def contact_zone(*, contact: Contact, campaign: Campaign) -> ZoneInfo:
    """The contact's timezone, else the campaign's default, else UTC (a bad name never stops a run)."""
    for name in (contact.timezone, campaign.default_timezone, "UTC"):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _day_allowed(campaign: Campaign, day: dt.date) -> bool:
    days = campaign.window_days or []
    return not days or day.isoweekday() in days


def window_is_open(*, campaign: Campaign, local: dt.datetime) -> bool:
    """Whether ``local`` (aware, in the contact's zone) is inside the campaign's calling window.

    A window that crosses midnight (end < start) belongs to the day it opens: Friday 22:00-02:00 includes
    Saturday 01:00, and ``window_days`` names Friday.
    """
    start, end, now = campaign.window_start, campaign.window_end, local.time()
    if start < end:
        return _day_allowed(campaign, local.date()) and start <= now < end
    if now >= start:
        return _day_allowed(campaign, local.date())
    return now < end and _day_allowed(campaign, local.date() - dt.timedelta(days=1))


def window_next_opening(*, campaign: Campaign, local: dt.datetime) -> dt.datetime:
    """The next time (aware, in ``local``'s zone) the window opens after ``local``."""
    zone = local.tzinfo
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if not _day_allowed(campaign, day):
            continue
        opening = dt.datetime.combine(day, campaign.window_start, tzinfo=zone)
        if opening > local:
            return opening
    # Only reachable with window_days naming no real weekday; the campaign form refuses that.
    return local + dt.timedelta(days=1)
