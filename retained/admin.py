from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from retained.admin_views.policy_admin import PolicyAdmin
from retained.models import AccessKey, Policy, RetainedMessage

admin.site.register(Policy, PolicyAdmin)


@admin.register(AccessKey)
class AccessKeyAdmin(admin.ModelAdmin):
    list_display = [
        "access_key_id",
        "user",
        "is_active",
        "description",
        "created_at",
        "last_used_at",
    ]
    list_filter = ["is_active"]
    search_fields = ["access_key_id", "user__username", "description"]
    # The secret is never shown again; keys are created with `manage.py create_access_key`.
    fields = ["access_key_id", "user", "is_active", "description", "created_at", "last_used_at"]
    readonly_fields = ["access_key_id", "user", "created_at", "last_used_at"]
    actions = ["deactivate", "activate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Deactivate selected access keys")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[AccessKey]) -> None:
        for key in queryset:  # save() (not update()) so the key cache hears about it
            key.is_active = False
            key.save(update_fields=["is_active"])

    @admin.action(description="Activate selected access keys")
    def activate(self, request: HttpRequest, queryset: QuerySet[AccessKey]) -> None:
        for key in queryset:
            key.is_active = True
            key.save(update_fields=["is_active"])


@admin.register(RetainedMessage)
class RetainedMessageAdmin(admin.ModelAdmin):
    """Read-only: writes go through the store (and, later, the broker)."""

    list_display = ["topic", "qos", "payload_size", "last_modified_ms", "set_by_kind", "set_by"]
    search_fields = ["topic"]
    exclude = ["payload", "correlation_data"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
