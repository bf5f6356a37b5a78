"""PolicyAdmin: the policy list, the editor (versions, attachments) and Test authorization.

Every write goes through `retained.policies`: create_policy / create_policy_version from
save_model, set_default_version / delete_policy_version from POST-only views, attach_policy
/ detach_policy for new and removed attachments. Only an edited attachment row is saved
through the ORM (the access signals see it like any other change).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from retained.models import Policy, PolicyAttachment, PolicyVersion
from retained.policies import (
    PolicyError,
    attach_policy,
    create_policy,
    create_policy_version,
    delete_policy_version,
    detach_policy,
    set_default_version,
)

from . import test_authorization
from .policy_forms import (
    ROOT_NOTE,
    PolicyAddForm,
    PolicyAttachmentForm,
    PolicyChangeForm,
    TestAuthorizationForm,
    example_document,
    target_arguments,
)

# The version buttons sit in the change form's inline table but submit small forms placed
# after it (forms cannot nest); both sides name those forms with this.
# (form id suffix, button label, URL name suffix)
VERSION_ACTIONS = (
    ("set-default", "Set as default", "set_default_version"),
    ("delete", "Delete", "delete_version"),
)


def version_form_id(version_id: int, action: str) -> str:
    return f"policy-version-{version_id}-{action}"


def _may_change_policy(request: HttpRequest) -> bool:
    return request.user.has_perm("retained.change_policy")


class PolicyVersionInline(admin.TabularInline):
    """Read-only rows; "Set as default" and "Delete" are POST buttons (see PolicyAdmin)."""

    model = PolicyVersion
    extra = 0
    can_delete = False
    ordering = ["-version_id"]
    fields = ("version_id", "is_default", "created_at", "document_text", "version_actions")
    readonly_fields = fields
    verbose_name = "version"
    verbose_name_plural = f"versions (at most {Policy.MAX_VERSIONS}; the default is enforced)"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if _may_change_policy(request):
            return self.fields
        return tuple(name for name in self.fields if name != "version_actions")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Versions are part of the policy: whoever may see the policy sees them.
        return request.user.has_perm("retained.view_policy") or _may_change_policy(request)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Document")
    def document_text(self, version: PolicyVersion) -> str:
        return format_html(
            '<details><summary>show</summary><pre class="policy-document">{}</pre></details>',
            version.document,
        )

    @admin.display(description="Actions")
    def version_actions(self, version: PolicyVersion) -> str:
        if version.is_default:
            return "default (cannot be deleted)"
        return format_html_join(
            " ",
            '<button type="submit" class="button" form="{}">{}</button>',
            (
                (version_form_id(version.version_id, action), label)
                for action, label, _ in VERSION_ACTIONS
            ),
        )


class PolicyAttachmentInline(admin.TabularInline):
    model = PolicyAttachment
    form = PolicyAttachmentForm
    extra = 1
    fields = ["target", "user", "group", "certificate_id", "created_at"]
    readonly_fields = ["created_at"]
    verbose_name = "attachment"
    verbose_name_plural = "attachments (to whom this policy applies)"


class PolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "default_version", "version_count", "attachment_targets", "updated_at"]
    search_fields = ["name", "description"]
    inlines = [PolicyVersionInline, PolicyAttachmentInline]

    # --- list -----------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Policy]:
        default_version = PolicyVersion.objects.filter(
            policy=OuterRef("pk"), is_default=True
        ).values("version_id")[:1]
        return (
            super()
            .get_queryset(request)
            .annotate(
                default_version_id=Subquery(default_version),
                version_count=Count("versions", distinct=True),
            )
            .prefetch_related("attachments__user", "attachments__group")
        )

    @admin.display(description="Default version", ordering="default_version_id")
    def default_version(self, policy: Policy) -> object:
        return getattr(policy, "default_version_id", None)

    @admin.display(description="Versions", ordering="version_count")
    def version_count(self, policy: Policy) -> object:
        return getattr(policy, "version_count", None)

    @admin.display(description="Attached to")
    def attachment_targets(self, policy: Policy) -> str:
        labels = sorted(attachment.target_label() for attachment in policy.attachments.all())
        return ", ".join(labels) or "-"

    # --- add / change ---------------------------------------------------------------------

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[InlineModelAdmin]]:
        return list(self.inlines) if obj is not None else []  # attach once the policy exists

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [(None, {"fields": ["name", "description", "document"]})]
        return [
            (None, {"fields": ["name", "description", "updated_at"]}),
            ("Default version (enforced)", {"fields": ["default_document"]}),
            ("New version", {"fields": ["new_version_document", "set_as_default"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if obj is None else ("name", "updated_at", "default_document")

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = PolicyChangeForm if obj is not None else PolicyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"document": example_document(), **super().get_changeform_initial_data(request)}

    @admin.display(description="Document")
    def default_document(self, policy: Policy) -> str:
        version = policy.versions.filter(is_default=True).first()
        if version is None:
            return "(no default version)"
        return format_html(
            '<pre class="policy-document">{}</pre><p class="help">Version {}.</p>',
            version.document,
            version.version_id,
        )

    def save_model(
        self, request: HttpRequest, obj: Policy, form: forms.ModelForm, change: bool
    ) -> None:
        cleaned = form.cleaned_data
        if not change:
            # The service writes the row; the admin goes on with `obj` (log entry, redirect).
            obj.pk = create_policy(obj.name, cleaned["document"], description=obj.description).pk
            obj.refresh_from_db()
            return
        obj.save()
        document = cleaned.get("new_version_document") or ""
        if document.strip():
            version = create_policy_version(obj, document, set_as_default=cleaned["set_as_default"])
            state = "the default" if version.is_default else "not the default"
            messages.success(request, f"Created version {version.version_id} ({state}).")

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not PolicyAttachment:
            super().save_formset(request, form, formset, change)
            return
        policy = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        deleted = formset.deleted_forms
        for row in formset.initial_forms:
            if row in deleted:
                saved = PolicyAttachment.objects.get(pk=row.instance.pk)  # as it was, unedited
                detach_policy(policy, **target_arguments(attachment_fields(saved)))
                formset.deleted_objects.append(saved)
            elif row.has_changed():
                row.save()
                formset.changed_objects.append((row.instance, row.changed_data))
        for row in formset.extra_forms:
            if row.has_changed() and row not in deleted:
                attachment = attach_policy(policy, **target_arguments(row.cleaned_data))
                formset.new_objects.append(attachment)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        context["root_note"] = ROOT_NOTE
        if obj is not None and self.has_change_permission(request, obj):
            context["version_action_forms"] = [
                {
                    "id": version_form_id(version_id, action),
                    "url": self._url(view, obj.pk, version_id),
                }
                for version_id in obj.versions.filter(is_default=False).values_list(
                    "version_id", flat=True
                )
                for action, _, view in VERSION_ACTIONS
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- extra views ----------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "test-authorization/",
                wrap(self.test_authorization_view),
                name=f"{name}_test_authorization",
            ),
            path(
                "<path:object_id>/versions/<int:version_id>/set-default/",
                wrap(require_POST(self.set_default_version_view)),
                name=f"{name}_set_default_version",
            ),
            path(
                "<path:object_id>/versions/<int:version_id>/delete/",
                wrap(require_POST(self.delete_version_view)),
                name=f"{name}_delete_version",
            ),
            *super().get_urls(),
        ]

    def _url(self, view: str, *args: object) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}"
        return reverse(name, args=args, current_app=self.admin_site.name)

    def _policy_to_change(self, request: HttpRequest, object_id: str) -> Policy:
        policy = self.get_object(request, unquote(object_id))
        if policy is None:
            raise Http404("no such policy")
        if not self.has_change_permission(request, policy):
            raise PermissionDenied
        return policy

    def set_default_version_view(
        self, request: HttpRequest, object_id: str, version_id: int
    ) -> HttpResponse:
        policy = self._policy_to_change(request, object_id)
        try:
            set_default_version(policy, version_id)
        except PolicyError as error:
            messages.error(request, str(error))
        else:
            self.log_change(request, policy, f"Set version {version_id} as the default.")
            messages.success(request, f"Version {version_id} is now the default (enforced).")
        return HttpResponseRedirect(self._url("change", policy.pk))

    def delete_version_view(
        self, request: HttpRequest, object_id: str, version_id: int
    ) -> HttpResponse:
        policy = self._policy_to_change(request, object_id)
        try:
            delete_policy_version(policy, version_id)
        except PolicyError as error:
            messages.error(request, str(error))
        else:
            self.log_change(request, policy, f"Deleted version {version_id}.")
            messages.success(request, f"Deleted version {version_id}.")
        return HttpResponseRedirect(self._url("change", policy.pk))

    def test_authorization_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        form = TestAuthorizationForm(request.GET if "action" in request.GET else None)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Test authorization",
            "opts": self.opts,
            "form": form,
            "root_message": test_authorization.ROOT_MESSAGE,
            "root_note": ROOT_NOTE,
        }
        if form.is_valid():
            outcome = test_authorization.run_test(form.cleaned_data)
            urls = {
                name: self._url("change", pk)
                for pk, name in Policy.objects.filter(name__in=outcome.policies).values_list(
                    "pk", "name"
                )
            }
            context["outcome"] = outcome
            context["deciding_policy_url"] = urls.get(outcome.result.policy_name or "")
            context["considered"] = [
                {"name": name, "url": urls.get(name), "usable": name not in outcome.unusable}
                for name in outcome.policies
            ]
        return TemplateResponse(request, "admin/retained/policy/test_authorization.html", context)


def attachment_fields(attachment: PolicyAttachment) -> dict[str, Any]:
    return {
        "target": attachment.target,
        "user": attachment.user,
        "group": attachment.group,
        "certificate_id": attachment.certificate_id,
    }
