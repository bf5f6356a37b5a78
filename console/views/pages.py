"""The console's small pages: the root redirect and the MQTT test client placeholder."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.views.links import LIST_URL


@require_GET
def root(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(LIST_URL)


@login_required
@require_GET
def test_client(request: HttpRequest) -> HttpResponse:
    return render(request, "console/test_client.html", {"nav": "test"})
