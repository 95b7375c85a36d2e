"""The one CSV cell rule of every download: a cell a spreadsheet would run as a formula is quoted, unless the
caller allows it as a number it wants kept as it is."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm.csv_export import E164_RE, PHONE_LIKE_RE, csv_lines, csv_safe


@pytest.mark.parametrize("text", ["=SUM(A1)", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_it_quotes_whatever_would_start_a_formula(text):
    assert csv_safe(text) == "'" + text
    assert csv_safe(text, allow=E164_RE) == "'" + text


def test_it_keeps_the_numbers_a_caller_allows_and_only_those():
    assert csv_safe("+12025550143") == "'+12025550143"
    assert csv_safe("+12025550143", allow=E164_RE) == "+12025550143"
    assert csv_safe("+1 (202) 555-0143", allow=E164_RE) == "'+1 (202) 555-0143"
    assert csv_safe("+1 (202) 555-0143", allow=PHONE_LIKE_RE) == "+1 (202) 555-0143"
    assert csv_safe("+1 202 HYPERLINK(x)", allow=PHONE_LIKE_RE) == "'+1 202 HYPERLINK(x)"


def test_it_writes_none_as_empty_and_times_in_the_local_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    assert csv_safe(None) == ""
    assert csv_safe(datetime(2026, 1, 2, 12, 0, tzinfo=UTC)) == "2026-01-02T13:00:00+01:00"
    assert csv_safe("plain, text") == "plain, text"


def test_it_streams_one_quoted_line_per_row():
    assert list(csv_lines([["a", "b,c"], [1, None]])) == ['a,"b,c"\r\n', "1,\r\n"]
