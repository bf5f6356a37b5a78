"""AWS IoT policies enforced on every path, seen by real clients against a real server.

MQTT (paho 3.1.1 / 5, raw sockets where 3.1.1 answers with a closed connection), the
data-plane API (boto3 `iot-data`) and the anonymous quick-start policy. Most tests run on a
server of this module that refuses anonymous clients (RETAINED_ALLOW_ANONYMOUS=false); each
test gives its own users exactly the policies it is about.

What each operation needs (../shared/reference/aws-facts.md, Policies): CONNECT iot:Connect
on client/<id> (iot:ConnectAttributes), PUBLISH iot:Publish (+ iot:RetainPublish with
RETAIN, 0-byte deletes too), SUBSCRIBE iot:Subscribe on topicfilter/<filter>, every
delivery (live and retained) iot:Receive on topic/<t>; the API iot:GetRetainedMessage,
iot:ListRetainedMessages on "*", iot:Publish (+ iot:RetainPublish).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Credentials, ensure_policy, iot_data_client
from tests.interop.clients import mosquitto_pub, mosquitto_sub
from tests.interop.test_malformed import (
    QUIET,
    WAIT,
    Clients,
    Paho,
    client_id,
    publish_packet,
    unique,
)
from tests.support.server import ServerProcess

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:"

NOT_AUTHORIZED = 0x87  # MQTT 5 CONNACK / PUBACK / SUBACK reason code
RC_NOT_AUTHORIZED_311 = 5  # MQTT 3.1.1 CONNACK return code
SUBACK_FAILURE_311 = 0x80
# The broker re-reads policies every second (retained/broker/broker.py POLICY_REFRESH_SECONDS).
POLICY_REFRESH_WAIT = 1.5


# ---------------------------------------------------------------------------- policy text


def statement(
    effect: str, action: str | list[str], resource: str | list[str], **extra: Any
) -> dict[str, Any]:
    """One statement; short resources ("topic/a") get this server's ARN prefix."""

    def full(value: str) -> str:
        return value if value == "*" or value.startswith("arn:") else ARN + value

    resources = full(resource) if isinstance(resource, str) else [full(r) for r in resource]
    return {"Effect": effect, "Action": action, "Resource": resources, **extra}


def allow(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return statement("Allow", action, resource, **extra)


def deny(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return statement("Deny", action, resource, **extra)


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


ALLOW_ALL = document(allow("iot:*", "*"))
CONNECT_ANY = allow("iot:Connect", "client/*")


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------- provisioning

_PROVISION = """
import json
from django.contrib.auth.models import User
from retained.access_keys import create_access_key
from retained.models import Policy
from retained.policies import attach_policy, create_policy
spec = json.loads({spec!r})
user = User.objects.filter(username=spec["user"]).first()
if user is None:
    if spec["superuser"]:
        user = User.objects.create_superuser(spec["user"], "", None)
    else:
        user = User.objects.create_user(spec["user"])
for policy_name, text in spec["policies"].items():
    policy = Policy.objects.filter(name=policy_name).first() or create_policy(policy_name, text)
    attach_policy(policy, user=user)
key = create_access_key(user=user)
print(key.access_key_id, key.secret_access_key)
"""


def provision(
    server: ServerProcess,
    username: str,
    policies: dict[str, str] | None = None,
    *,
    superuser: bool = False,
) -> Credentials:
    """A user (created), an access key, and `policies` (name -> document, created if new)
    attached to the user: what create_credentials + ensure_policy + attach_policy do, in
    one `manage.py shell` instead of several processes."""
    spec = json.dumps({"user": username, "policies": policies or {}, "superuser": superuser})
    result = server.manage("shell", "--no-imports", "-c", _PROVISION.format(spec=spec))
    key_id, secret = result.stdout.strip().splitlines()[-1].split()
    return Credentials(key_id, secret)


def attach_new_policy(server: ServerProcess, username: str, policy: str, text: str) -> None:
    """Create a policy and attach it with the management commands (another process)."""
    ensure_policy(server, policy, text)
    server.manage("attach_policy", policy, "--user", username)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def strict(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A server that refuses anonymous MQTT clients: every client here has a user."""
    return start_server(RETAINED_ALLOW_ANONYMOUS="false")


@pytest.fixture(scope="module")
def admin(strict: ServerProcess) -> Credentials:
    """A user allowed everything: the publisher / observer of the tests."""
    return provision(strict, "policies-admin", {"policies-allow-all": ALLOW_ALL})


@pytest.fixture
def clients(strict: ServerProcess) -> Iterator[Clients]:
    pool = Clients(strict)
    yield pool
    pool.close_all()


def paho_as(
    clients: Clients, credentials: Credentials, cid: str | None = None, **kwargs: Any
) -> Paho:
    return clients.paho(
        cid,
        username=credentials.access_key_id,
        password=credentials.secret_access_key,
        **kwargs,
    )


def connected_as(
    clients: Clients, credentials: Credentials, cid: str | None = None, **kwargs: Any
) -> Paho:
    client = paho_as(clients, credentials, cid, **kwargs)
    client.connect()
    return client


def raw_connect_311(
    clients: Clients, credentials: Credentials | None, cid: str, **kwargs: Any
) -> tuple[Any, int]:
    raw = clients.raw()
    auth = (
        {}
        if credentials is None
        else {"username": credentials.access_key_id, "password": credentials.secret_access_key}
    )
    _, code, _ = raw.connect(cid, level=4, **auth, **kwargs)
    return raw, code


def stored(server: ServerProcess, credentials: Credentials, topic: str) -> bytes | None:
    """The retained payload of `topic` read through the API, None when nothing is stored."""
    try:
        response = iot_data_client(server, credentials).get_retained_message(topic=topic)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    payload: bytes = response["payload"]
    return payload


def unauthorized(call: Callable[[], Any]) -> str:
    """Run an API call that must be refused with UnauthorizedException; its message."""
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert error["Code"] == "UnauthorizedException", error
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    message: str = error["Message"]
    return message


# ---------------------------------------------------------------------------- CONNECT


def test_anonymous_connect_refused_when_anonymous_is_off(clients: Clients) -> None:
    result = clients.paho(client_id("anon"), v5=True).connect(expect=None)
    assert result.reason_code == NOT_AUTHORIZED
    raw, code = raw_connect_311(clients, None, client_id("anon"))
    assert code == RC_NOT_AUTHORIZED_311
    assert raw.read_until_closed() == b""


def test_connect_needs_iot_connect_on_the_client_id(
    strict: ServerProcess, clients: Clients
) -> None:
    creds = provision(
        strict,
        name("conn-user"),
        {name("conn"): document(allow("iot:Connect", "client/device-*"))},
    )
    allowed = f"device-{uuid.uuid4().hex[:8]}"
    refused = f"other-{uuid.uuid4().hex[:8]}"
    assert paho_as(clients, creds, allowed, v5=True).connect().reason_code == 0
    assert paho_as(clients, creds, allowed + "-311").connect().reason_code == 0
    result = paho_as(clients, creds, refused, v5=True).connect(expect=None)
    assert result.reason_code == NOT_AUTHORIZED
    raw, code = raw_connect_311(clients, creds, refused)
    assert code == RC_NOT_AUTHORIZED_311
    assert raw.read_until_closed() == b""
    # "device-*" is a glob on the whole client id, not a prefix of a longer ARN segment
    result = paho_as(clients, creds, "x-device-1", v5=True).connect(expect=None)
    assert result.reason_code == NOT_AUTHORIZED


def test_user_without_any_policy_cannot_connect(strict: ServerProcess, clients: Clients) -> None:
    creds = provision(strict, name("nopolicy"))
    result = paho_as(clients, creds, client_id("nopolicy"), v5=True).connect(expect=None)
    assert result.reason_code == NOT_AUTHORIZED
    raw, code = raw_connect_311(clients, creds, client_id("nopolicy"))
    assert code == RC_NOT_AUTHORIZED_311
    assert raw.read_until_closed() == b""


def test_connect_with_policy_variables(strict: ServerProcess, clients: Clients) -> None:
    """client/${aws:username}-* for the connection, topic/devices/${iot:ClientId}/* for
    what it may publish."""
    username = name("var-user")
    creds = provision(
        strict,
        username,
        {
            name("vars"): document(
                allow("iot:Connect", "client/${aws:username}-*"),
                allow("iot:Publish", "topic/devices/${iot:ClientId}/*"),
            )
        },
    )
    own = f"{username}-1"
    device = connected_as(clients, creds, own, v5=True)
    assert device.publish(f"devices/{own}/temp", b"21", qos=1) == 0
    assert device.publish(f"devices/{username}-2/temp", b"21", qos=1) == NOT_AUTHORIZED
    assert device.publish("devices/other/temp", b"21", qos=1) == NOT_AUTHORIZED
    result = paho_as(clients, creds, "someone-else-1", v5=True).connect(expect=None)
    assert result.reason_code == NOT_AUTHORIZED


@pytest.fixture
def will_device(strict: ServerProcess) -> tuple[Credentials, str, str]:
    """AWS's example 2 (retained will) for a client id and will topic of this test."""
    cid = client_id("device1")
    will_topic = unique("will")
    creds = provision(
        strict,
        name("will-user"),
        {
            name("aws-example-2"): document(
                allow(
                    "iot:Connect",
                    f"client/{cid}",
                    Condition={
                        "ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}
                    },
                ),
                allow(["iot:Publish", "iot:RetainPublish"], f"topic/{will_topic}"),
            )
        },
    )
    return creds, cid, will_topic


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "311"])
def test_aws_example_2_will_allowed_persistent_connect_denied(
    v5: bool,
    will_device: tuple[Credentials, str, str],
    strict: ServerProcess,
    admin: Credentials,
    clients: Clients,
) -> None:
    creds, cid, will_topic = will_device
    # No attribute at all: ForAllValues holds vacuously.
    plain = connected_as(clients, creds, cid, v5=v5)
    plain.disconnect()
    # PersistentConnect is not in ["LastWill"]: refused (with and without a will).
    if v5:
        persistent = paho_as(clients, creds, cid, v5=True, clean=False, session_expiry=300)
        assert persistent.connect(expect=None).reason_code == NOT_AUTHORIZED
    else:
        raw, code = raw_connect_311(clients, creds, cid, clean=False)
        assert code == RC_NOT_AUTHORIZED_311
        assert raw.read_until_closed() == b""
    # MQTT 5: the session outlives the connection because of its Session Expiry Interval.
    persistence: dict[str, Any] = {"session_expiry": 300} if v5 else {}
    persistent_will = paho_as(
        clients, creds, cid, v5=v5, clean=False, will=(will_topic, b"bye", 1, True), **persistence
    )
    assert persistent_will.connect(expect=None).reason_code == NOT_AUTHORIZED  # paho maps 5
    # LastWill alone: allowed, and the retained will fires when the connection drops.
    with_will = paho_as(clients, creds, cid, v5=v5, will=(will_topic, b"gone", 1, True))
    assert with_will.connect().reason_code == 0
    with_will.kill()
    deadline = time.monotonic() + WAIT
    while stored(strict, admin, will_topic) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored(strict, admin, will_topic) == b"gone"


def test_will_without_retain_publish_is_not_stored(
    strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    """The will is a publish like any other: checked (iot:Publish + iot:RetainPublish) when
    it fires. Without iot:RetainPublish the retained will is dropped."""
    will_topic = unique("will-noretain")
    creds = provision(
        strict,
        name("will-noretain"),
        {name("will-pub-only"): document(CONNECT_ANY, allow("iot:Publish", f"topic/{will_topic}"))},
    )
    device = paho_as(clients, creds, v5=True, will=(will_topic, b"gone", 1, True))
    device.connect()
    device.kill()
    time.sleep(QUIET)
    assert stored(strict, admin, will_topic) is None


# ---------------------------------------------------------------------------- PUBLISH


def test_publish_denied_v5_is_puback_0x87_and_the_connection_stays(
    strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    base = unique("pubdeny")
    creds = provision(
        strict,
        name("pub-v5"),
        {name("pub-ok"): document(CONNECT_ANY, allow("iot:Publish", f"topic/{base}/ok/*"))},
    )
    watcher = connected_as(clients, admin, v5=True)
    assert watcher.subscribe(f"{base}/#", 1) == [1]
    publisher = connected_as(clients, creds, v5=True)
    assert publisher.publish(f"{base}/no", b"refused", qos=1) == NOT_AUTHORIZED
    publisher.publish(f"{base}/no", b"refused-qos0", qos=0)  # QoS 0: dropped, no answer
    assert publisher.publish(f"{base}/ok/1", b"accepted", qos=1) == 0
    message = watcher.get()
    assert (message.topic, message.payload) == (f"{base}/ok/1", b"accepted")
    watcher.assert_no_message()
    assert not publisher.disconnected.is_set()


@pytest.mark.parametrize("qos", [0, 1])
def test_publish_denied_311_closes_the_connection(
    qos: int, strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    base = unique("pubdeny311")
    creds = provision(
        strict,
        name("pub-311"),
        {name("pub-ok"): document(CONNECT_ANY, allow("iot:Publish", f"topic/{base}/ok/*"))},
    )
    watcher = connected_as(clients, admin, v5=True)
    assert watcher.subscribe(f"{base}/#", 1) == [1]
    raw, code = raw_connect_311(clients, creds, client_id("pub311"))
    assert code == 0
    raw.send(publish_packet(f"{base}/ok/1", b"accepted", qos=qos, packet_id=1))
    if qos:
        assert raw.read_packet() == (0x40, b"\x00\x01")
    else:
        raw.ping()
    raw.send(publish_packet(f"{base}/no", b"refused", qos=qos, packet_id=2))
    assert raw.read_until_closed() == b""  # 3.1.1 has no way to say why: no PUBACK, closed
    assert watcher.get().payload == b"accepted"
    watcher.assert_no_message()


@pytest.mark.parametrize("payload", [b"config", b""], ids=["set", "empty-delete"])
def test_retained_publish_without_retain_publish_v5(
    payload: bytes, strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    """iot:Publish alone: a RETAIN publish (a 0-byte delete too) is refused with 0x87 and
    stores (or deletes) nothing; the same publish without RETAIN goes through."""
    base = unique("noretain")
    topic = f"{base}/config"
    original = b"original" if not payload else None
    if original is not None:  # something for the empty publish to (fail to) delete
        owner = connected_as(clients, admin, v5=True)
        assert owner.publish(topic, original, qos=1, retain=True) == 0
    creds = provision(
        strict,
        name("noretain"),
        {name("pub-only"): document(CONNECT_ANY, allow("iot:Publish", f"topic/{base}/*"))},
    )
    watcher = connected_as(clients, admin, v5=True)
    assert watcher.subscribe(f"{base}/#", 1) == [1]
    device = connected_as(clients, creds, v5=True)
    assert device.publish(topic, payload, qos=1, retain=True) == NOT_AUTHORIZED
    device.publish(topic, payload, qos=0, retain=True)
    assert device.publish(f"{base}/barrier", b"", qos=1) == 0
    assert stored(strict, admin, topic) == original
    assert watcher.get().topic == f"{base}/barrier"  # the refused ones were not routed
    watcher.assert_no_message()
    assert device.publish(topic, b"live only", qos=1, retain=False) == 0
    assert watcher.get().payload == b"live only"
    assert stored(strict, admin, topic) == original


@pytest.mark.parametrize("payload", [b"config", b""], ids=["set", "empty-delete"])
def test_retained_publish_without_retain_publish_311_closes(
    payload: bytes, strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    base = unique("noretain311")
    topic = f"{base}/config"
    original = b"original" if not payload else None
    if original is not None:
        owner = connected_as(clients, admin, v5=True)
        assert owner.publish(topic, original, qos=1, retain=True) == 0
    creds = provision(
        strict,
        name("noretain311"),
        {name("pub-only"): document(CONNECT_ANY, allow("iot:Publish", f"topic/{base}/*"))},
    )
    raw, code = raw_connect_311(clients, creds, client_id("noretain311"))
    assert code == 0
    raw.send(publish_packet(topic, payload, qos=1, retain=True))
    assert raw.read_until_closed() == b""
    assert stored(strict, admin, topic) == original


def test_aws_example_1_retained_publish_with_both_actions(
    strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    cid = client_id("device1")
    topic = f"{unique('device')}/sample/configuration"
    creds = provision(
        strict,
        name("aws-1"),
        {
            name("aws-example-1"): document(
                allow("iot:Connect", f"client/{cid}"),
                allow(["iot:Publish", "iot:RetainPublish"], f"topic/{topic}"),
            )
        },
    )
    device = connected_as(clients, creds, cid, v5=True)
    assert device.publish(topic, b'{"v":1}', qos=1, retain=True) == 0
    assert stored(strict, admin, topic) == b'{"v":1}'
    assert device.publish(topic + "/other", b"x", qos=1, retain=True) == NOT_AUTHORIZED
    assert device.publish(topic, b"", qos=1, retain=True) == 0  # the delete is allowed too
    assert stored(strict, admin, topic) is None
    refused = paho_as(clients, creds, client_id("device2"), v5=True).connect(expect=None)
    assert refused.reason_code == NOT_AUTHORIZED


# ---------------------------------------------------------------------------- SUBSCRIBE


@pytest.mark.parametrize(("v5", "failure"), [(True, NOT_AUTHORIZED), (False, SUBACK_FAILURE_311)])
def test_subscribe_denied(
    v5: bool, failure: int, strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    base = unique("subdeny")
    creds = provision(
        strict,
        name("sub"),
        {
            name("sub-ok"): document(
                CONNECT_ANY,
                allow("iot:Subscribe", f"topicfilter/{base}/ok/*"),
                allow("iot:Receive", f"topic/{base}/*"),
            )
        },
    )
    subscriber = connected_as(clients, creds, v5=v5)
    assert subscriber.subscribe(f"{base}/no", 1) == [failure]
    assert subscriber.subscribe(f"{base}/#", 1) == [failure]
    assert subscriber.subscribe([(f"{base}/ok/1", 1), (f"{base}/no", 1)]) == [1, failure]
    publisher = connected_as(clients, admin, v5=True)
    assert publisher.publish(f"{base}/no", b"not subscribed", qos=1) == 0
    assert publisher.publish(f"{base}/ok/1", b"subscribed", qos=1) == 0
    message = subscriber.get()
    assert (message.topic, message.payload) == (f"{base}/ok/1", b"subscribed")
    subscriber.assert_no_message()
    assert not subscriber.disconnected.is_set()


def test_documented_pitfall_end_to_end(
    strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    """Allow topicfilter/a/* + Deny topicfilter/a/restricted/* does not keep `a/#` from
    receiving a/restricted/x; a Deny on iot:Receive does (once the broker has it)."""
    base = unique("pitfall")
    username = name("pitfall")
    creds = provision(
        strict,
        username,
        {
            name("pitfall-subscribe"): document(
                CONNECT_ANY,
                allow("iot:Subscribe", f"topicfilter/{base}/*"),
                deny("iot:Subscribe", f"topicfilter/{base}/restricted/*"),
                allow("iot:Receive", "topic/*"),
            )
        },
    )
    subscriber = connected_as(clients, creds, v5=True)
    assert subscriber.subscribe(f"{base}/restricted/#", 1) == [NOT_AUTHORIZED]
    assert subscriber.subscribe(f"{base}/restricted/x", 1) == [NOT_AUTHORIZED]
    assert subscriber.subscribe(f"{base}/#", 1) == [1]  # the pitfall: this one is allowed
    publisher = connected_as(clients, admin, v5=True)
    assert publisher.publish(f"{base}/restricted/x", b"leaked", qos=1) == 0
    assert publisher.publish(f"{base}/public/x", b"public", qos=1) == 0
    received = subscriber.get_all(2)
    assert sorted((m.topic, m.payload) for m in received) == [
        (f"{base}/public/x", b"public"),
        (f"{base}/restricted/x", b"leaked"),
    ]

    attach_new_policy(
        strict,
        username,
        name("pitfall-receive"),
        document(deny("iot:Receive", f"topic/{base}/restricted/*")),
    )
    time.sleep(POLICY_REFRESH_WAIT)  # the broker re-reads policies every second
    assert publisher.publish(f"{base}/restricted/x", b"protected", qos=1) == 0
    assert publisher.publish(f"{base}/public/x", b"still public", qos=1) == 0
    message = subscriber.get()
    assert (message.topic, message.payload) == (f"{base}/public/x", b"still public")
    subscriber.assert_no_message()
    # A new connection of the same user is held to the same Deny.
    fresh = connected_as(clients, creds, v5=False)
    assert fresh.subscribe(f"{base}/#", 1) == [1]
    assert publisher.publish(f"{base}/restricted/y", b"protected", qos=1) == 0
    assert publisher.publish(f"{base}/public/y", b"public", qos=1) == 0
    assert fresh.get().topic == f"{base}/public/y"
    fresh.assert_no_message()


def test_retained_delivery_on_subscribe_respects_receive(
    strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    base = unique("retrecv")
    owner = connected_as(clients, admin, v5=True)
    assert owner.publish(f"{base}/secret/r", b"secret", qos=1, retain=True) == 0
    assert owner.publish(f"{base}/open/r", b"open", qos=1, retain=True) == 0
    creds = provision(
        strict,
        name("retrecv"),
        {
            name("retrecv"): document(
                CONNECT_ANY,
                allow("iot:Subscribe", "topicfilter/*"),
                allow("iot:Receive", "topic/*"),
                deny("iot:Receive", f"topic/{base}/secret/*"),
            )
        },
    )
    current = b"open"
    for v5 in (True, False):
        subscriber = connected_as(clients, creds, v5=v5)
        # AWS mode: retained messages go to exact-match subscriptions only.
        assert subscriber.subscribe(f"{base}/secret/r", 1) == [1]
        assert subscriber.subscribe(f"{base}/open/r", 1) == [1]
        message = subscriber.get()
        assert (message.topic, message.payload, message.retain) == (f"{base}/open/r", current, 1)
        subscriber.assert_no_message()
        # and the live copies of a later update the same
        current = b"open-" + str(v5).encode()
        assert owner.publish(f"{base}/secret/r", b"secret-again", qos=1, retain=True) == 0
        assert owner.publish(f"{base}/open/r", current, qos=1, retain=True) == 0
        assert subscriber.get().payload == current
        subscriber.assert_no_message()
        subscriber.disconnect()


def test_mqtt_wildcards_are_literal_in_topicfilter_resources(
    strict: ServerProcess, clients: Clients
) -> None:
    """`+` and `#` in a policy resource are plain characters: topicfilter/<b>/+/temp allows
    exactly the filter "<b>/+/temp", not the topics it would match."""
    base = unique("literal")
    creds = provision(
        strict,
        name("literal"),
        {
            name("literal"): document(
                CONNECT_ANY, allow("iot:Subscribe", [f"topicfilter/{base}/+/temp", "topicfilter/#"])
            )
        },
    )
    subscriber = connected_as(clients, creds, v5=True)
    assert subscriber.subscribe(f"{base}/+/temp", 1) == [1]
    assert subscriber.subscribe("#", 0) == [0]
    assert subscriber.subscribe(f"{base}/room1/temp", 1) == [NOT_AUTHORIZED]
    assert subscriber.subscribe(f"{base}/#", 1) == [NOT_AUTHORIZED]
    assert subscriber.subscribe(f"{base}/+/+", 1) == [NOT_AUTHORIZED]


def test_spec_mode_wildcard_retained_delivery_respects_receive(
    spec_server: ServerProcess,
) -> None:
    """In MQTT-spec mode every matching filter gets retained messages on subscribe; each
    one is still checked against iot:Receive."""
    base = unique("specrecv")
    admin = provision(spec_server, name("spec-admin"), {"policies-allow-all": ALLOW_ALL})
    creds = provision(
        spec_server,
        name("spec-recv"),
        {
            name("spec-recv"): document(
                CONNECT_ANY,
                allow("iot:Subscribe", f"topicfilter/{base}/*"),
                allow("iot:Receive", f"topic/{base}/*"),
                deny("iot:Receive", f"topic/{base}/secret/*"),
            )
        },
    )
    pool = Clients(spec_server)
    try:
        owner = connected_as(pool, admin, v5=True)
        for topic in ("secret/1", "open/1", "secret/2", "open/2"):
            assert owner.publish(f"{base}/{topic}", topic.encode(), qos=1, retain=True) == 0
        subscriber = connected_as(pool, creds, v5=True)
        assert subscriber.subscribe(f"{base}/#", 1) == [1]
        received = subscriber.get_all(2)
        assert sorted(m.topic for m in received) == [f"{base}/open/1", f"{base}/open/2"]
        assert all(m.retain for m in received)
        subscriber.assert_no_message()
    finally:
        pool.close_all()


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "311"])
def test_receive_is_checked_for_messages_queued_while_offline(
    v5: bool, strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    base = unique("offline")
    creds = provision(
        strict,
        name("offline"),
        {
            name("offline"): document(
                CONNECT_ANY,
                allow("iot:Subscribe", f"topicfilter/{base}/*"),
                allow("iot:Receive", f"topic/{base}/open/*"),
            )
        },
    )
    cid = client_id("offline")
    options: dict[str, Any] = {"v5": v5, "clean": False}
    if v5:
        options["session_expiry"] = 300
    subscriber = connected_as(clients, creds, cid, **options)
    assert subscriber.subscribe(f"{base}/#", 1) == [1]
    publisher = connected_as(clients, admin, v5=True)
    # Online: the Receive check holds.
    assert publisher.publish(f"{base}/secret/1", b"secret-online", qos=1) == 0
    assert publisher.publish(f"{base}/open/1", b"open-online", qos=1) == 0
    assert subscriber.get().payload == b"open-online"
    subscriber.assert_no_message()
    subscriber.disconnect()
    # Offline: queued for the persistent session.
    assert publisher.publish(f"{base}/secret/2", b"secret-offline", qos=1) == 0
    assert publisher.publish(f"{base}/open/2", b"open-offline", qos=1) == 0
    again = paho_as(clients, creds, cid, **options)
    assert again.connect().session_present is True
    assert again.get().payload == b"open-offline"
    again.assert_no_message()


def test_revoking_publish_applies_to_an_open_connection(
    strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    base = unique("revoke")
    username = name("revoke")
    policy = name("revoke-pub")
    creds = provision(
        strict, username, {policy: document(CONNECT_ANY, allow("iot:Publish", f"topic/{base}/*"))}
    )
    device = connected_as(clients, creds, v5=True)
    assert device.publish(f"{base}/1", b"before", qos=1) == 0
    strict.manage("detach_policy", policy, "--user", username)
    time.sleep(POLICY_REFRESH_WAIT)
    assert device.publish(f"{base}/2", b"after", qos=1) == NOT_AUTHORIZED
    # and a new connection is refused outright (no iot:Connect left)
    result = paho_as(clients, creds, v5=True).connect(expect=None)
    assert result.reason_code == NOT_AUTHORIZED


def test_revoking_publish_and_receive_applies_to_repeated_qos0_messages(
    strict: ServerProcess, admin: Credentials, clients: Clients
) -> None:
    # Repeated QoS 0 messages to one topic take a cached route (PlainRoute): a policy
    # change must reach them as it reaches everything else.
    topic = unique("plain-revoke")
    reader_name, writer_name = name("reader"), name("writer")
    receive, publish = name("receive"), name("publish")
    reader_creds = provision(
        strict,
        reader_name,
        {
            name("sub"): document(CONNECT_ANY, allow("iot:Subscribe", f"topicfilter/{topic}")),
            receive: document(allow("iot:Receive", f"topic/{topic}")),
        },
    )
    writer_creds = provision(
        strict,
        writer_name,
        {
            name("connect"): document(CONNECT_ANY),
            publish: document(allow("iot:Publish", f"topic/{topic}")),
        },
    )
    reader = connected_as(clients, reader_creds, v5=True)
    assert reader.subscribe(topic, qos=0) == [0]
    observer = connected_as(clients, admin, v5=True)
    assert observer.subscribe(topic, qos=0) == [0]
    writer = connected_as(clients, writer_creds, v5=True)
    admin_writer = connected_as(clients, admin, v5=False)
    for payload in (b"1", b"2", b"3"):
        writer.publish(topic, payload, qos=0)
        admin_writer.publish(topic, b"admin-" + payload, qos=0)
    assert len(reader.get_all(6)) == 6
    assert len(observer.get_all(6)) == 6

    strict.manage("detach_policy", receive, "--user", reader_name)
    strict.manage("detach_policy", publish, "--user", writer_name)
    time.sleep(POLICY_REFRESH_WAIT)
    for payload in (b"4", b"5"):
        writer.publish(topic, payload, qos=0)  # MQTT 5 QoS 0: dropped, nothing to say
        admin_writer.publish(topic, b"admin-" + payload, qos=0)
    assert [bytes(m.payload) for m in observer.get_all(2)] == [b"admin-4", b"admin-5"]
    observer.assert_no_message()
    reader.assert_no_message(0.1)


@pytest.mark.parametrize("revoke", ["key", "user"])
def test_deactivating_the_key_or_its_user_closes_open_connections(
    strict: ServerProcess, clients: Clients, revoke: str
) -> None:
    """An access key's MQTT connections end when the key (`manage.py update_access_key
    --status Inactive`, the shape of `aws iam update-access-key`) or its user is
    deactivated, as a certificate's do: MQTT 5 DISCONNECT 0x87, 3.1.1 closed."""
    username = name("holder")
    creds = provision(strict, username, {name("all"): ALLOW_ALL})
    v5 = connected_as(clients, creds, v5=True)
    v311 = connected_as(clients, creds, v5=False)
    assert v5.publish(unique("before"), b"x", qos=1) == 0
    started = time.monotonic()
    if revoke == "key":
        result = strict.manage("update_access_key", creds.access_key_id, "--status", "Inactive")
        assert "Inactive" in result.stdout
    else:
        strict.manage(
            "shell",
            "--no-imports",
            "-c",
            "from django.contrib.auth.models import User; "
            f"user = User.objects.get(username={username!r}); "
            "user.is_active = False; user.save()",
        )
    assert v5.wait_disconnected(POLICY_REFRESH_WAIT + 2) == NOT_AUTHORIZED
    v311.wait_disconnected(POLICY_REFRESH_WAIT + 2)
    assert time.monotonic() - started < POLICY_REFRESH_WAIT + 2
    refused = paho_as(clients, creds, v5=True).connect(expect=None)
    assert refused.reason_code != 0  # refused from now on
    if revoke == "key":  # and back: the key works again
        strict.manage("update_access_key", creds.access_key_id, "--status", "Active")
        again = connected_as(clients, creds, v5=True)
        assert again.publish(unique("after"), b"x", qos=1) == 0


def test_update_access_key_refuses_an_unknown_key(strict: ServerProcess) -> None:
    result = strict.manage(
        "update_access_key", "AKIANOSUCHKEY", "--status", "Inactive", check=False
    )
    assert result.returncode != 0
    assert "no access key" in result.stderr


# ---------------------------------------------------------------------------- the API


def test_api_get_needs_get_retained_message(strict: ServerProcess, admin: Credentials) -> None:
    base = unique("apiget")
    iot_data_client(strict, admin).publish(topic=f"{base}/a", payload=b"A", retain=True, qos=1)
    iot_data_client(strict, admin).publish(topic=f"{base}/b", payload=b"B", retain=True, qos=1)
    list_only = provision(
        strict, name("api-list"), {name("list"): document(allow("iot:ListRetainedMessages", "*"))}
    )
    message = unauthorized(
        lambda: iot_data_client(strict, list_only).get_retained_message(topic=f"{base}/a")
    )
    assert "iot:GetRetainedMessage" in message
    assert f"topic/{base}/a" in message
    # AWS example 3: list on "*", get on one topic
    example = provision(
        strict,
        name("api-example-3"),
        {
            name("aws-example-3"): document(
                allow("iot:ListRetainedMessages", "*"),
                allow("iot:GetRetainedMessage", f"topic/{base}/a"),
            )
        },
    )
    iot = iot_data_client(strict, example)
    assert iot.get_retained_message(topic=f"{base}/a")["payload"] == b"A"
    assert "iot:GetRetainedMessage" in unauthorized(
        lambda: iot.get_retained_message(topic=f"{base}/b")
    )
    topics = [t["topic"] for t in iot.list_retained_messages(maxResults=200)["retainedTopics"]]
    assert topics  # listing is allowed (it names topics, not payloads)


def test_api_get_of_a_missing_topic_is_refused_before_not_found(
    strict: ServerProcess,
) -> None:
    """Without permission the caller learns nothing: Unauthorized, not ResourceNotFound."""
    creds = provision(strict, name("api-none"))
    message = unauthorized(
        lambda: iot_data_client(strict, creds).get_retained_message(topic=unique("missing"))
    )
    assert "iot:GetRetainedMessage" in message


def test_api_list_needs_list_retained_messages_on_star(strict: ServerProcess) -> None:
    wrong_resource = provision(
        strict,
        name("api-list-topic"),
        {name("list-topic"): document(allow("iot:ListRetainedMessages", "topic/*"))},
    )
    message = unauthorized(lambda: iot_data_client(strict, wrong_resource).list_retained_messages())
    assert "iot:ListRetainedMessages" in message
    get_only = provision(
        strict,
        name("api-get-only"),
        {name("get-only"): document(allow("iot:GetRetainedMessage", "*"))},
    )
    assert "iot:ListRetainedMessages" in unauthorized(
        lambda: iot_data_client(strict, get_only).list_retained_messages()
    )
    right = provision(
        strict,
        name("api-list-star"),
        {name("list-star"): document(allow("iot:ListRetainedMessages", "*"))},
    )
    response = iot_data_client(strict, right).list_retained_messages()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_api_publish_needs_publish_and_retain_publish(
    strict: ServerProcess, admin: Credentials
) -> None:
    base = unique("apipub")
    nothing = provision(strict, name("api-nopub"))
    assert "iot:Publish" in unauthorized(
        lambda: iot_data_client(strict, nothing).publish(topic=f"{base}/t", payload=b"x")
    )
    publish_only = provision(
        strict,
        name("api-pub"),
        {name("api-pub"): document(allow("iot:Publish", f"topic/{base}/*"))},
    )
    iot = iot_data_client(strict, publish_only)
    iot.publish(topic=f"{base}/t", payload=b"live", qos=1)  # no retain: allowed
    message = unauthorized(
        lambda: iot.publish(topic=f"{base}/t", payload=b"kept", qos=1, retain=True)
    )
    assert "iot:RetainPublish" in message
    assert stored(strict, admin, f"{base}/t") is None
    # the empty retained publish (a delete) needs iot:RetainPublish too
    iot_data_client(strict, admin).publish(topic=f"{base}/t", payload=b"orig", retain=True)
    assert "iot:RetainPublish" in unauthorized(
        lambda: iot.publish(topic=f"{base}/t", payload=b"", retain=True)
    )
    assert stored(strict, admin, f"{base}/t") == b"orig"
    assert "iot:Publish" in unauthorized(
        lambda: iot.publish(topic=unique("elsewhere"), payload=b"x")
    )
    both = provision(
        strict,
        name("api-both"),
        {
            name("api-both"): document(
                allow(["iot:Publish", "iot:RetainPublish"], f"topic/{base}/*")
            )
        },
    )
    iot_data_client(strict, both).publish(topic=f"{base}/t", payload=b"", retain=True)
    assert stored(strict, admin, f"{base}/t") is None


def test_superuser_key_may_do_everything_without_a_policy(
    strict: ServerProcess, clients: Clients
) -> None:
    root = provision(strict, name("root"), superuser=True)
    base = unique("root")
    iot = iot_data_client(strict, root)
    iot.publish(topic=f"{base}/t", payload=b"by root", retain=True, qos=1)
    assert iot.get_retained_message(topic=f"{base}/t")["payload"] == b"by root"
    assert iot.list_retained_messages(maxResults=10)["retainedTopics"]
    assert connected_as(clients, root, v5=True).subscribe("#", 1) == [1]
    subscriber = connected_as(clients, root, v5=True)
    assert subscriber.subscribe(f"{base}/t", 1) == [1]
    assert subscriber.get().payload == b"by root"  # retained, exact match
    publisher = connected_as(clients, root, v5=False)
    assert publisher.publish(f"{base}/u", b"x", qos=1, retain=True) == 0
    assert iot.get_retained_message(topic=f"{base}/u")["payload"] == b"x"


def test_api_detach_takes_effect_within_a_second(strict: ServerProcess, admin: Credentials) -> None:
    base = unique("detach")
    iot_data_client(strict, admin).publish(topic=f"{base}/t", payload=b"v", retain=True)
    username = name("detach")
    policy = name("detach-get")
    creds = provision(
        strict, username, {policy: document(allow("iot:GetRetainedMessage", f"topic/{base}/*"))}
    )
    iot = iot_data_client(strict, creds)

    def outcome() -> str:
        try:
            iot.get_retained_message(topic=f"{base}/t")
        except ClientError as error:
            code: str = error.response["Error"]["Code"]
            return code
        return "OK"

    def seconds_until(wanted: str) -> float:
        started = time.monotonic()
        while (got := outcome()) != wanted:
            assert got in ("OK", "UnauthorizedException"), got
            assert time.monotonic() - started < 1.0, f"still {got} 1 s after the change"
            time.sleep(0.05)
        return time.monotonic() - started

    assert outcome() == "OK"
    strict.manage("detach_policy", policy, "--user", username)
    seconds_until("UnauthorizedException")
    # and attaching it again restores access just as quickly
    strict.manage("attach_policy", policy, "--user", username)
    seconds_until("OK")


# ---------------------------------------------------------------------------- anonymous-local


def _anonymous_connect_codes(clients: Clients, port: int) -> tuple[int, int]:
    """(MQTT 5 CONNACK reason, MQTT 3.1.1 return code) of anonymous CONNECTs."""
    v5 = clients.paho(client_id("anon"), port=port, v5=True).connect(expect=None).reason_code
    raw = clients.raw(port)
    _, code, _ = raw.connect(client_id("anon"), level=4)
    if code:
        assert raw.read_until_closed() == b""
    return v5, code


def test_anonymous_local_policy_seeded_once_and_deleting_it_sticks(
    start_server: Callable[..., ServerProcess],
) -> None:
    local = start_server()  # loopback, anonymous allowed by default: the quick start
    pool = Clients(local)
    try:
        assert local.log().count("Seeded the 'anonymous-local' policy") == 1
        topic = unique("quickstart")
        published = mosquitto_pub(local.mqtt_port, topic, "hello", version="mqttv311")
        assert published.returncode == 0, published.stderr
        got = mosquitto_sub(local.mqtt_port, topic, count=1, wait_seconds=5, version="mqttv5")
        assert got.returncode == 0, got.stderr
        assert got.stdout.strip() == f"{topic}|hello|1|1"
        assert _anonymous_connect_codes(pool, local.mqtt_port) == (0, 0)

        local.manage(
            "shell",
            "--no-imports",
            "-c",
            "from retained.models import Policy; "
            "Policy.objects.filter(name='anonymous-local').delete()",
        )
        deadline = time.monotonic() + 5.0
        while _anonymous_connect_codes(pool, local.mqtt_port) != (
            NOT_AUTHORIZED,
            RC_NOT_AUTHORIZED_311,
        ):
            assert time.monotonic() < deadline, "anonymous clients still accepted"
            time.sleep(0.2)
        refused = mosquitto_pub(local.mqtt_port, unique("quickstart"), "x", version="mqttv5")
        assert refused.returncode != 0

        local.stop()
        local.start()
        assert local.log().count("Seeded the 'anonymous-local' policy") == 1  # not again
        count = local.manage(
            "shell",
            "--no-imports",
            "-c",
            "from retained.models import Policy; "
            "print(Policy.objects.filter(name='anonymous-local').count())",
        )
        assert count.stdout.strip() == "0"
        assert _anonymous_connect_codes(pool, local.mqtt_port) == (
            NOT_AUTHORIZED,
            RC_NOT_AUTHORIZED_311,
        )
    finally:
        pool.close_all()
