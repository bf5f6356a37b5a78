"""The AWS IoT data-plane API for retained messages, wire-compatible with botocore's
`iot-data` model: ListRetainedMessages, GetRetainedMessage, Publish.

Views are thin: authenticate (SigV4), parse, one call into the store or services, render.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from retained import access, services, store, throttles
from retained.api import errors, params
from retained.api.auth import authenticate, wire_request
from retained.api.sigv4 import HttpRequest as WireRequest
from retained.conf import Limits
from retained.models import AccessKey, SetByKind
from retained.policy import topic_arn
from retained.ratelimit import RateLimiter

logger = logging.getLogger("retained.api")

ApiView = Callable[[HttpRequest, WireRequest, AccessKey], HttpResponse]


def _limits() -> Limits:
    limits: Limits = settings.RETAINED_LIMITS
    return limits


def api_view(method: str) -> Callable[[ApiView], Callable[[HttpRequest], HttpResponse]]:
    """Method check, body size check, SigV4, and errors rendered the AWS way."""

    def decorate(view: ApiView) -> Callable[[HttpRequest], HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, **_: str) -> HttpResponse:
            try:
                if request.method != method:
                    raise errors.MethodNotAllowed(
                        f"{request.method} is not allowed here; use {method}"
                    )
                _refuse_oversize_body(request)
                wire = wire_request(request)
                key = authenticate(request, wire)
                return view(request, wire, key)
            except errors.ApiError as error:
                return error.response()
            except params.ParameterError as error:
                return errors.InvalidRequest(str(error)).response()
            except store.PayloadTooLargeError as error:
                return errors.RequestEntityTooLarge(str(error)).response()
            except store.RetainedQuotaExceededError as error:
                return errors.Throttling(str(error)).response()
            except services.RetainedPublishThrottledError as error:
                return errors.Throttling(str(error), retry_after=error.retry_after).response()
            except (
                store.InvalidTopicError,
                store.InvalidPageTokenError,
                store.StoreError,
            ) as error:
                return errors.InvalidRequest(str(error)).response()
            except Exception:
                logger.exception("API request failed: %s %s", request.method, request.path)
                return errors.InternalFailure("internal failure; see the server log").response()

        return wrapper

    return decorate


def _require(key: AccessKey, action: str, resource: str) -> None:
    """The policy gate; UnauthorizedException names the action that is missing."""
    principal = access.Principal(kind="user", name=key.user.get_username(), via=key.access_key_id)
    access.refresh_if_stale()
    result = access.authorize(principal, action, resource)
    if not result.allowed:
        # Before refusing, make sure a policy attached a moment ago is seen (only denials pay).
        access.refresh_if_stale(check_now=True)
        result = access.authorize(principal, action, resource)
    if not result.allowed:
        raise errors.Unauthorized(access.denial_message(action, resource, result))


def _throttle(limiter: RateLimiter, operation: str) -> None:
    """AWS: per-account request rates; counted once the caller is known and allowed."""
    wait = limiter.try_acquire()
    if wait:
        raise errors.Throttling(
            f"Rate exceeded: at most {limiter.rate:g} {operation} requests per second",
            retry_after=wait,
        )


def _topic_arn(topic: str) -> str:
    return topic_arn(settings.RETAINED_REGION, settings.RETAINED_ACCOUNT_ID, topic)


def _refuse_oversize_body(request: HttpRequest) -> None:
    # Checked before Django reads the body, so a huge upload is refused without buffering it.
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise errors.InvalidRequest("Content-Length is not a number") from None
    limit = _limits().max_payload_bytes
    if length > limit:
        raise errors.RequestEntityTooLarge(f"payload is {length} bytes; the limit is {limit} bytes")


@api_view("GET")
def list_retained_messages(request: HttpRequest, wire: WireRequest, key: AccessKey) -> HttpResponse:
    _require(key, "iot:ListRetainedMessages", "*")
    _throttle(throttles.list_retained_limiter(), "ListRetainedMessages")
    query = params.parse_query(wire.raw_query)
    limits = _limits()
    max_results = params.parse_int(
        "maxResults",
        query.get("maxResults"),
        default=limits.list_max_results,
        minimum=1,
        maximum=limits.list_max_results,
    )
    page = store.list_page(max_results=max_results, next_token=query.get("nextToken") or None)
    body: dict[str, object] = {
        "retainedTopics": [
            {
                "topic": item.topic,
                "payloadSize": item.payload_size,
                "qos": item.qos,
                "lastModifiedTime": item.last_modified_ms,
            }
            for item in page.items
        ]
    }
    if page.next_token:
        body["nextToken"] = page.next_token
    logger.info("ListRetainedMessage key=%s count=%d", key.access_key_id, len(page.items))
    return JsonResponse(body)


@api_view("GET")
def get_retained_message(request: HttpRequest, wire: WireRequest, key: AccessKey) -> HttpResponse:
    topic = params.topic_from_raw_path(wire.raw_path, "/retainedMessage/")
    store.validate_topic(topic, limits=_limits())
    _require(key, "iot:GetRetainedMessage", _topic_arn(topic))
    _throttle(throttles.get_retained_limiter(), "GetRetainedMessage")
    message = store.get_retained(topic)
    if message is None:
        raise errors.ResourceNotFound(f"No retained message exists for topic {topic!r}")
    logger.info("GetRetainedMessage key=%s topic=%r", key.access_key_id, topic)
    return JsonResponse(
        {
            "topic": message.topic,
            "payload": base64.b64encode(message.payload).decode("ascii"),
            "qos": message.qos,
            "lastModifiedTime": message.last_modified_ms,
            "userProperties": params.encode_user_properties(message.properties.user_properties),
        }
    )


@api_view("POST")
def publish(request: HttpRequest, wire: WireRequest, key: AccessKey) -> HttpResponse:
    topic = params.topic_from_raw_path(wire.raw_path, "/topics/")
    query = params.parse_query(wire.raw_query)
    limits = _limits()
    qos = params.parse_int("qos", query.get("qos"), default=0, minimum=0, maximum=1)
    retain = params.parse_bool("retain", query.get("retain"), default=False)
    store.validate_topic(topic, limits=limits)
    _require(key, "iot:Publish", _topic_arn(topic))
    if retain:
        _require(key, "iot:RetainPublish", _topic_arn(topic))
    expiry = params.parse_int(
        "messageExpiry", query.get("messageExpiry"), default=-1, minimum=0, maximum=2**32 - 1
    )
    response_topic = query.get("responseTopic", "")
    if response_topic:
        store.validate_topic(response_topic, limits=limits)
    format_indicator = params.parse_payload_format_indicator(
        wire.headers.get("x-amz-mqtt5-payload-format-indicator")
    )
    payload = wire.body
    if format_indicator == 1:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidRequest(
                "payload is declared UTF8_DATA but is not valid UTF-8"
            ) from None
    properties = store.MessageProperties(
        content_type=query.get("contentType", ""),
        payload_format_indicator=format_indicator,
        response_topic=response_topic,
        correlation_data=params.parse_correlation_data(
            wire.headers.get("x-amz-mqtt5-correlation-data")
        ),
        user_properties=params.parse_user_properties(
            wire.headers.get("x-amz-mqtt5-user-properties")
        ),
        message_expiry_interval=expiry if expiry >= 0 else None,
    )
    services.publish(
        topic,
        payload,
        qos=qos,
        retain=retain,
        actor=store.Actor(kind=SetByKind.API, name=key.access_key_id),
        properties=properties,
    )
    return JsonResponse({})
