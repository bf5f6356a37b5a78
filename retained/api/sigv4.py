"""Verification of AWS Signature Version 4 (SigV4) signed HTTP requests.

This module is pure: it uses only the standard library and knows nothing about
Django or botocore.  The web layer turns an incoming request into an
:class:`HttpRequest`, calls :func:`parse_signature` to find out which access key
claims to have signed it, looks the secret up, and calls
:func:`verify_signature`.  Both raise :class:`SignatureError`, whose ``kind``
tells the caller which AWS-style error to answer with.

Two ways of carrying a signature are understood:

* header-signed requests (``Authorization: AWS4-HMAC-SHA256 Credential=...,
  SignedHeaders=..., Signature=...`` plus an ``X-Amz-Date`` or ``Date`` header),
  which is what boto3 ``iot-data`` clients send;
* presigned URLs (``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``,
  ``X-Amz-Expires``, ``X-Amz-SignedHeaders``, ``X-Amz-Signature`` and an optional
  ``X-Amz-Security-Token`` in the query string), which is what MQTT over
  WebSocket clients use with the ``iotdevicegateway`` service.

The canonicalisation mirrors botocore's ``SigV4Auth`` / ``SigV4QueryAuth``
(``botocore/auth.py``) for non-S3 services:

* canonical URI: the path *as sent* (still percent-encoded), with dot segments
  and empty segments removed, percent-encoded once more with ``safe='/~'``, so
  ``%2F`` becomes ``%252F``;
* canonical query: ``key=value`` pairs, decoded and re-encoded with
  ``safe='-_.~'``, sorted by key then value; ``X-Amz-Signature`` is left out;
* canonical headers: the signed headers only, lower-cased names, values with
  surrounding white space removed and inner runs of white space collapsed;
* payload hash: the value of ``x-amz-content-sha256`` when the client sent one
  (which must then describe the body), otherwise the SHA-256 of the body.

Presigned URLs are produced by more than one kind of signer, so for them a
small, fixed set of variants is tried (see :func:`verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "KINDS",
    "MAX_PRESIGNED_EXPIRES",
    "UNSIGNED_PAYLOAD",
    "HttpRequest",
    "SignatureError",
    "SignatureInfo",
    "canonical_headers",
    "canonical_query_string",
    "canonical_request",
    "canonical_uri",
    "compute_signature",
    "credential_scope",
    "parse_signature",
    "signing_key",
    "string_to_sign",
    "verify_signature",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGNED_EXPIRES = 604800  # seven days, the AWS limit
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
SCOPE_TERMINATOR = "aws4_request"

_SIGNATURE_PARAM = "X-Amz-Signature"
_TOKEN_PARAM = "X-Amz-Security-Token"  # noqa: S105 - a parameter name, not a secret
_PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    _SIGNATURE_PARAM,
    _TOKEN_PARAM,
)

_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_SCOPE_DATE_RE = re.compile(r"\d{8}")
_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}")
_SHA256_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")  # RFC 9110 token, lower case
_EXPIRES_RE = re.compile(r"\d{1,10}")
KINDS = frozenset({"missing", "malformed", "unsupported", "scope", "expired", "mismatch", "body"})


class SignatureError(Exception):
    """A request's signature is missing, unusable or wrong.

    ``kind`` is one of :data:`KINDS`:

    ``missing``      no ``Authorization`` header and no ``X-Amz-Signature`` parameter
    ``malformed``    the signature information cannot be parsed, or breaks SigV4 rules
    ``unsupported``  a signing algorithm other than AWS4-HMAC-SHA256
    ``scope``        wrong service, a region that is not allowed, or a scope date that
                     does not agree with the request date
    ``expired``      outside the allowed clock skew, or a presigned URL that expired
                     (or asks for an expiry outside 1..604800 seconds)
    ``mismatch``     the signature does not match the request
    ``body``         ``x-amz-content-sha256`` does not describe the body

    The message never contains the secret key or the expected signature.  For
    ``mismatch`` errors, ``canonical_request`` and ``string_to_sign`` hold what
    the server computed (first variant tried), for logging or for an AWS-style
    error response; neither contains anything secret.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        canonical_request: str | None = None,
        string_to_sign: str | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown SignatureError kind {kind!r}")
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign

    def __repr__(self) -> str:
        return f"SignatureError({self.message!r}, kind={self.kind!r})"


@dataclass(frozen=True)
class HttpRequest:
    """An incoming HTTP request, as close to the wire as possible.

    ``raw_path`` is the path exactly as received, still percent-encoded (if the
    server hands over bytes, decode them as UTF-8); ``raw_query`` is the query
    string without the ``?``.  Header names may use any case; duplicate headers
    must already be joined with ``","``.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class SignatureInfo:
    """What the request claims about its signature (nothing verified yet)."""

    access_key_id: str
    date: str  # scope date, e.g. "20261125"
    region: str
    service: str
    amz_date: datetime  # request time, UTC aware
    signed_headers: tuple[str, ...]
    signature: str  # 64 lower-case hex digits
    presigned: bool
    expires_seconds: int | None  # presigned only; None when X-Amz-Expires is absent
    security_token: str | None = None

    @property
    def scope(self) -> str:
        return credential_scope(self.date, self.region, self.service)

    @property
    def amz_date_str(self) -> str:
        return self.amz_date.strftime(AMZ_DATE_FORMAT)


# --------------------------------------------------------------------------- helpers


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header map with lower-cased names (values of names differing only in case joined)."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _split_query(raw_query: str) -> list[tuple[bytes, bytes]]:
    """Decoded ``(key, value)`` pairs of a raw query string, in order.

    ``+`` is read as a space, as Django (and every HTML form decoder) does, so
    that what is verified is what the application later reads.  Empty segments
    (``a=1&&b=2``) are skipped.  Values are kept as bytes so that any octet
    survives a decode/re-encode round trip unchanged.
    """
    pairs: list[tuple[bytes, bytes]] = []
    for segment in raw_query.split("&"):
        if not segment:
            continue
        key, _, value = segment.partition("=")
        pairs.append(
            (
                unquote_to_bytes(key.replace("+", " ")),
                unquote_to_bytes(value.replace("+", " ")),
            )
        )
    return pairs


def _decode_param(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError(f"{name} is not valid UTF-8.", kind="malformed") from None


def _parse_amz_date(value: str, source: str) -> datetime:
    if not _AMZ_DATE_RE.fullmatch(value):
        raise SignatureError(
            f"{source} {value!r} is not in the format YYYYMMDD'T'HHMMSS'Z'.", kind="malformed"
        )
    try:
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"{source} {value!r} is not a valid date.", kind="malformed") from None


def _parse_http_date(value: str) -> datetime:
    """An RFC 2822 / RFC 9110 date, as in the ``Date`` header (botocore sends ``-0000``)."""
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        raise SignatureError(
            f"Date header {value[:60]!r} is not an HTTP date such as "
            "'Wed, 25 Nov 2026 18:30:00 GMT'.",
            kind="malformed",
        )
    if parsed.tzinfo is None:  # "-0000": UTC, source time zone unknown
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_credential(value: str) -> tuple[str, str, str, str]:
    parts = value.strip().split("/")
    if len(parts) != 5 or not all(parts):
        raise SignatureError(
            "Credential must have the form "
            "'<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request'; "
            f"got {len(parts)} '/'-separated part(s).",
            kind="malformed",
        )
    access_key_id, date, region, service, terminator = parts
    if not _SCOPE_DATE_RE.fullmatch(date):
        raise SignatureError(
            f"Credential scope date {date!r} is not in the format YYYYMMDD.", kind="malformed"
        )
    if terminator != SCOPE_TERMINATOR:
        raise SignatureError(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not "
            f"{terminator!r}.",
            kind="malformed",
        )
    return access_key_id, date, region, service


def _parse_signed_headers(value: str) -> tuple[str, ...]:
    names = tuple(value.strip().split(";"))
    if not value.strip() or not all(names):
        raise SignatureError(
            "SignedHeaders must be a ';'-separated list of names.", kind="malformed"
        )
    for name in names:
        if not _HEADER_NAME_RE.fullmatch(name):
            raise SignatureError(
                f"SignedHeaders entry {name!r} is not a lower-case header name.", kind="malformed"
            )
    if list(names) != sorted(set(names)):
        raise SignatureError(
            "SignedHeaders must be sorted and must not repeat a name.", kind="malformed"
        )
    if "authorization" in names:
        raise SignatureError("SignedHeaders must not include 'authorization'.", kind="malformed")
    return names


def _parse_signature_value(value: str) -> str:
    value = value.strip()
    if not _SIGNATURE_RE.fullmatch(value):
        raise SignatureError("Signature must be 64 hexadecimal digits.", kind="malformed")
    return value.lower()


# --------------------------------------------------------------------------- parsing


def parse_signature(request: HttpRequest) -> SignatureInfo:
    """Extract the claimed signature from ``request`` without checking it.

    Raises :class:`SignatureError` (``missing``, ``malformed`` or ``unsupported``).
    """
    headers = _lower_headers(request.headers)
    query = _split_query(request.raw_query)
    presigned = any(key == _SIGNATURE_PARAM.encode() for key, _ in query)
    authorization = headers.get("authorization")

    if authorization is not None and presigned:
        raise SignatureError(
            "Only one authentication method is allowed: found both an Authorization header "
            "and an X-Amz-Signature query parameter.",
            kind="malformed",
        )
    if presigned:
        return _parse_presigned(query)
    if authorization is None:
        raise SignatureError(
            "Missing Authentication Token: the request has neither an Authorization header "
            "nor an X-Amz-Signature query parameter.",
            kind="missing",
        )
    return _parse_authorization(authorization, headers)


def _parse_authorization(authorization: str, headers: Mapping[str, str]) -> SignatureInfo:
    algorithm, sep, rest = authorization.strip().partition(" ")
    if not sep or not rest.strip():
        raise SignatureError(
            "Authorization header must look like 'AWS4-HMAC-SHA256 Credential=..., "
            "SignedHeaders=..., Signature=...'.",
            kind="malformed",
        )
    if algorithm != ALGORITHM:
        raise SignatureError(
            f"Unsupported signing algorithm {algorithm[:40]!r}; only {ALGORITHM} is accepted.",
            kind="unsupported",
        )
    fields: dict[str, str] = {}
    for component in rest.split(","):
        component = component.strip()
        if not component:
            continue
        name, eq, value = component.partition("=")
        name = name.strip()
        if not eq:
            raise SignatureError(
                f"Authorization component {name[:40]!r} is not of the form 'Name=value'.",
                kind="malformed",
            )
        if name not in ("Credential", "SignedHeaders", "Signature"):
            raise SignatureError(
                f"Unknown Authorization component {name[:40]!r}; expected Credential, "
                "SignedHeaders and Signature.",
                kind="malformed",
            )
        if name in fields:
            raise SignatureError(
                f"Authorization component {name!r} appears more than once.", kind="malformed"
            )
        fields[name] = value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing:
        raise SignatureError(
            f"Authorization header is missing {', '.join(missing)}.", kind="malformed"
        )

    access_key_id, date, region, service = _parse_credential(fields["Credential"])
    signed_headers = _parse_signed_headers(fields["SignedHeaders"])
    signature = _parse_signature_value(fields["Signature"])

    if "x-amz-date" in headers:
        amz_date = _parse_amz_date(headers["x-amz-date"].strip(), "X-Amz-Date header")
    elif "date" in headers:
        amz_date = _parse_http_date(headers["date"])
    else:
        raise SignatureError(
            "Authorization header requires an 'X-Amz-Date' or a 'Date' header.", kind="malformed"
        )
    return SignatureInfo(
        access_key_id=access_key_id,
        date=date,
        region=region,
        service=service,
        amz_date=amz_date,
        signed_headers=signed_headers,
        signature=signature,
        presigned=False,
        expires_seconds=None,
        security_token=headers.get("x-amz-security-token"),
    )


def _parse_presigned(query: list[tuple[bytes, bytes]]) -> SignatureInfo:
    params: dict[str, str] = {}
    wanted = {name.encode(): name for name in _PRESIGN_PARAMS}
    for key, value in query:
        name = wanted.get(key)
        if name is None:
            continue
        if name in params:
            raise SignatureError(
                f"Query parameter {name} appears more than once.", kind="malformed"
            )
        params[name] = _decode_param(value, name)

    algorithm = params.get("X-Amz-Algorithm")
    if algorithm is None:
        raise SignatureError(
            "Presigned request is missing the X-Amz-Algorithm query parameter.", kind="malformed"
        )
    if algorithm != ALGORITHM:
        raise SignatureError(
            f"Unsupported signing algorithm {algorithm[:40]!r}; only {ALGORITHM} is accepted.",
            kind="unsupported",
        )
    missing = [
        n for n in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders") if n not in params
    ]
    if missing:
        raise SignatureError(
            f"Presigned request is missing the query parameter(s) {', '.join(missing)}.",
            kind="malformed",
        )

    access_key_id, date, region, service = _parse_credential(params["X-Amz-Credential"])
    amz_date = _parse_amz_date(params["X-Amz-Date"], "X-Amz-Date parameter")
    signed_headers = _parse_signed_headers(params["X-Amz-SignedHeaders"])
    signature = _parse_signature_value(params[_SIGNATURE_PARAM])

    expires: int | None = None
    if "X-Amz-Expires" in params:
        raw_expires = params["X-Amz-Expires"]
        if not _EXPIRES_RE.fullmatch(raw_expires):
            raise SignatureError(
                f"X-Amz-Expires {raw_expires[:20]!r} is not a whole number of seconds.",
                kind="malformed",
            )
        expires = int(raw_expires)

    return SignatureInfo(
        access_key_id=access_key_id,
        date=date,
        region=region,
        service=service,
        amz_date=amz_date,
        signed_headers=signed_headers,
        signature=signature,
        presigned=True,
        expires_seconds=expires,
        security_token=params.get(_TOKEN_PARAM),
    )


# --------------------------------------------------------------------------- canonical form


def _remove_dot_segments(path: str) -> str:
    """botocore.utils.remove_dot_segments: also drops empty segments (``//``)."""
    if not path:
        return ""
    output: list[str] = []
    for segment in path.split("/"):
        if segment and segment != ".":
            if segment == "..":
                if output:
                    output.pop()
            else:
                output.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and output else ""
    return first + "/".join(output) + last


def canonical_uri(raw_path: str) -> str:
    """The CanonicalURI for a non-S3 service, exactly as botocore computes it.

    The path as sent (already percent-encoded) is normalised and encoded again,
    so ``/retainedMessage/a%2Fb`` becomes ``/retainedMessage/a%252Fb``.
    """
    normalized = _remove_dot_segments(raw_path) if raw_path else "/"
    return quote(normalized, safe="/~")


def canonical_query_string(
    raw_query: str, *, presigned: bool = False, include_security_token: bool = True
) -> str:
    """The CanonicalQueryString: pairs re-encoded with ``safe='-_.~'`` and sorted.

    For presigned requests ``X-Amz-Signature`` is left out, and so is
    ``X-Amz-Security-Token`` when ``include_security_token`` is false (AWS IoT
    WebSocket signers append the token after signing).
    """
    excluded: set[bytes] = set()
    if presigned:
        excluded.add(_SIGNATURE_PARAM.encode())
        if not include_security_token:
            excluded.add(_TOKEN_PARAM.encode())
    pairs = sorted(
        (quote(key, safe="-_.~"), quote(value, safe="-_.~"))
        for key, value in _split_query(raw_query)
        if key not in excluded
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def _trim_all(value: str) -> str:
    return " ".join(value.split())


def canonical_headers(headers: Mapping[str, str], signed_headers: tuple[str, ...]) -> str:
    """``name:value\\n`` for every signed header, in sorted order.

    Raises ``SignatureError(kind="mismatch")`` when a signed header is absent.
    """
    lowered = _lower_headers(headers)
    lines = []
    for name in sorted(signed_headers):
        if name not in lowered:
            raise SignatureError(
                f"The request signature we calculated does not match the signature you "
                f"provided: signed header {name!r} is not present in the request.",
                kind="mismatch",
            )
        lines.append(f"{name}:{_trim_all(lowered[name])}\n")
    return "".join(lines)


def canonical_request(
    request: HttpRequest,
    info: SignatureInfo,
    payload_hash: str,
    *,
    include_security_token: bool = True,
) -> str:
    """The SigV4 CanonicalRequest for ``request`` as described by ``info``."""
    return "\n".join(
        (
            request.method.upper(),
            canonical_uri(request.raw_path),
            canonical_query_string(
                request.raw_query,
                presigned=info.presigned,
                include_security_token=include_security_token,
            ),
            canonical_headers(request.headers, info.signed_headers),
            ";".join(info.signed_headers),
            payload_hash,
        )
    )


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/{SCOPE_TERMINATOR}"


def string_to_sign(info: SignatureInfo, canonical: str) -> str:
    """The StringToSign for a canonical request."""
    return "\n".join(
        (
            ALGORITHM,
            info.amz_date_str,
            info.scope,
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        )
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    k_date = _hmac(f"AWS4{secret_access_key}".encode(), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, SCOPE_TERMINATOR)


def compute_signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- verification


def _check_time(info: SignatureInfo, now: datetime, max_skew: timedelta) -> None:
    if info.presigned and info.expires_seconds is not None:
        expires = info.expires_seconds
        if expires < 1 or expires > MAX_PRESIGNED_EXPIRES:
            raise SignatureError(
                f"X-Amz-Expires must be between 1 and {MAX_PRESIGNED_EXPIRES} seconds; "
                f"got {expires}.",
                kind="expired",
            )
        if now < info.amz_date - max_skew:
            raise SignatureError(
                f"Signature not yet current: {info.amz_date_str} is more than "
                f"{_fmt(max_skew)} after the server time {now.strftime(AMZ_DATE_FORMAT)}.",
                kind="expired",
            )
        expiry = info.amz_date + timedelta(seconds=expires)
        if now > expiry:
            raise SignatureError(
                f"Request has expired: the presigned URL was valid until "
                f"{expiry.strftime(AMZ_DATE_FORMAT)} and the server time is "
                f"{now.strftime(AMZ_DATE_FORMAT)}.",
                kind="expired",
            )
        return
    # Header-signed requests, and presigned URLs without X-Amz-Expires (as some
    # AWS IoT WebSocket signers produce): the request time must be close to now.
    if abs(now - info.amz_date) > max_skew:
        raise SignatureError(
            f"Signature expired: {info.amz_date_str} is not within {_fmt(max_skew)} of the "
            f"server time {now.strftime(AMZ_DATE_FORMAT)}.",
            kind="expired",
        )


def _fmt(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 60 == 0:
        return f"{seconds // 60} minute(s)"
    return f"{seconds} second(s)"


def _payload_hashes(request: HttpRequest, info: SignatureInfo) -> list[str]:
    """The payload hash(es) to try, after checking ``x-amz-content-sha256``."""
    body_hash = hashlib.sha256(request.body).hexdigest()
    claimed = _lower_headers(request.headers).get("x-amz-content-sha256")
    if claimed is not None:
        claimed = claimed.strip()
        if claimed == UNSIGNED_PAYLOAD:
            if info.presigned and not request.body:
                return [claimed]
            raise SignatureError(
                "x-amz-content-sha256 'UNSIGNED-PAYLOAD' is not accepted here: the body "
                "must be signed.",
                kind="body",
            )
        if not _SHA256_HEX_RE.fullmatch(claimed):
            raise SignatureError(
                "x-amz-content-sha256 must be the hex SHA-256 of the body "
                "(streaming and unsigned payloads are not supported).",
                kind="body",
            )
        if claimed.lower() != body_hash:
            raise SignatureError(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                kind="body",
            )
        # botocore puts the header's value, verbatim, into the canonical request.
        return [claimed]
    if info.presigned and not request.body:
        # botocore's SigV4QueryAuth and the AWS IoT SDKs hash the (empty) body;
        # S3-style presigners use the UNSIGNED-PAYLOAD constant instead.
        return [body_hash, UNSIGNED_PAYLOAD]
    return [body_hash]


def verify_signature(
    request: HttpRequest,
    info: SignatureInfo,
    *,
    secret_access_key: str,
    now: datetime,
    service: str,
    allowed_regions: frozenset[str] | None,
    max_skew: timedelta = timedelta(minutes=15),
) -> None:
    """Check ``info`` (from :func:`parse_signature`) against ``request``.

    Checks, in order: the service, the region (``allowed_regions=None`` allows
    any), that the scope date is the date of the request time, the request
    time, that ``host`` is signed, the body hash, and finally the signature
    (constant-time comparison).  Returns ``None`` or raises
    :class:`SignatureError`.

    Presigned requests are compared against up to four canonical requests:
    the payload hash is the SHA-256 of the body (botocore's ``SigV4QueryAuth``,
    AWS IoT SDKs) or, only when the body is empty, ``UNSIGNED-PAYLOAD``; and
    ``X-Amz-Security-Token``, when present, is included in the canonical query
    (botocore) or left out (AWS IoT WebSocket signers append it after signing).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    now = now.astimezone(UTC)

    if info.service != service:
        raise SignatureError(
            f"Credential should be scoped to correct service: {service!r}; got {info.service!r}.",
            kind="scope",
        )
    if allowed_regions is not None and info.region not in allowed_regions:
        raise SignatureError(
            f"Credential should be scoped to a valid region; {info.region!r} is not "
            f"served here (allowed: {', '.join(sorted(allowed_regions)) or 'none'}).",
            kind="scope",
        )
    if info.amz_date.strftime("%Y%m%d") != info.date:
        raise SignatureError(
            f"Date in Credential scope does not match YYYYMMDD from the request date: "
            f"{info.date!r} vs {info.amz_date_str!r}.",
            kind="scope",
        )
    _check_time(info, now, max_skew)
    if "host" not in info.signed_headers:
        raise SignatureError(
            "SignedHeaders must include 'host'.",
            kind="malformed",
        )
    payload_hashes = _payload_hashes(request, info)

    key = signing_key(secret_access_key, info.date, info.region, info.service)
    first: tuple[str, str] | None = None
    matched = False
    for canonical in _candidates(request, info, payload_hashes):
        to_sign = string_to_sign(info, canonical)
        if first is None:
            first = (canonical, to_sign)
        # Evaluate every candidate, so timing does not reveal which one matched.
        if hmac.compare_digest(compute_signature(key, to_sign), info.signature):
            matched = True
    if not matched:
        raise SignatureError(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
            kind="mismatch",
            canonical_request=first[0] if first else None,
            string_to_sign=first[1] if first else None,
        )


def _candidates(
    request: HttpRequest, info: SignatureInfo, payload_hashes: list[str]
) -> Iterator[str]:
    token_options = [True]
    if info.presigned and info.security_token is not None:
        token_options.append(False)
    for include_token in token_options:
        for payload_hash in payload_hashes:
            yield canonical_request(
                request, info, payload_hash, include_security_token=include_token
            )
