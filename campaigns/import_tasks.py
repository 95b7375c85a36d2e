"""The Celery task of contact imports. It lives apart from ``campaigns.tasks`` (the run engine's tasks), and
``CampaignsConfig.ready`` imports it so that workers register it: Celery's autodiscovery only imports the
``tasks`` module of each app."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from campaigns import imports

logger = logging.getLogger(__name__)

# Transient: the database or the storage blinked. Anything else is a property of the import, recorded as its
# failure instead of retried.
TRANSIENT_ERRORS = (OperationalError, ConnectionError, TimeoutError)


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def contact_import_run(import_id: int) -> str:
    """Import the rows of a confirmed contact import, from its cursor on; safe to run twice."""
    try:
        return imports.contact_import_process(import_id=int(import_id))
    except TRANSIENT_ERRORS:
        raise
    except Exception:
        logger.exception("contact import %s stopped on an unexpected error", import_id)
        imports.contact_import_fail(
            import_id=int(import_id),
            error="The import stopped on an unexpected error. The rows imported so far are kept: start it again "
            "to continue where it stopped, or contact your administrator if it fails again.",
        )
        raise


@shared_task(acks_late=True)
def resume_stalled_imports() -> list[int]:
    """Beat: queue again the imports whose task was lost (a worker killed, a broker that was down)."""
    return imports.contact_imports_resume_stalled(
        stalled_after=timedelta(seconds=settings.CONTACT_IMPORT_STALL_SECONDS)
    )
