from django.apps import AppConfig


class RetainedConfig(AppConfig):
    name = "retained"
    verbose_name = "Retained messages"
    default_auto_field = "django.db.models.BigAutoField"
