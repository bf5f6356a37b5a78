from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from retained import store


def home(request: HttpRequest) -> HttpResponse:
    """Landing page until the console pages exist: what runs here and where."""
    return render(
        request,
        "console/home.html",
        {"retained_count": store.count_retained(), "host": request.get_host()},
    )
