from __future__ import annotations

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        # Celery's autodiscovery imports each app's `tasks` module only; the contact import's task lives in
        # its own module (campaigns/tasks.py belongs to the run engine), so register it here.
        from campaigns import import_tasks  # noqa: F401, PLC0415
