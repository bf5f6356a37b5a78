"""Edit, create and delete retained messages (iot:Publish + iot:RetainPublish on the topic).

Every write is a retained publish through retained.services (so live MQTT subscribers get it);
delete publishes the empty retained payload. A form carries the version it was opened at;
if the stored message changed since, the user sees both versions and chooses.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from console.forms import CreateRetainedForm, RetainedMessageForm, format_user_properties
from console.views import gate, links
from console.views.payloads import as_text, display_text, looks_like_json, unified_diff
from console.views.retained_detail import not_found, validate_topic
from retained import services, store
from retained.models import SetByKind
from retained.topics import InvalidTopicError

FormT = TypeVar("FormT", bound=RetainedMessageForm)


def _actor(request: HttpRequest) -> store.Actor:
    return store.Actor(kind=SetByKind.CONSOLE, name=request.user.get_username())


def _version(message: store.StoredMessage | None) -> int:
    """What a form remembers of the message it was opened at (0: there was none)."""
    return message.last_modified_ms if message is not None else 0


def _initial(message: store.StoredMessage) -> dict[str, Any]:
    text = as_text(message.payload)
    content_type = message.properties.content_type
    return {
        "payload": text if text is not None else "",
        "is_json": text is not None and looks_like_json(text, content_type),
        "qos": message.qos,
        "content_type": content_type,
        "user_properties": format_user_properties(message.properties.user_properties),
        "base_modified_ms": message.last_modified_ms,
    }


def _conflict(
    form: RetainedMessageForm, current: store.StoredMessage | None
) -> dict[str, Any] | None:
    """Both versions and their diff when the message changed since the form was opened."""
    if form.cleaned_data["base_modified_ms"] == _version(current):
        return None
    mine = form.cleaned_data["payload"].decode("utf-8")
    stored = display_text(current.payload) if current is not None else ""
    return {
        "current": current,
        "stored_text": stored,
        "mine_text": mine,
        "diff": unified_diff(stored, mine) if current is not None else [],
        "set_by_label": SetByKind(current.set_by.kind).label if current is not None else "",
    }


def _rebased(form_class: type[FormT], data: QueryDict, version: int) -> FormT:
    """The user's input again, now based on the stored version they have been shown."""
    rebased = data.copy()
    rebased["base_modified_ms"] = str(version)
    form = form_class(rebased)
    form.is_valid()
    return form


def _publish(
    request: HttpRequest,
    topic: str,
    form: RetainedMessageForm,
    base: store.StoredMessage | None,
) -> None:
    """The form's message, retained; MQTT 5 properties the form does not edit are kept."""
    data = form.cleaned_data
    properties = base.properties if base is not None else store.NO_PROPERTIES
    properties = dataclasses.replace(
        properties,
        content_type=data["content_type"],
        user_properties=data["user_properties"],
    )
    services.publish(
        topic,
        data["payload"],
        qos=data["qos"],
        retain=True,
        actor=_actor(request),
        properties=properties,
    )


def _save(
    request: HttpRequest,
    topic: str,
    form: RetainedMessageForm,
    current: store.StoredMessage | None,
) -> HttpResponse | dict[str, Any]:
    """Publish, or say why not: a conflict (dict) or an error added to the form (None)."""
    conflict = _conflict(form, current)
    if conflict is not None:
        return conflict
    try:
        _publish(request, topic, form, current)
    except services.RetainedPublishThrottledError as error:
        form.add_error(None, f"Rate exceeded: retry in {error.retry_after_seconds} s")
        return {}
    except (store.StoreError, InvalidTopicError) as error:
        form.add_error(None, str(error))
        return {}
    messages.success(request, "Saved. Subscribers to the topic received the new message.")
    return HttpResponseRedirect(links.detail_url(topic))


@login_required
@require_http_methods(["GET", "POST"])
def retained_edit(request: HttpRequest, topic: str) -> HttpResponse:
    reason = validate_topic(topic)
    if reason:
        return not_found(request, topic, reason)
    permission = gate.check(request.user, gate.WRITE, gate.resource_of(topic))
    if not permission.allowed:
        return gate.forbidden(request, permission)
    current = store.get_retained(topic, touch=False)
    conflict: dict[str, Any] = {}
    if request.method == "POST":
        form = RetainedMessageForm(request.POST)
        if form.is_valid():
            outcome = _save(request, topic, form, current)
            if isinstance(outcome, HttpResponse):
                return outcome
            if outcome:
                conflict = outcome
                form = _rebased(RetainedMessageForm, request.POST, _version(current))
    elif current is None:
        return not_found(request, topic)
    else:
        form = RetainedMessageForm(initial=_initial(current))
    context = {
        "nav": "retained",
        "topic": topic,
        "form": form,
        "current": current,
        "binary": current is not None and as_text(current.payload) is None,
        "conflict": conflict,
        "detail_url": links.detail_url(topic),
        "action_url": links.edit_url(topic),
    }
    return render(request, "console/retained/edit.html", context, status=409 if conflict else 200)


@login_required
@require_http_methods(["GET", "POST"])
def retained_create(request: HttpRequest) -> HttpResponse:
    conflict: dict[str, Any] = {}
    status = 200
    topic = ""
    if request.method == "POST":
        form = CreateRetainedForm(request.POST)
        if form.is_valid():
            topic = form.cleaned_data["topic"]
            permission = gate.check(request.user, gate.WRITE, gate.resource_of(topic))
            if not permission.allowed:
                form.add_error("topic", permission.tooltip + " on this topic.")
                status = 403
            else:
                current = store.get_retained(topic, touch=False)
                outcome = _save(request, topic, form, current)
                if isinstance(outcome, HttpResponse):
                    return outcome
                if outcome:
                    conflict = outcome
                    status = 409
                    form = _rebased(CreateRetainedForm, request.POST, _version(current))
    else:
        form = CreateRetainedForm(initial={"topic": request.GET.get("topic", ""), "qos": 0})
    context = {
        "nav": "retained",
        "form": form,
        "topic": topic,
        "conflict": conflict,
        "creating": True,
        "detail_url": links.detail_url(topic) if topic else links.LIST_URL,
        "action_url": links.CREATE_URL,
    }
    return render(request, "console/retained/edit.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def retained_delete(request: HttpRequest, topic: str) -> HttpResponse:
    reason = validate_topic(topic)
    if reason:
        return not_found(request, topic, reason)
    permission = gate.check(request.user, gate.WRITE, gate.resource_of(topic))
    if not permission.allowed:
        return gate.forbidden(request, permission)
    current = store.get_retained(topic, touch=False)
    if current is None:
        if request.method == "POST":
            messages.info(request, "That retained message was already deleted.")
            return HttpResponseRedirect(links.LIST_URL)
        return not_found(request, topic)
    changed = False
    if request.method == "POST":
        if request.POST.get("base_modified_ms") == str(current.last_modified_ms):
            services.publish(topic, b"", qos=0, retain=True, actor=_actor(request))
            messages.success(
                request, "Deleted. An empty retained message was published to the topic."
            )
            return HttpResponseRedirect(links.LIST_URL)
        changed = True  # it was replaced since the confirmation was shown: confirm again
    context = {
        "nav": "retained",
        "topic": topic,
        "current": current,
        "changed": changed,
        "detail_url": links.detail_url(topic),
        "action_url": links.delete_url(topic),
    }
    return render(request, "console/retained/delete.html", context, status=409 if changed else 200)
