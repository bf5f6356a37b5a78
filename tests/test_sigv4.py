"""Tests for retained.api.sigv4, with signatures produced by the real botocore.

Every accepted request here is signed by botocore itself (``SigV4Auth`` /
``SigV4QueryAuth``, or a whole boto3 ``iot-data`` client whose HTTP send is
intercepted), converted into the ``HttpRequest`` a server would see, and then
verified.  Where botocore exposes its canonical request we also compare it with
ours line for line, so a failure points at the exact canonicalisation step.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode, percent_encode_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retained.api import sigv4
from retained.api.sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    HttpRequest,
    SignatureError,
    SignatureInfo,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    parse_signature,
    signing_key,
    verify_signature,
)

AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLE//token+with/slashes=="
REGION = "us-east-1"
FIXED = datetime(2026, 11, 25, 18, 30, 0, tzinfo=UTC)
ENDPOINT = "http://localhost:8000"
WS_ENDPOINT = "https://iot.example.test"
REGIONS = frozenset({REGION})

TOPICS = [
    "plain",
    "a/b/c",
    "$aws/things/thing-1/shadow/update",
    "with space",
    "plus+sign",
    "100%",
    "odd%2Fliteral",
    "-_.~",
    "=&?#",
    "é/ü/日本語/🚀",
    "trailing/",
    "/leading",
    "a//b",
]


# --------------------------------------------------------------------------- helpers


@contextmanager
def frozen_clock(when: datetime) -> Iterator[None]:
    """Make botocore sign at ``when``.

    SigV4Auth.add_auth calls ``get_current_datetime()`` (imported into
    botocore.auth from botocore.compat) and expects a naive UTC datetime.
    """
    assert hasattr(botocore.auth, "get_current_datetime"), "botocore changed how it gets the time"
    naive = when.astimezone(UTC).replace(tzinfo=None)
    # With awscrt installed (awsiotsdk brings it) botocore signs "v4" with the CRT signer,
    # which reads the clock itself: sign with botocore's Python signer here (the CRT one is
    # checked at the real time in test_awscrt_signed_boto3_requests_verify).
    with (
        mock.patch.dict(botocore.auth.AUTH_TYPE_MAPS, {"v4": botocore.auth.SigV4Auth}),
        mock.patch.object(botocore.auth, "get_current_datetime", return_value=naive),
    ):
        yield


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def to_http_request(prepared: AWSPreparedRequest) -> HttpRequest:
    """What a server receives for ``prepared``.

    botocore signs ``host`` but leaves the header to the HTTP client
    (urllib3), which sends ``Host: <netloc>``; we add it the same way.
    """
    parts = urlsplit(prepared.url)
    headers = {name: _text(value) for name, value in prepared.headers.items()}
    if not any(name.lower() == "host" for name in headers):
        headers["Host"] = parts.netloc
    body = prepared.body
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode("utf-8")
    return HttpRequest(
        method=prepared.method,
        raw_path=parts.path,
        raw_query=parts.query,
        headers=headers,
        body=body,
    )


class RecordingSigV4Auth(botocore.auth.SigV4Auth):
    """SigV4Auth that remembers the canonical request it signed."""

    last_canonical: str = ""

    def canonical_request(self, request: AWSRequest) -> str:
        self.last_canonical = str(super().canonical_request(request))
        return self.last_canonical


class RecordingSigV4QueryAuth(botocore.auth.SigV4QueryAuth):
    last_canonical: str = ""

    def canonical_request(self, request: AWSRequest) -> str:
        self.last_canonical = str(super().canonical_request(request))
        return self.last_canonical


class NoHostSigV4Auth(RecordingSigV4Auth):
    """A (non-conforming) signer that does not sign the host header."""

    def headers_to_sign(self, request: AWSRequest) -> Any:
        header_map = super().headers_to_sign(request)
        del header_map["host"]
        return header_map


@dataclasses.dataclass
class Signed:
    request: HttpRequest
    botocore_canonical: str


def botocore_sign(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    service: str = "iotdata",
    region: str = REGION,
    when: datetime = FIXED,
    secret: str = SK,
    token: str | None = None,
    signer: type[RecordingSigV4Auth] = RecordingSigV4Auth,
) -> Signed:
    aws_request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    auth = signer(Credentials(AK, secret, token), service, region)
    with frozen_clock(when):
        auth.add_auth(aws_request)
    return Signed(to_http_request(aws_request.prepare()), auth.last_canonical)


def botocore_presign(
    url: str,
    *,
    expires: int = 3600,
    service: str = "iotdevicegateway",
    region: str = REGION,
    when: datetime = FIXED,
    token: str | None = None,
) -> Signed:
    aws_request = AWSRequest(method="GET", url=url)
    auth = RecordingSigV4QueryAuth(Credentials(AK, SK, token), service, region, expires=expires)
    with frozen_clock(when):
        auth.add_auth(aws_request)
    return Signed(to_http_request(aws_request.prepare()), auth.last_canonical)


class _Captured(Exception):
    pass


def boto3_capture(call: Callable[[Any], Any], *, when: datetime | None = FIXED) -> HttpRequest:
    """Run ``call(client)`` on a real boto3 iot-data client; return the request it sent
    (signed at ``when``; None: now, with whichever signer botocore picks)."""
    client = boto3.client(
        "iot-data",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
    )
    sent: list[AWSPreparedRequest] = []

    def before_send(request: AWSPreparedRequest, **_: Any) -> None:
        sent.append(request)
        raise _Captured

    client.meta.events.register("before-send.iot-data", before_send)
    clock = frozen_clock(when) if when is not None else contextlib.nullcontext()
    with clock, pytest.raises(_Captured):
        call(client)
    assert len(sent) == 1
    return to_http_request(sent[0])


def check(
    request: HttpRequest,
    *,
    secret: str = SK,
    now: datetime = FIXED,
    service: str = "iotdata",
    allowed_regions: frozenset[str] | None = REGIONS,
    max_skew: timedelta = timedelta(minutes=15),
) -> SignatureInfo:
    info = parse_signature(request)
    verify_signature(
        request,
        info,
        secret_access_key=secret,
        now=now,
        service=service,
        allowed_regions=allowed_regions,
        max_skew=max_skew,
    )
    return info


def with_headers(request: HttpRequest, **changes: str | None) -> HttpRequest:
    """Copy of ``request`` with headers set (or removed, for None); names are case-insensitive."""
    headers = dict(request.headers)
    for key, value in changes.items():
        name = key.replace("_", "-")
        for existing in [h for h in headers if h.lower() == name.lower()]:
            del headers[existing]
        if value is not None:
            headers[name] = value
    return dataclasses.replace(request, headers=headers)


def topic_path(topic: str, safe: str) -> str:
    return percent_encode(topic, safe=safe)


# --------------------------------------------------------------------------- canonical form


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/retainedMessage", "/retainedMessage"),
        ("/retainedMessage/a%2Fb%24c", "/retainedMessage/a%252Fb%2524c"),
        ("/topics/with%20space", "/topics/with%2520space"),
        ("/a/./b/../c//d/", "/a/c/d/"),
        ("/~user/-_.", "/~user/-_."),
        ("/$aws/things", "/%24aws/things"),
        ("/%C3%A9", "/%25C3%25A9"),
    ],
)
def test_canonical_uri(raw_path: str, expected: str) -> None:
    assert canonical_uri(raw_path) == expected
    if raw_path:
        signer = botocore.auth.SigV4Auth(Credentials(AK, SK), "iotdata", REGION)
        assert signer._normalize_url_path(raw_path) == expected


@pytest.mark.parametrize(
    ("raw_query", "presigned", "expected"),
    [
        ("", False, ""),
        ("maxResults=200&nextToken=abc%3D", False, "maxResults=200&nextToken=abc%3D"),
        ("b=2&a=1&a=0", False, "a=0&a=1&b=2"),
        ("flag", False, "flag="),
        ("a=x y", False, "a=x%20y"),
        ("a=x+y", False, "a=x%20y"),  # '+' is a space, as Django reads it
        ("a=%2B", False, "a=%2B"),
        ("a=%7e%2d", False, "a=~-"),  # unreserved characters are decoded
        ("a=%ff", False, "a=%FF"),  # any octet survives, hex is upper-cased
        ("a=1&&b=2", False, "a=1&b=2"),
        ("X-Amz-Signature=abc&a=1", True, "a=1"),
        ("X-Amz-Signature=abc&a=1", False, "X-Amz-Signature=abc&a=1"),
    ],
)
def test_canonical_query_string(raw_query: str, presigned: bool, expected: str) -> None:
    assert canonical_query_string(raw_query, presigned=presigned) == expected


def test_presigned_query_can_leave_out_security_token() -> None:
    raw = "X-Amz-Security-Token=t%2F1&X-Amz-Signature=s&X-Amz-Date=d"
    assert canonical_query_string(raw, presigned=True) == "X-Amz-Date=d&X-Amz-Security-Token=t%2F1"
    assert canonical_query_string(raw, presigned=True, include_security_token=False) == (
        "X-Amz-Date=d"
    )


def test_signing_key_matches_aws_documentation_example() -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


# --------------------------------------------------------------------------- accepted requests


def _list_request() -> Signed:
    query = percent_encode_sequence({"maxResults": 200, "nextToken": "AAA+/=bbb~ c"})
    return botocore_sign("GET", f"{ENDPOINT}/retainedMessage?{query}")


def _publish_request() -> Signed:
    return botocore_sign(
        "POST",
        f"{ENDPOINT}/topics/{percent_encode('sensors/1/$temp')}?qos=1&retain=true",
        body=bytes(range(256)) * 3,
        headers={
            "x-amz-mqtt5-user-properties": "W3siYSI6ImIifV0=",
            "Content-Type": "application/octet-stream",
        },
    )


ACCEPTED: list[tuple[str, Callable[[], Signed]]] = [
    ("list", _list_request),
    ("list-no-query", lambda: botocore_sign("GET", f"{ENDPOINT}/retainedMessage")),
    ("publish-binary", _publish_request),
    (
        "publish-empty-body",
        lambda: botocore_sign("POST", f"{ENDPOINT}/topics/t?qos=0&retain=false"),
    ),
    (
        "session-token-header",
        lambda: botocore_sign("GET", f"{ENDPOINT}/retainedMessage", token=TOKEN),
    ),
    (
        "header-whitespace",
        lambda: botocore_sign(
            "GET",
            f"{ENDPOINT}/retainedMessage",
            headers={"x-amz-mqtt5-correlation-data": "  a   b \t c  "},
        ),
    ),
    (
        "date-header-instead-of-x-amz-date",
        lambda: botocore_sign(
            "GET", f"{ENDPOINT}/retainedMessage", headers={"Date": "Wed, 25 Nov 2026 18:30:00 GMT"}
        ),
    ),
    (
        "correct-content-sha256",
        lambda: botocore_sign(
            "POST",
            f"{ENDPOINT}/topics/t",
            body=b"hello",
            headers={"X-Amz-Content-SHA256": hashlib.sha256(b"hello").hexdigest()},
        ),
    ),
    (
        "non-default-port-and-region",
        lambda: botocore_sign("GET", "http://127.0.0.1:9443/retainedMessage", region="eu-west-1"),
    ),
]
ACCEPTED += [
    (
        f"get-topic-{safe or 'none'}-{i}",
        lambda t=topic, s=safe: botocore_sign(  # type: ignore[misc]
            "GET", f"{ENDPOINT}/retainedMessage/{topic_path(t, s)}"
        ),
    )
    for i, topic in enumerate(TOPICS)
    # botocore's rest-json serializer uses the default safe='-_.~' for a
    # non-greedy label; other SDKs may encode more (safe='~'): both must verify.
    for safe in ("-_.~", "~")
]


@pytest.mark.parametrize("make", [m for _, m in ACCEPTED], ids=[n for n, _ in ACCEPTED])
def test_botocore_signed_requests_verify(make: Callable[[], Signed]) -> None:
    signed = make()
    info = check(signed.request, allowed_regions=None)
    assert info.access_key_id == AK
    assert info.amz_date == FIXED
    assert not info.presigned
    assert "host" in info.signed_headers
    # Our canonical request is byte for byte botocore's.
    body_hash = hashlib.sha256(signed.request.body).hexdigest()
    claimed = {k.lower(): v for k, v in signed.request.headers.items()}.get(
        "x-amz-content-sha256", body_hash
    )
    assert canonical_request(signed.request, info, claimed) == signed.botocore_canonical


def test_parse_header_signed_fields() -> None:
    info = parse_signature(_publish_request().request)
    assert info == SignatureInfo(
        access_key_id=AK,
        date="20261125",
        region=REGION,
        service="iotdata",
        amz_date=FIXED,
        signed_headers=("content-type", "host", "x-amz-date", "x-amz-mqtt5-user-properties"),
        signature=info.signature,
        presigned=False,
        expires_seconds=None,
    )
    assert len(info.signature) == 64


def test_authorization_parsing_is_whitespace_tolerant_and_header_names_case_insensitive() -> None:
    request = _list_request().request
    auth = request.headers["Authorization"]
    for variant in (
        auth.replace(", ", ","),
        auth.replace(", ", " ,   "),
        "  " + auth + "  ",
    ):
        headers = {k.upper(): v for k, v in request.headers.items() if k != "Authorization"}
        headers["authorization"] = variant
        check(dataclasses.replace(request, headers=headers))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.list_retained_messages(maxResults=200), id="list"),
        pytest.param(
            lambda c: c.list_retained_messages(maxResults=10, nextToken="abc=/+ é"),
            id="list-next-token",
        ),
        *(
            pytest.param(lambda c, t=t: c.get_retained_message(topic=t), id=f"get-{i}")
            for i, t in enumerate(TOPICS)
        ),
        pytest.param(
            lambda c: c.publish(
                topic="sensors/é/$x y+z",
                qos=1,
                retain=True,
                payload=b"\x00\xff\x80binary\r\n",
                userProperties='[{"key":"value"}]',
            ),
            id="publish",
        ),
    ],
)
def test_real_boto3_iot_data_client_requests_verify(call: Callable[[Any], Any]) -> None:
    request = boto3_capture(call)
    info = check(request)
    assert info.service == "iotdata"


def test_awscrt_signed_boto3_requests_verify() -> None:
    """awscrt's signer (what botocore uses when awscrt is installed, as with awsiotsdk) at
    the real clock: list, get with an odd topic, publish with a binary body."""
    import botocore.compat

    assert botocore.compat.HAS_CRT, "awscrt is a test dependency (awsiotsdk needs it)"
    assert botocore.auth.AUTH_TYPE_MAPS["v4"].__name__ == "CrtSigV4Auth"
    calls: list[Callable[[Any], Any]] = [
        lambda c: c.list_retained_messages(maxResults=200),
        lambda c: c.get_retained_message(topic="sensors/é/$x y+z"),
        lambda c: c.publish(topic="a/b", qos=1, retain=True, payload=b"\x00\xff"),
    ]
    for call in calls:
        request = boto3_capture(call, when=None)
        check(request, now=datetime.now(UTC))


def test_boto3_client_tolerates_clock_within_skew() -> None:
    request = boto3_capture(lambda c: c.list_retained_messages())
    for delta in (timedelta(minutes=14), timedelta(minutes=-14), timedelta(minutes=15)):
        check(request, now=FIXED + delta)


# --------------------------------------------------------------------------- presigned URLs


def test_presigned_websocket_url_verifies() -> None:
    signed = botocore_presign(f"{WS_ENDPOINT}/mqtt", expires=3600)
    info = check(signed.request, service="iotdevicegateway")
    assert info.presigned
    assert info.expires_seconds == 3600
    assert info.signed_headers == ("host",)
    assert info.security_token is None
    # SigV4QueryAuth (unlike S3SigV4QueryAuth) hashes the empty body: it does
    # not use UNSIGNED-PAYLOAD.
    assert signed.botocore_canonical.endswith("\n" + EMPTY_SHA256)
    assert canonical_request(signed.request, info, EMPTY_SHA256) == signed.botocore_canonical


def test_presigned_with_security_token_signed_by_botocore() -> None:
    signed = botocore_presign(f"{WS_ENDPOINT}/mqtt", token=TOKEN)
    info = check(signed.request, service="iotdevicegateway")
    assert info.security_token == TOKEN


def test_presigned_with_security_token_appended_after_signing() -> None:
    # AWS IoT WebSocket signers (Device SDKs, aws-crt with omit_session_token)
    # sign without the token and append it afterwards.
    signed = botocore_presign(f"{WS_ENDPOINT}/mqtt")
    request = dataclasses.replace(
        signed.request,
        raw_query=signed.request.raw_query + "&X-Amz-Security-Token=" + percent_encode(TOKEN),
    )
    assert check(request, service="iotdevicegateway").security_token == TOKEN


def test_presigned_with_other_query_parameters() -> None:
    signed = botocore_presign(f"{WS_ENDPOINT}/mqtt?clientId=dev%201&x=%2F")
    check(signed.request, service="iotdevicegateway")


@pytest.mark.parametrize(
    ("delta", "ok"),
    [
        (timedelta(0), True),
        (timedelta(seconds=3600), True),
        (timedelta(seconds=3601), False),
        (timedelta(minutes=-14), True),
        (timedelta(minutes=-16), False),
    ],
)
def test_presigned_validity_window(delta: timedelta, ok: bool) -> None:
    request = botocore_presign(f"{WS_ENDPOINT}/mqtt", expires=3600).request
    if ok:
        check(request, now=FIXED + delta, service="iotdevicegateway")
    else:
        with pytest.raises(SignatureError) as excinfo:
            check(request, now=FIXED + delta, service="iotdevicegateway")
        assert excinfo.value.kind == "expired"


# --------------------------------------------------------------------------- refusals


def _auth_header(value: str) -> HttpRequest:
    return with_headers(_list_request().request, Authorization=value)


def _replace_query(request: HttpRequest, old: str, new: str) -> HttpRequest:
    assert old in request.raw_query
    return dataclasses.replace(request, raw_query=request.raw_query.replace(old, new))


def _flip_signature(request: HttpRequest) -> HttpRequest:
    auth = request.headers["Authorization"]
    last = "0" if auth[-1] != "0" else "1"
    return with_headers(request, Authorization=auth[:-1] + last)


def _presigned() -> HttpRequest:
    return botocore_presign(f"{WS_ENDPOINT}/mqtt").request


_GOOD_AUTH = (
    f"AWS4-HMAC-SHA256 Credential={AK}/20261125/{REGION}/iotdata/aws4_request, "
    f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}"
)

# (id, request factory, extra verify kwargs, expected kind)
REFUSALS: list[tuple[str, Callable[[], HttpRequest], dict[str, Any], str]] = [
    (
        "no-auth",
        lambda: HttpRequest("GET", "/retainedMessage", "", {"Host": "localhost:8000"}, b""),
        {},
        "missing",
    ),
    (
        "presign-params-without-signature",
        lambda: _replace_query(_presigned(), "X-Amz-Signature=", "X-Amz-Nothing="),
        {"service": "iotdevicegateway"},
        "missing",
    ),
    ("garbage-authorization", lambda: _auth_header("garbage"), {}, "malformed"),
    ("empty-authorization", lambda: _auth_header(""), {}, "malformed"),
    ("bearer-token", lambda: _auth_header("Bearer abc.def"), {}, "unsupported"),
    (
        "sigv4a",
        lambda: _auth_header(_GOOD_AUTH.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")),
        {},
        "unsupported",
    ),
    ("sigv2", lambda: _auth_header(f"AWS {AK}:c2lnbmF0dXJl"), {}, "unsupported"),
    (
        "presigned-wrong-algorithm",
        lambda: _replace_query(_presigned(), "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        {"service": "iotdevicegateway"},
        "unsupported",
    ),
    (
        "missing-signature-component",
        lambda: _auth_header(_GOOD_AUTH.rsplit(",", 1)[0]),
        {},
        "malformed",
    ),
    (
        "duplicate-component",
        lambda: _auth_header(_GOOD_AUTH + ", Signature=" + "1" * 64),
        {},
        "malformed",
    ),
    (
        "unknown-component",
        lambda: _auth_header(_GOOD_AUTH + ", Foo=bar"),
        {},
        "malformed",
    ),
    (
        "credential-too-short",
        lambda: _auth_header(_GOOD_AUTH.replace(f"{AK}/", "")),
        {},
        "malformed",
    ),
    (
        "credential-bad-terminator",
        lambda: _auth_header(_GOOD_AUTH.replace("aws4_request", "aws5_request")),
        {},
        "malformed",
    ),
    (
        "credential-bad-date",
        lambda: _auth_header(_GOOD_AUTH.replace("20261125", "2026-11-25")),
        {},
        "malformed",
    ),
    (
        "signature-not-hex",
        lambda: _auth_header(_GOOD_AUTH.replace("0" * 64, "z" * 64)),
        {},
        "malformed",
    ),
    (
        "signature-too-short",
        lambda: _auth_header(_GOOD_AUTH.replace("0" * 64, "0" * 63)),
        {},
        "malformed",
    ),
    (
        "signed-headers-unsorted",
        lambda: _auth_header(_GOOD_AUTH.replace("host;x-amz-date", "x-amz-date;host")),
        {},
        "malformed",
    ),
    (
        "signed-headers-uppercase",
        lambda: _auth_header(_GOOD_AUTH.replace("host;x-amz-date", "Host;x-amz-date")),
        {},
        "malformed",
    ),
    (
        "no-date-header",
        lambda: with_headers(_list_request().request, X_Amz_Date=None),
        {},
        "malformed",
    ),
    (
        "bad-x-amz-date",
        lambda: with_headers(_list_request().request, X_Amz_Date="2026-11-25T18:30:00Z"),
        {},
        "malformed",
    ),
    (
        "impossible-x-amz-date",
        lambda: with_headers(_list_request().request, X_Amz_Date="20261345T183000Z"),
        {},
        "malformed",
    ),
    (
        "header-and-query-auth",
        lambda: with_headers(_presigned(), Authorization=_GOOD_AUTH),
        {"service": "iotdevicegateway"},
        "malformed",
    ),
    (
        "presigned-duplicate-signature",
        lambda: dataclasses.replace(
            _presigned(), raw_query=_presigned().raw_query + "&X-Amz-Signature=" + "0" * 64
        ),
        {"service": "iotdevicegateway"},
        "malformed",
    ),
    (
        "presigned-expires-not-a-number",
        lambda: _replace_query(_presigned(), "X-Amz-Expires=3600", "X-Amz-Expires=1h"),
        {"service": "iotdevicegateway"},
        "malformed",
    ),
    (
        "presigned-missing-credential",
        lambda: _replace_query(_presigned(), "X-Amz-Credential=", "X-Amz-Credentials="),
        {"service": "iotdevicegateway"},
        "malformed",
    ),
    # --- signature mismatches
    ("wrong-secret", lambda: _list_request().request, {"secret": SK + "x"}, "mismatch"),
    (
        "tampered-body",
        lambda: dataclasses.replace(_publish_request().request, body=b"evil"),
        {},
        "mismatch",
    ),
    (
        "truncated-body",
        lambda: dataclasses.replace(
            _publish_request().request, body=_publish_request().request.body[:-1]
        ),
        {},
        "mismatch",
    ),
    (
        "tampered-path",
        lambda: dataclasses.replace(_publish_request().request, raw_path="/topics/sensors%2F2"),
        {},
        "mismatch",
    ),
    (
        "path-encoding-changed",
        # Same decoded topic, different wire form: still a different request.
        lambda: dataclasses.replace(
            _publish_request().request,
            raw_path=_publish_request().request.raw_path.replace("%24", "$"),
        ),
        {},
        "mismatch",
    ),
    (
        "tampered-method",
        lambda: dataclasses.replace(_list_request().request, method="DELETE"),
        {},
        "mismatch",
    ),
    (
        "tampered-query-value",
        lambda: _replace_query(_list_request().request, "maxResults=200", "maxResults=201"),
        {},
        "mismatch",
    ),
    (
        "added-query-param",
        lambda: dataclasses.replace(
            _publish_request().request, raw_query="qos=1&retain=true&extra=1"
        ),
        {},
        "mismatch",
    ),
    (
        "removed-query-param",
        lambda: dataclasses.replace(_publish_request().request, raw_query="qos=1"),
        {},
        "mismatch",
    ),
    (
        "tampered-signed-header",
        lambda: with_headers(_publish_request().request, x_amz_mqtt5_user_properties="W10="),
        {},
        "mismatch",
    ),
    (
        "tampered-host",
        lambda: with_headers(_list_request().request, Host="evil.example:8000"),
        {},
        "mismatch",
    ),
    (
        "removed-signed-header",
        lambda: with_headers(_publish_request().request, Content_Type=None),
        {},
        "mismatch",
    ),
    ("tampered-signature", lambda: _flip_signature(_list_request().request), {}, "mismatch"),
    (
        "presigned-tampered-path",
        lambda: dataclasses.replace(_presigned(), raw_path="/mqtt2"),
        {"service": "iotdevicegateway"},
        "mismatch",
    ),
    (
        "presigned-tampered-expires",
        lambda: _replace_query(_presigned(), "X-Amz-Expires=3600", "X-Amz-Expires=7200"),
        {"service": "iotdevicegateway"},
        "mismatch",
    ),
    (
        "presigned-with-body",
        lambda: dataclasses.replace(_presigned(), body=b"x"),
        {"service": "iotdevicegateway"},
        "mismatch",
    ),
    # --- scope
    (
        "wrong-service",
        lambda: botocore_sign("GET", f"{ENDPOINT}/retainedMessage", service="iot").request,
        {},
        "scope",
    ),
    (
        "presigned-for-iotdata-used-on-gateway",
        lambda: botocore_presign(f"{WS_ENDPOINT}/mqtt", service="iotdata").request,
        {"service": "iotdevicegateway"},
        "scope",
    ),
    (
        "region-not-allowed",
        lambda: botocore_sign("GET", f"{ENDPOINT}/retainedMessage", region="eu-west-1").request,
        {},
        "scope",
    ),
    (
        "no-region-allowed",
        lambda: _list_request().request,
        {"allowed_regions": frozenset()},
        "scope",
    ),
    (
        "scope-date-differs-from-x-amz-date",
        lambda: with_headers(
            botocore_sign(
                "GET",
                f"{ENDPOINT}/retainedMessage",
                when=datetime(2026, 11, 25, 23, 59, 50, tzinfo=UTC),
            ).request,
            X_Amz_Date="20261126T000005Z",
        ),
        {"now": datetime(2026, 11, 26, 0, 0, 0, tzinfo=UTC)},
        "scope",
    ),
    # --- time
    (
        "clock-16-minutes-ahead",
        lambda: _list_request().request,
        {"now": FIXED + timedelta(minutes=16)},
        "expired",
    ),
    (
        "clock-16-minutes-behind",
        lambda: _list_request().request,
        {"now": FIXED - timedelta(minutes=16)},
        "expired",
    ),
    (
        "custom-skew",
        lambda: _list_request().request,
        {"now": FIXED + timedelta(minutes=2), "max_skew": timedelta(minutes=1)},
        "expired",
    ),
    (
        "presigned-expired",
        _presigned,
        {"service": "iotdevicegateway", "now": FIXED + timedelta(hours=2)},
        "expired",
    ),
    (
        "presigned-expires-too-long",
        lambda: botocore_presign(f"{WS_ENDPOINT}/mqtt", expires=604801).request,
        {"service": "iotdevicegateway"},
        "expired",
    ),
    (
        "presigned-expires-zero",
        lambda: botocore_presign(f"{WS_ENDPOINT}/mqtt", expires=0).request,
        {"service": "iotdevicegateway"},
        "expired",
    ),
    # --- host must be signed
    (
        # Signed correctly with the right secret, but without 'host': refused as
        # "malformed" (a SigV4 rule the claim itself breaks, decided before any
        # crypto), not "mismatch" (which would send the client hunting for a
        # wrong secret key).
        "host-not-signed",
        lambda: botocore_sign("GET", f"{ENDPOINT}/retainedMessage", signer=NoHostSigV4Auth).request,
        {},
        "malformed",
    ),
    # --- body hash
    (
        "bad-x-amz-content-sha256",
        lambda: (
            botocore_sign(
                "POST",
                f"{ENDPOINT}/topics/t",
                body=b"hello",
                headers={"X-Amz-Content-SHA256": hashlib.sha256(b"bye").hexdigest()},
            ).request
        ),
        {},
        "body",
    ),
    (
        "x-amz-content-sha256-not-hex",
        lambda: (
            botocore_sign(
                "POST",
                f"{ENDPOINT}/topics/t",
                body=b"hello",
                headers={"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
            ).request
        ),
        {},
        "body",
    ),
    (
        "unsigned-payload-on-header-signed-request",
        lambda: (
            botocore_sign(
                "POST",
                f"{ENDPOINT}/topics/t",
                body=b"hello",
                headers={"X-Amz-Content-SHA256": UNSIGNED_PAYLOAD},
            ).request
        ),
        {},
        "body",
    ),
    (
        "body-swapped-along-with-content-sha256",
        lambda: with_headers(
            dataclasses.replace(
                botocore_sign(
                    "POST",
                    f"{ENDPOINT}/topics/t",
                    body=b"hello",
                    headers={"X-Amz-Content-SHA256": hashlib.sha256(b"hello").hexdigest()},
                ).request,
                body=b"evil",
            ),
            X_Amz_Content_SHA256=hashlib.sha256(b"evil").hexdigest(),
        ),
        {},
        "mismatch",
    ),
]


@pytest.mark.parametrize(
    ("make", "kwargs", "kind"),
    [(m, kw, k) for _, m, kw, k in REFUSALS],
    ids=[name for name, *_ in REFUSALS],
)
def test_refusals(make: Callable[[], HttpRequest], kwargs: dict[str, Any], kind: str) -> None:
    request = make()
    with pytest.raises(SignatureError) as excinfo:
        check(request, **kwargs)
    err = excinfo.value
    assert err.kind == kind, str(err)
    message = str(err)
    assert message
    assert SK not in message
    assert SK not in repr(err)
    if kind == "mismatch" and "is not present" not in message:
        assert message.startswith(
            "The request signature we calculated does not match the signature you provided."
        )
        assert err.canonical_request is not None
        assert err.string_to_sign is not None


def test_mismatch_does_not_leak_the_expected_signature() -> None:
    request = _list_request().request
    expected = parse_signature(request).signature
    with pytest.raises(SignatureError) as excinfo:
        check(_replace_query(request, "maxResults=200", "maxResults=1"))
    err = excinfo.value
    for text in (str(err), repr(err), err.canonical_request or "", err.string_to_sign or ""):
        assert expected not in text
        assert SK not in text


def test_clock_skew_boundaries() -> None:
    request = _list_request().request
    for delta in (timedelta(minutes=14), timedelta(minutes=-14)):
        check(request, now=FIXED + delta)
    check(request, now=FIXED + timedelta(minutes=15))
    with pytest.raises(SignatureError) as excinfo:
        check(request, now=FIXED + timedelta(minutes=15, seconds=1))
    assert excinfo.value.kind == "expired"


def test_now_must_be_timezone_aware() -> None:
    request = _list_request().request
    with pytest.raises(ValueError, match="timezone-aware"):
        check(request, now=FIXED.replace(tzinfo=None))


def test_unknown_error_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        SignatureError("x", kind="nope")


def test_module_is_pure() -> None:
    tree = ast.parse(Path(sigv4.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# --------------------------------------------------------------------------- properties

_query_text = st.text(max_size=40)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(min_size=1, max_size=512), value=_query_text, data=st.data())
def test_property_signed_requests_verify_and_any_body_flip_fails(
    body: bytes, value: str, data: st.DataObject
) -> None:
    query = percent_encode_sequence([("qos", "1"), ("retain", "true"), ("tag", value)])
    request = botocore_sign("POST", f"{ENDPOINT}/topics/a%2Fb?{query}", body=body).request
    check(request)

    index = data.draw(st.integers(0, len(body) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    flipped = bytearray(body)
    flipped[index] ^= mask
    with pytest.raises(SignatureError) as excinfo:
        check(dataclasses.replace(request, body=bytes(flipped)))
    assert excinfo.value.kind == "mismatch"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=20)), max_size=6))
def test_property_canonical_query_matches_botocore(pairs: list[tuple[str, str]]) -> None:
    signer = botocore.auth.SigV4Auth(Credentials(AK, SK), "iotdata", REGION)
    expected = signer._canonical_query_string_params(pairs)
    assert canonical_query_string(percent_encode_sequence(pairs)) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=5))
def test_property_canonical_uri_matches_botocore(segments: list[str]) -> None:
    path = "/" + "/".join(percent_encode(s) for s in segments)
    signer = botocore.auth.SigV4Auth(Credentials(AK, SK), "iotdata", REGION)
    assert canonical_uri(path) == signer._normalize_url_path(path)


def test_presigned_with_unsigned_payload_s3_style() -> None:
    # S3-style presigners (botocore's S3SigV4QueryAuth) put UNSIGNED-PAYLOAD in
    # the canonical request; accepted for presigned requests with no body only.
    aws_request = AWSRequest(method="GET", url=f"{WS_ENDPOINT}/mqtt")
    auth = botocore.auth.S3SigV4QueryAuth(Credentials(AK, SK), "iotdevicegateway", REGION)
    with frozen_clock(FIXED):
        auth.add_auth(aws_request)
    request = to_http_request(aws_request.prepare())
    check(request, service="iotdevicegateway")
    with pytest.raises(SignatureError) as excinfo:
        check(dataclasses.replace(request, body=b"x"), service="iotdevicegateway")
    assert excinfo.value.kind == "mismatch"
