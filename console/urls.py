from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter

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
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(next_page="/accounts/login/"),
        name="logout",
    ),
    path("admin/", admin.site.urls),
    path("", include("retained.api.urls")),
]
