"""A progress bar on a terminal, plain counts elsewhere (logs, cron, CI)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.base import OutputWrapper
from tqdm import tqdm


@contextmanager
def progress_bar(*, total: int | None, label: str, stream: OutputWrapper) -> Iterator[Callable[[int], None]]:
    """``stream`` is a command's stderr; the bar is drawn on the file underneath (the wrapper adds newlines)."""
    if not stream.isatty():
        yield lambda n: None
        return
    with tqdm(total=total, desc=label, unit="item", file=getattr(stream, "_out", sys.stderr)) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        yield advance
