"""Formatting shared by the pages: durations, percentages, status labels."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from calls.states import Status

Row = dict[str, Any]

# Status values as people read them, for rows fetched with .values().
STATUS_LABELS: dict[str, str] = {value: str(label) for value, label in Status.choices}


def format_duration(ms: float | None) -> str:
    """``m:ss`` (minutes may pass 59: a 75-minute call is ``75:00``); empty when unknown."""
    if ms is None:
        return ""
    seconds = int(Decimal(ms) / 1000 + Decimal("0.5"))
    return f"{seconds // 60}:{seconds % 60:02d}"


def percent(part: int, whole: int) -> float:
    return round(part * 100 / whole, 1) if whole else 0.0
