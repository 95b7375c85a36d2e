"""CSV downloads (the calls list, a run's results, an import's report): cells that a spreadsheet cannot run,
streamed line by line so a 100,000-row export never sits in memory."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.utils import timezone

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# An E.164 number starts with "+" but is only digits: a spreadsheet reads it as a number, never runs anything.
E164_RE = re.compile(r"\+[0-9]{1,15}")
# A phone number as people write it ("+1 (202) 555-0143"): digits and punctuation, no function to call.
PHONE_LIKE_RE = re.compile(r"[+\-]?[\d\s().\-/]+")


def csv_safe(value: object, *, allow: re.Pattern[str] | None = None) -> str:
    """``value`` as a cell: empty for None, local ISO time for a datetime, and text that would start a formula
    quoted with a leading apostrophe, unless all of it matches ``allow`` (numbers a reader wants as they are)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not (allow is not None and allow.fullmatch(text)):
        return "'" + text
    return text


class _Echo:
    """A file-like object whose write() hands back the line: csv.writer formats, the generator yields."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """Each row as one CSV line, lazily (for a StreamingHttpResponse)."""
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)
