"""Rate limits as AWS applies them, sign-in throttling, cookie flags, the admin for staff.

Real servers: one with AWS's default rates (10 List/s, 500 Get/s, 500 retained publishes/s
per account and 1/s per topic) and Secure cookies; one with small rates, to reach the
per-account limits quickly. In process (Django's test client): the console's throttled
edit, sign-in lockouts from several addresses, cookie flags, the admin.
"""

from __future__ import annotations

import dataclasses
import http.client
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.contrib.auth.models import User
from django.test import Client

from console.views.links import edit_url
from retained import access, store
from retained.bootstrap import CREDENTIALS_FILE
from retained.conf import RATE_LIMIT_FIELDS, Limits
from tests.conftest import Credentials, create_credentials, iot_data_client
from tests.interop.test_malformed import (
    Clients,
    RawClient,
    client_id,
    publish_packet,
    unique,
)
from tests.support.server import ServerProcess

QUOTA_EXCEEDED = 0x97
AWS_RATES = {f"RETAINED_{name.upper()}": str(getattr(Limits(), name)) for name in RATE_LIMIT_FIELDS}
SMALL_RATES = {
    "RETAINED_GET_RETAINED_PER_SECOND": "3",
    "RETAINED_RETAINED_PUBLISHES_PER_SECOND": "3",
    "RETAINED_RETAINED_PUBLISHES_PER_TOPIC_PER_SECOND": "0",
}


def refill() -> None:
    """Let every bucket fill up again (the largest burst / rate here is 1 s)."""
    time.sleep(1.1)


@pytest.fixture(scope="module")
def aws_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(**AWS_RATES, RETAINED_SECURE_COOKIES="true")


@pytest.fixture(scope="module")
def aws_credentials(aws_server: ServerProcess) -> Credentials:
    return create_credentials(aws_server, "rates")


@pytest.fixture
def aws_iot(aws_server: ServerProcess, aws_credentials: Credentials) -> Any:
    return iot_data_client(aws_server, aws_credentials)  # one attempt: no retry hides a 429


@pytest.fixture(scope="module")
def small_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(**SMALL_RATES)


@pytest.fixture
def small_iot(small_server: ServerProcess) -> Any:
    return iot_data_client(small_server, create_credentials(small_server, "small-rates"))


@pytest.fixture
def clients(aws_server: ServerProcess) -> Iterator[Clients]:
    pool = Clients(aws_server)
    yield pool
    pool.close_all()


def burst(call: Callable[[], object], *, count: int = 40, threads: int = 8) -> list[object]:
    """`count` calls from `threads` threads at once: each call's result or ClientError."""

    def attempt(_: int) -> object:
        try:
            return call()
        except ClientError as error:
            return error

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(attempt, range(count)))


def throttled_errors(outcomes: list[object]) -> list[ClientError]:
    errors = [outcome for outcome in outcomes if isinstance(outcome, ClientError)]
    assert all(error.response["Error"]["Code"] == "ThrottlingException" for error in errors)
    return errors


def retry_after(error: ClientError) -> int:
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    return int(error.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"])


def puback_reason(raw: RawClient, packet_id: int) -> tuple[int, str]:
    """An MQTT 5 PUBACK's reason code and Reason String ('' when none)."""
    first, body = raw.read_packet()
    assert first == 0x40, f"expected PUBACK, got 0x{first:02X}"
    assert int.from_bytes(body[:2], "big") == packet_id
    code = body[2] if len(body) > 2 else 0
    reason = ""
    if len(body) > 4 and body[4] == 0x1F:  # short property block: one Reason String
        size = int.from_bytes(body[5:7], "big")
        reason = body[7 : 7 + size].decode()
    return code, reason


# --- data-plane API ---------------------------------------------------------------------------


def test_list_over_ten_a_second_is_throttled(aws_iot: Any) -> None:
    refill()
    started = time.monotonic()
    outcomes = burst(lambda: aws_iot.list_retained_messages(maxResults=1))
    elapsed = time.monotonic() - started
    errors = throttled_errors(outcomes)
    assert errors, "40 ListRetainedMessages at once were all allowed"
    assert len(outcomes) - len(errors) <= 10 + 10 * elapsed + 1
    assert retry_after(errors[0]) == 1
    assert "ListRetainedMessages" in errors[0].response["Error"]["Message"]
    assert isinstance(errors[0], aws_iot.exceptions.ThrottlingException)  # botocore's class
    refill()
    aws_iot.list_retained_messages(maxResults=1)  # allowed again


def test_get_at_a_small_configured_rate(small_iot: Any) -> None:
    topic = unique("rates/get")
    small_iot.publish(topic=topic, payload=b"x", retain=True)
    refill()
    started = time.monotonic()
    outcomes = burst(lambda: small_iot.get_retained_message(topic=topic), count=20)
    elapsed = time.monotonic() - started
    errors = throttled_errors(outcomes)
    assert errors
    assert 3 <= len(outcomes) - len(errors) <= 3 + 3 * elapsed + 1
    assert retry_after(errors[0]) == 1


def test_http_retained_publish_per_topic(aws_iot: Any) -> None:
    topic, other = unique("rates/http"), unique("rates/http-other")
    aws_iot.publish(topic=topic, payload=b"first", retain=True, qos=1)
    with pytest.raises(aws_iot.exceptions.ThrottlingException) as caught:
        aws_iot.publish(topic=topic, payload=b"second", retain=True, qos=1)
    assert retry_after(caught.value) == 1
    assert "to one topic" in caught.value.response["Error"]["Message"]
    assert aws_iot.get_retained_message(topic=topic)["payload"] == b"first"  # nothing stored
    aws_iot.publish(topic=other, payload=b"other", retain=True)  # another topic: fine
    aws_iot.publish(topic=topic, payload=b"not retained")  # only retained publishes count
    aws_iot.publish(topic=topic, payload=b"", retain=True)  # AWS: deletes are never throttled
    with pytest.raises(aws_iot.exceptions.ResourceNotFoundException):
        aws_iot.get_retained_message(topic=topic)
    refill()
    aws_iot.publish(topic=topic, payload=b"third", retain=True)
    assert aws_iot.get_retained_message(topic=topic)["payload"] == b"third"


# --- MQTT ------------------------------------------------------------------------------------


def test_mqtt5_qos1_retained_publish_per_topic(aws_iot: Any, clients: Clients) -> None:
    topic, other = unique("rates/mqtt"), unique("rates/mqtt-other")
    raw = clients.raw()
    raw.connect(client_id("rates5"), level=5)
    raw.send(publish_packet(topic, b"first", qos=1, retain=True, packet_id=1, v5=True))
    assert puback_reason(raw, 1) == (0, "")
    raw.send(publish_packet(topic, b"second", qos=1, retain=True, packet_id=2, v5=True))
    code, reason = puback_reason(raw, 2)
    assert code == QUOTA_EXCEEDED
    assert reason.startswith("Rate exceeded: at most 1 retained publishes per second to one")
    raw.send(publish_packet(other, b"other", qos=1, retain=True, packet_id=3, v5=True))
    assert puback_reason(raw, 3) == (0, "")
    assert aws_iot.get_retained_message(topic=topic)["payload"] == b"first"
    raw.send(publish_packet(topic, b"", qos=1, retain=True, packet_id=4, v5=True))
    assert puback_reason(raw, 4) == (0, "")  # the delete went through
    with pytest.raises(aws_iot.exceptions.ResourceNotFoundException):
        aws_iot.get_retained_message(topic=topic)


def test_mqtt5_qos0_throttled_is_dropped(clients: Clients) -> None:
    topic = unique("rates/qos0")
    watcher = clients.connected(v5=True)
    watcher.subscribe(topic, 1)
    publisher = clients.connected(v5=True)
    publisher.publish(topic, b"first", qos=0, retain=True)
    publisher.publish(topic, b"second", qos=0, retain=True)
    assert publisher.publish(unique("rates/barrier"), b"b", qos=1) == 0  # both were handled
    assert watcher.get().payload == b"first"
    watcher.assert_no_message(0.3)  # the throttled one reached nobody
    assert not publisher.disconnected.is_set()


def test_mqtt311_throttled_retained_publish_closes(aws_iot: Any, clients: Clients) -> None:
    """3.1.1 has no PUBACK reason codes: as for the count quota, the connection closes."""
    topic = unique("rates/311")
    raw = clients.raw()
    raw.connect(client_id("rates311"))
    raw.send(publish_packet(topic, b"first", qos=1, retain=True, packet_id=1))
    assert raw.read_packet() == (0x40, b"\x00\x01")
    raw.send(publish_packet(topic, b"second", qos=1, retain=True, packet_id=2))
    assert raw.read_until_closed() == b""
    assert aws_iot.get_retained_message(topic=topic)["payload"] == b"first"


def test_the_account_limit_is_shared_by_http_and_mqtt(
    small_server: ServerProcess, small_iot: Any
) -> None:
    """3/s per account: three HTTP publishes (each charged once, not again by the broker)
    use up the burst for MQTT clients too; a delete still goes through."""
    base = unique("rates/account")
    pool = Clients(small_server)
    try:
        raw = pool.raw()
        raw.connect(client_id("account"), level=5)
        refill()
        started = time.monotonic()
        for n in range(3):
            small_iot.publish(topic=f"{base}/{n}", payload=b"x", retain=True)
        allowed = 0  # MQTT publishes that went through on tokens refilled meanwhile
        for packet_id in range(1, 21):
            raw.send(
                publish_packet(
                    f"{base}/m{packet_id}", b"x", qos=1, retain=True, packet_id=packet_id, v5=True
                )
            )
            code, reason = puback_reason(raw, packet_id)
            if code:
                break
            allowed += 1
        assert code == QUOTA_EXCEEDED
        assert "in this account" in reason
        assert allowed <= 3 * (time.monotonic() - started) + 1
        raw.send(publish_packet(f"{base}/0", b"", qos=1, retain=True, packet_id=99, v5=True))
        assert puback_reason(raw, 99) == (0, "")
        outcomes = burst(
            lambda: small_iot.publish(topic=unique(base), payload=b"x", retain=True), count=12
        )
        errors = throttled_errors(outcomes)
        assert errors
        assert "in this account" in errors[0].response["Error"]["Message"]
    finally:
        pool.close_all()


# --- sign-in and cookies on a real server ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoginResponse:
    status: int
    headers: http.client.HTTPMessage
    body: str


def login(server: ServerProcess, path: str, username: str, password: str) -> LoginResponse:
    """GET the login page for its CSRF token, POST the form; the response (no redirects)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        connection.request("GET", path)
        page = connection.getresponse()
        html = page.read().decode()
        csrf = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie") or "")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert csrf, "no CSRF cookie"
        assert token, "no CSRF token in the form"
        body = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token.group(1), "username": username, "password": password}
        )
        connection.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={csrf.group(1)}",
            },
        )
        response = connection.getresponse()
        return LoginResponse(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def admin_password(server: ServerProcess) -> tuple[str, str]:
    text = (server.data_dir / CREDENTIALS_FILE).read_text()
    values = dict(line.split(": ", 1) for line in text.splitlines())
    return values["username"], values["password"]


def test_sixth_bad_password_is_refused_on_a_real_server(aws_server: ServerProcess) -> None:
    for _ in range(5):
        assert login(aws_server, "/accounts/login/", "mallory", "guess").status == 200
    refused = login(aws_server, "/accounts/login/", "mallory", "guess")
    assert refused.status == 429
    assert "Too many failed sign-in attempts" in refused.body
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    # The admin's login page shares the count.
    assert login(aws_server, "/admin/login/", "mallory", "guess").status == 429


def test_session_cookie_flags_behind_https(aws_server: ServerProcess) -> None:
    username, password = admin_password(aws_server)
    response = login(aws_server, "/accounts/login/", username, password)
    assert response.status == 302
    cookies = response.headers.get_all("Set-Cookie") or []
    session = next(cookie for cookie in cookies if cookie.startswith("sessionid="))
    assert "HttpOnly" in session
    assert "SameSite=Lax" in session
    assert "Secure" in session  # RETAINED_SECURE_COOKIES=true
    assert "Secure" in next(cookie for cookie in cookies if cookie.startswith("csrftoken="))


# --- in process: the console, sign-in lockouts, cookies, the admin --------------------------


@pytest.fixture
def aws_limits(settings: Any) -> None:
    """AWS's rates, as a test that wants them sets them (conftest turns them off)."""
    defaults = Limits()
    settings.RETAINED_LIMITS = dataclasses.replace(
        settings.RETAINED_LIMITS, **{name: getattr(defaults, name) for name in RATE_LIMIT_FIELDS}
    )


@pytest.fixture
def login_limits(settings: Any) -> None:
    settings.RETAINED_LOGIN_FAILURES_PER_USERNAME = 5
    settings.RETAINED_LOGIN_FAILURES_PER_IP = 20
    settings.RETAINED_LOGIN_LOCKOUT_SECONDS = 300
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def post_login(client: Client, username: str, password: str, path: str = "/accounts/login/") -> Any:
    return client.post(path, {"username": username, "password": password})


@pytest.mark.django_db
@pytest.mark.usefixtures("aws_limits")
def test_console_edit_throttled_shows_the_wait_and_changes_nothing() -> None:
    user = User.objects.create_superuser("editor", password="pw")
    access.reload()
    client = Client()
    client.force_login(user)
    form = {"payload": "first", "qos": "0", "content_type": "", "user_properties": ""}
    response = client.post("/create/retained/", {**form, "topic": "t/edit", "base_modified_ms": 0})
    assert response.status_code == 302
    stored = store.get_retained("t/edit", touch=False)
    assert stored is not None
    response = client.post(
        edit_url("t/edit"),
        {**form, "payload": "second", "base_modified_ms": stored.last_modified_ms},
    )
    assert response.status_code == 200
    assert "Rate exceeded: retry in 1 s" in response.content.decode()
    again = store.get_retained("t/edit", touch=False)
    assert again is not None
    assert again.payload == b"first"
    # Deleting is never throttled.
    response = client.post("/delete/retained/t/edit", {"base_modified_ms": again.last_modified_ms})
    assert response.status_code == 302
    assert store.get_retained("t/edit", touch=False) is None


@pytest.mark.django_db
@pytest.mark.usefixtures("login_limits")
def test_username_lockout() -> None:
    User.objects.create_user("alice", password="right")
    User.objects.create_user("bob", password="bobs")
    attacker = Client(REMOTE_ADDR="203.0.113.5")
    for _ in range(5):
        assert post_login(attacker, "alice", "wrong").status_code == 200
    refused = post_login(attacker, "alice", "wrong")
    assert refused.status_code == 429
    assert "Too many failed sign-in attempts" in refused.content.decode()
    assert refused["Retry-After"] == "300"
    # During the lockout even the right password is refused, from anywhere ...
    assert post_login(Client(REMOTE_ADDR="198.51.100.7"), "alice", "right").status_code == 429
    assert post_login(attacker, "ALICE", "right").status_code == 429
    # ... while another user signs in, from another address and from the attacker's.
    assert post_login(Client(REMOTE_ADDR="198.51.100.7"), "bob", "bobs").status_code == 302
    assert post_login(attacker, "bob", "bobs").status_code == 302


@pytest.mark.django_db
@pytest.mark.usefixtures("login_limits")
def test_address_lockout_and_success_does_not_reset_it() -> None:
    User.objects.create_user("carol", password="carols")
    sprayer = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(19):
        assert post_login(sprayer, f"user{n % 4}", "wrong").status_code == 200
    # A colleague behind the same address signs in: the address's count stays.
    assert post_login(Client(REMOTE_ADDR="203.0.113.9"), "carol", "carols").status_code == 302
    assert post_login(sprayer, "user9", "wrong").status_code == 200  # the 20th failure
    assert post_login(sprayer, "carol", "carols").status_code == 429
    assert post_login(sprayer, "anyone", "x", "/admin/login/").status_code == 429
    assert post_login(Client(REMOTE_ADDR="192.0.2.1"), "carol", "carols").status_code == 302


@pytest.mark.django_db
@pytest.mark.usefixtures("login_limits")
def test_success_resets_the_username_count() -> None:
    User.objects.create_user("dave", password="daves")
    client = Client(REMOTE_ADDR="192.0.2.10")
    for _ in range(4):
        post_login(client, "dave", "wrong")
    assert post_login(client, "dave", "daves").status_code == 302
    client.logout()
    for _ in range(4):
        assert post_login(client, "dave", "wrong").status_code == 200
    assert post_login(client, "dave", "daves").status_code == 302


@pytest.mark.django_db
@pytest.mark.usefixtures("login_limits")
def test_admin_login_is_throttled() -> None:
    User.objects.create_user("erin", password="erins", is_staff=True)
    client = Client(REMOTE_ADDR="192.0.2.20")
    for _ in range(5):
        assert post_login(client, "erin", "wrong", "/admin/login/").status_code == 200
    assert post_login(client, "erin", "erins", "/admin/login/").status_code == 429
    assert post_login(client, "erin", "erins").status_code == 429  # the console's too


@pytest.mark.django_db
@pytest.mark.usefixtures("login_limits")
def test_cookie_flags_and_headers_by_default() -> None:
    User.objects.create_user("frank", password="franks")
    client = Client()
    page = client.get("/accounts/login/")
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page.cookies["csrftoken"]["samesite"] == "Lax"
    response = post_login(client, "frank", "franks")
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"
    assert not session["secure"]  # plain HTTP by default (RETAINED_SECURE_COOKIES=false)
    assert 0 < int(session["max-age"]) <= 24 * 3600


@pytest.mark.django_db
@pytest.mark.usefixtures("login_limits")
def test_admin_is_for_staff_only() -> None:
    User.objects.create_user("grace", password="graces")  # not staff
    User.objects.create_user("heidi", password="heidis", is_staff=True)
    client = Client()
    client.login(username="grace", password="graces")
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    refused = post_login(Client(), "grace", "graces", "/admin/login/")
    assert refused.status_code == 200  # the form again, with an error
    assert "staff account" in refused.content.decode()
    staff = Client()
    assert post_login(staff, "heidi", "heidis", "/admin/login/").status_code == 302
    assert staff.get("/admin/").status_code == 200
