"""The data-plane API as its own small ASGI app, in front of Django's full handler.

The API needs none of the console's middleware (sessions, CSRF, messages, auth): under
ASGI each sync middleware hook is a thread hop, which made a GetRetainedMessage cost ~16
hops. Here a request is read, then handled start to finish in ONE worker-thread call: build
the request, resolve the view, run it, close stale database connections.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import HttpResponse
from django.urls import Resolver404, resolve

from retained.api import errors

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

API_URLCONF = "retained.api.urls"
API_PATH_PREFIXES = ("/retainedMessage", "/topics/")
# Room for headers of a maximal publish; larger bodies are refused before they are read.
_BODY_SLACK = 1024


def is_api_path(path: str) -> bool:
    return path == "/retainedMessage" or path.startswith(API_PATH_PREFIXES)


def _handle(scope: Scope, body: bytes) -> HttpResponse:
    close_old_connections()
    try:
        request = ASGIRequest(scope, io.BytesIO(body))
        try:
            match = resolve(request.path_info, urlconf=API_URLCONF)
        except Resolver404:
            return errors.ResourceNotFound(f"no API operation at {request.path}").response()
        response: HttpResponse = match.func(request, **match.kwargs)
        return response
    finally:
        close_old_connections()


async def _send_response(send: Send, response: HttpResponse) -> None:
    headers = [(b"content-type", response["Content-Type"].encode("latin-1"))]
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.items()
        if name.lower() != "content-type"
    ]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


class DataPlaneRouter:
    """Send API paths to the lean handler, everything else to Django's full stack."""

    def __init__(self, django_app: ASGIApp) -> None:
        self.django_app = django_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.django_app(scope, receive, send)
            return
        limit = settings.RETAINED_LIMITS.max_payload_bytes + _BODY_SLACK
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > limit:
                # Keep the declared size for the message; the view gives the same error.
                await _send_response(
                    send,
                    errors.RequestEntityTooLarge(
                        f"payload is larger than {settings.RETAINED_LIMITS.max_payload_bytes} bytes"
                    ).response(),
                )
                return
            chunks.append(chunk)
            if not event.get("more_body", False):
                break
        response = await sync_to_async(_handle, thread_sensitive=True)(scope, b"".join(chunks))
        await _send_response(send, response)
