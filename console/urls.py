from django.contrib import admin
from django.urls import include, path

from console.views.health import healthz
from console.views.home import home

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("retained.api.urls")),
]
