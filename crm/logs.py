"""Log context and formats.

What a log line is about (the request id, the signed-in user, the call session or campaign run, the Celery
task) is kept in context variables: ``crm.observability.RequestContextMiddleware`` sets them for a request,
``crm.celery_signals`` for a task. ``ContextFilter``, on every handler, copies them onto each record, and the
formatter writes them out: one JSON object per line in production (``JsonFormatter``), a readable line in
development (``TextFormatter``). ``LOG_FORMAT`` (crm/settings.py) chooses.

This module imports nothing of Django's models or settings: logging is configured before the app registry is
ready, and the gunicorn master uses ``gunicorn_logconfig`` without loading Django at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.utils.functional import LazyObject, empty
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

LOG_FORMATS = ("json", "text")

# One variable per field, so that a task queued eagerly inside a request, say, can add its own fields and
# restore the request's afterwards.
request_id: ContextVar[str | None] = ContextVar("callbook_request_id", default=None)
# The request itself: its user is read when a line is written, because the API authenticates in the view
# (after any middleware could look), and reading it must never trigger a query of its own.
current_request: ContextVar[Any] = ContextVar("callbook_request", default=None)
session_id: ContextVar[str | None] = ContextVar("callbook_session_id", default=None)
run_id: ContextVar[str | None] = ContextVar("callbook_run_id", default=None)
task_id: ContextVar[str | None] = ContextVar("callbook_task_id", default=None)
task_name: ContextVar[str | None] = ContextVar("callbook_task_name", default=None)

FIELDS: dict[str, ContextVar[str | None]] = {
    "request_id": request_id,
    "session_id": session_id,
    "run_id": run_id,
    "task_id": task_id,
    "task_name": task_name,
}
# Ids come from URLs and task arguments; a line must stay a line whatever a client sends.
MAX_ID_LENGTH = 64


def clip(value: object) -> str:
    return str(value)[:MAX_ID_LENGTH]


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (names from ``FIELDS``) to every line logged inside the block, then restore them."""
    tokens = [(FIELDS[name], FIELDS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _signed_in_user(request: Any) -> Any:
    """The request's user if something already resolved it (the auth middleware's lazy user once evaluated, or
    DRF's authenticated user, which DRF sets on the request); None otherwise. Never queries."""
    user = request.__dict__.get("user")
    if isinstance(user, LazyObject):
        # Evaluating the lazy user would load the session from a log call; only a user the request already
        # loaded is reported. LazyObject keeps what it wraps in _wrapped, `empty` until evaluated.
        user = user._wrapped
        if user is empty:
            return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


class ContextFilter(logging.Filter):
    """Copies the log context onto each record (as attributes, which the formatters write out)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in FIELDS.items():
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        request = current_request.get()
        if request is not None and not hasattr(record, "user_id"):
            user = _signed_in_user(request)
            if user is not None:
                record.user_id = user.pk
                record.user = user.get_username()
        return True


# The fields a context may add, in the order the text format shows them.
_TEXT_FIELDS = ("request_id", "user", "session_id", "run_id", "task_name", "task_id")


class TextFormatter(logging.Formatter):
    """Development: ``time LEVEL logger message [request_id=... user=...]``, no colours."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = " ".join(f"{name}={getattr(record, name)}" for name in _TEXT_FIELDS if hasattr(record, name))
        return f"{line} [{context}]" if context else line


class JsonFormatter(_BaseJsonFormatter):
    """Production: one JSON object per line with ``timestamp``, ``level``, ``logger``, ``message``, the context
    fields that are set, any ``extra=`` of the call, and ``exc_info`` (the formatted stack) for exceptions."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
            json_ensure_ascii=False,
        )


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def log_format_for(*, requested: str, debug: bool) -> str:
    """``LOG_FORMAT`` when given, else JSON in production and text with DEBUG on."""
    chosen = (requested or ("text" if debug else "json")).strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {requested!r}")
    return chosen


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING: everything to stderr through one handler, with the context on every line."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "crm.logs.ContextFilter"}},
        "formatters": {"callbook": {"()": f"crm.logs.{'JsonFormatter' if log_format == 'json' else 'TextFormatter'}"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "callbook", "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Without Django's own handlers, which would print a second, differently formatted copy in DEBUG.
            "django": {"handlers": [], "level": level},
            "django.db.backends": {"level": "INFO"},
        },
    }


def gunicorn_logconfig(*, log_format: str, level: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its own messages in the application's format; no access log, because
    the application logs every request itself (crm.observability), with its request id, user and timing."""
    config = logging_config(log_format=log_format, level=level)
    config["handlers"]["null"] = {"class": "logging.NullHandler"}
    config["loggers"] = {
        "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
        "gunicorn.access": {"handlers": ["null"], "propagate": False},
    }
    return config
