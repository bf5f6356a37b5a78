"""Manage > Retained messages: the list (search, sort, keyset pages), full page or fragment."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.views import gate
from console.views.hints import PublishHints
from console.views.htmx import vary_on_htmx, wants_fragment
from console.views.listing import PAGE_SIZES, ListState, fetch_page
from retained import store


@login_required
@require_GET
def retained_list(request: HttpRequest) -> HttpResponse:
    permission = gate.check(request.user, [gate.LIST], gate.LIST_RESOURCE)
    if not permission.allowed:
        return gate.forbidden(request, permission)
    state = ListState.parse(request.GET)
    context = {
        "nav": "retained",
        "state": state,
        "page": fetch_page(state),
        "total": store.count_retained(),
        "page_sizes": PAGE_SIZES,
        "hints": PublishHints.for_host(request.get_host(), secure=request.is_secure()),
        "create": gate.creatable(request.user),
    }
    template = (
        "console/retained/_results.html"
        if wants_fragment(request)
        else "console/retained/list.html"
    )
    return vary_on_htmx(render(request, template, context))
