"""Filters of the campaign and run pages."""

from __future__ import annotations

from django import template

from campaigns.page_selectors import clock as _clock

register = template.Library()


@register.filter
def clock(ms: int | None) -> str:
    """A call's length in milliseconds as a player shows it: ``0:42``, ``1:02:03``."""
    return _clock(ms)
