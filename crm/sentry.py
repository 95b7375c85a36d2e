"""Error reporting to Sentry (or a compatible service: GlitchTip, self-hosted Sentry), on only when SENTRY_DSN is
set. crm/settings.py imports this module only then, so without a DSN sentry_sdk is never loaded.

Unhandled exceptions of requests (Django integration) and tasks (Celery integration), and log lines at ERROR,
are reported with the request id, session and run of the log context as tags, so that an event and its log
lines can be found from each other. Personal data is not sent: no cookies, no user, no request bodies.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from crm import logs


def _with_log_context(event: Any, hint: Any) -> Any:
    tags = event.setdefault("tags", {})
    for name, var in logs.FIELDS.items():
        value = var.get()
        if value:
            tags.setdefault(name, value)
    return event


def sentry_init(*, dsn: str, environment: str, release: str, traces_sample_rate: float) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        release=release or None,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        # Performance tracing is off unless asked for: errors are what this is for.
        traces_sample_rate=traces_sample_rate,
        before_send=_with_log_context,
    )
