from __future__ import annotations

from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "Users and teams"

    def ready(self) -> None:
        # Registers the bearer-token scheme with drf-spectacular.
        from crm import schema  # noqa: F401, PLC0415  # needs the app registry ready
