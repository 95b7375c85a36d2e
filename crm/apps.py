from __future__ import annotations

from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "Users and teams"

    def ready(self) -> None:
        # Registers the bearer-token scheme with drf-spectacular, and connects the login throttle's signal
        # receivers (failures counted, successes reset).
        from crm import schema, throttling  # noqa: F401, PLC0415  # need the app registry ready
