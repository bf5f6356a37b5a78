from __future__ import annotations

from django.apps import AppConfig


class RetainedConfig(AppConfig):
    name = "retained"
    verbose_name = "Retained messages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from retained import access

        access.connect_signals()
