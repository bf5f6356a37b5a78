from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter

from console import login_throttle
from console.views import certificates
from console.views.health import healthz
from console.views.pages import root, test_client
from console.views.retained_detail import retained_detail, retained_download
from console.views.retained_edit import retained_create, retained_delete, retained_edit
from console.views.retained_list import retained_list


class TopicConverter:
    """Everything after the prefix, '/' and newlines included: a topic may hold any character
    but NUL. Links are built by console.views.links (reverse() would quote twice)."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TopicConverter, "topic")


class CertificateIdConverter:
    """AWS's certificate id: the SHA-256 of the DER, 64 lowercase hex digits."""

    regex = "[0-9a-f]{64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(CertificateIdConverter, "certificate_id")

urlpatterns = [
    path("", root, name="root"),
    path("healthz", healthz, name="healthz"),
    path("retained/", retained_list, name="retained-list"),
    path("retained/<topic:topic>", retained_detail, name="retained-detail"),
    path("download/retained/<topic:topic>", retained_download, name="retained-download"),
    path("edit/retained/<topic:topic>", retained_edit, name="retained-edit"),
    path("delete/retained/<topic:topic>", retained_delete, name="retained-delete"),
    path("create/retained/", retained_create, name="retained-create"),
    path("test/", test_client, name="test-client"),
    path("certificates/", certificates.certificate_list, name="certificate-list"),
    path("certificates/create/", certificates.certificate_create, name="certificate-create"),
    path("certificates/register/", certificates.certificate_register, name="certificate-register"),
    path("certificates/root-CA.crt", certificates.root_ca_download, name="certificate-root-ca"),
    path(
        "certificates/<certificate_id:certificate_id>/",
        certificates.certificate_detail,
        name="certificate-detail",
    ),
    path(
        "certificates/<certificate_id:certificate_id>/certificate.pem.crt",
        certificates.certificate_download,
        name="certificate-download",
    ),
    path(
        "certificates/<certificate_id:certificate_id>/activate/",
        certificates.certificate_activate,
        name="certificate-activate",
    ),
    path(
        "certificates/<certificate_id:certificate_id>/deactivate/",
        certificates.certificate_deactivate,
        name="certificate-deactivate",
    ),
    path(
        "certificates/<certificate_id:certificate_id>/revoke/",
        certificates.certificate_revoke,
        name="certificate-revoke",
    ),
    path(
        "certificates/<certificate_id:certificate_id>/delete/",
        certificates.certificate_delete,
        name="certificate-delete",
    ),
    path(
        "certificates/<certificate_id:certificate_id>/policies/attach/",
        certificates.certificate_attach,
        name="certificate-attach",
    ),
    path(
        "certificates/<certificate_id:certificate_id>/policies/detach/",
        certificates.certificate_detach,
        name="certificate-detach",
    ),
    path(
        "accounts/login/",
        login_throttle.throttled(auth_views.LoginView.as_view(redirect_authenticated_user=True)),
        name="login",
    ),
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(next_page="/accounts/login/"),
        name="logout",
    ),
    # The admin's own login page, throttled (admin.site.urls below still names it admin:login).
    path("admin/login/", login_throttle.throttled(admin.site.login)),
    path("admin/", admin.site.urls),
    path("", include("retained.api.urls")),
]
