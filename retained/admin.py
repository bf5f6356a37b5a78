from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from retained import certificates
from retained.access_keys import set_access_key_active
from retained.admin_views.policy_admin import PolicyAdmin
from retained.models import AccessKey, Certificate, CertificateStatus, Policy, RetainedMessage

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
        for key in queryset:
            set_access_key_active(key.access_key_id, active=False)

    @admin.action(description="Activate selected access keys")
    def activate(self, request: HttpRequest, queryset: QuerySet[AccessKey]) -> None:
        for key in queryset:
            set_access_key_active(key.access_key_id, active=True)


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


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    """Read-only rows. Status changes go through retained.certificates (REVOKED stays final,
    the broker closes connections of a certificate no longer ACTIVE); certificates are
    created on the console's Certificates page (it hands out the private key once) and
    deleted there (only when not ACTIVE, with their attachments)."""

    list_display = [
        "certificate_id",
        "status",
        "subject_common_name",
        "thing_name",
        "created_at",
        "not_after",
    ]
    list_filter = ["status"]
    search_fields = ["certificate_id", "subject_common_name", "thing_name", "created_by"]
    fields = (
        "certificate_id",
        "console_page",
        "status",
        "subject_common_name",
        "thing_name",
        "attached_policies",
        "not_before",
        "not_after",
        "created_at",
        "updated_at",
        "created_by",
        "certificate_pem",
    )
    readonly_fields = fields
    actions = ["activate", "deactivate", "revoke"]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        # "Add certificate" leads to the console, which offers the new private key once.
        return HttpResponseRedirect(reverse("certificate-list"))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Nothing on the page is editable: no Save buttons.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Console")
    def console_page(self, certificate: Certificate) -> SafeString:
        url = reverse("certificate-detail", args=[certificate.certificate_id])
        return format_html('<a href="{}">Open on the console\u2019s Certificates page</a>', url)

    @admin.display(description="Attached policies")
    def attached_policies(self, certificate: Certificate) -> SafeString:
        names = certificates.attached_policy_names(certificate.certificate_id)
        policies = Policy.objects.filter(name__in=names).order_by("name")
        if not policies:
            return format_html("{}", "none")
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:retained_policy_change", args=[policy.pk]), policy.name)
                for policy in policies
            ),
        )

    def _set_status(
        self, request: HttpRequest, queryset: QuerySet[Certificate], status: str, done: str
    ) -> None:
        changed = 0
        for certificate in queryset:
            try:
                certificates.set_certificate_status(certificate.certificate_id, status)
            except certificates.CertificateError as error:
                self.message_user(request, f"{certificate.short_id}: {error}", messages.ERROR)
            else:
                changed += 1
        if changed:
            self.message_user(
                request, f"{done} {changed} certificate{'s' if changed != 1 else ''}."
            )

    @admin.action(description="Activate selected certificates", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> None:
        self._set_status(request, queryset, CertificateStatus.ACTIVE, "Activated")

    @admin.action(description="Deactivate selected certificates", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> None:
        self._set_status(request, queryset, CertificateStatus.INACTIVE, "Deactivated")

    @admin.action(description="Revoke selected certificates (final)", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> None:
        self._set_status(request, queryset, CertificateStatus.REVOKED, "Revoked")
