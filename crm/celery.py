"""The Celery application: configured from Django settings (``CELERY_*``), tasks found in each app's tasks.py."""

from __future__ import annotations

import os

from celery import Celery

from crm import celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("callbook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task metrics, the log context of tasks, the worker's log format and metrics endpoint (docs/operations.md).
celery_signals.connect()
