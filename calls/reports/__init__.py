"""Reads behind the pages people live in: the calls list (with its CSV export) and the dashboard.

Everything here starts from ``calls.selectors`` (``call_session_list`` / ``visible_sessions``), so the one access
rule decides what each page shows, and each function runs a fixed number of queries whatever the page size or the
number of calls. ``call_list`` holds the list page, its keyset cursor and the CSV export; ``dashboard`` the
dashboard's counts and chart geometry; ``choices`` the filter form's choices; ``formatting`` what they share.
The names below are the package's public surface.
"""

from __future__ import annotations

from calls.reports.call_list import (
    CallListPage,
    CallListQuery,
    CallRow,
    Cursor,
    InvalidCursor,
    call_export_rows,
    call_list_page,
    export_filename,
    highlight,
)
from calls.reports.choices import campaign_choices, owner_choices
from calls.reports.dashboard import PERIODS, BarChart, DashboardStats, dashboard_page, dashboard_stats
from calls.reports.formatting import format_duration

__all__ = [
    "PERIODS",
    "BarChart",
    "CallListPage",
    "CallListQuery",
    "CallRow",
    "Cursor",
    "DashboardStats",
    "InvalidCursor",
    "call_export_rows",
    "call_list_page",
    "campaign_choices",
    "dashboard_page",
    "dashboard_stats",
    "export_filename",
    "format_duration",
    "highlight",
    "owner_choices",
]
