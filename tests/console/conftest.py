"""Fixtures of the console tests: users with and without policies, stored messages.

Policies reach `retained.access` through an on-commit reload; inside a test's transaction
that never runs, so every fixture that changes users or policies reloads the snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from retained import access, store
from retained.models import SetByKind
from retained.policies import attach_policy, create_policy

ARN = "arn:aws:iot:us-east-1:123456789012:"
XSS = "<script>alert(1)</script>"


def policy_document(*statements: tuple[str | list[str], str | list[str]]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": action, "Resource": resource}
                for action, resource in statements
            ],
        }
    )


def make_user(name: str, *statements: tuple[str | list[str], str | list[str]]) -> User:
    """A user with one policy made of `statements` (none: no policy at all)."""
    user = User.objects.create_user(name, password="pw-" + name)
    if statements:
        policy = create_policy(f"{name}-policy", policy_document(*statements))
        attach_policy(policy, user=user)
    access.reload()
    return user


def client_for(user: User, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def put(topic: str, payload: bytes | str = b"x", **kwargs: Any) -> store.StoredMessage:
    """Store a retained message directly (as an MQTT client would have)."""
    data = payload.encode() if isinstance(payload, str) else payload
    actor = kwargs.pop("actor", store.Actor(kind=SetByKind.MQTT, name="device-1"))
    stored = store.set_retained(topic, data, qos=kwargs.pop("qos", 0), actor=actor, **kwargs)
    assert stored is not None
    return stored


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from a policy snapshot of its own database and leaves the module
    state as it found it."""
    monkeypatch.setattr(access, "_snapshot", None)
    monkeypatch.setattr(access, "_decisions", {})


@pytest.fixture
def root(db: None) -> User:
    user = User.objects.create_superuser("root", password="pw-root")
    access.reload()
    return user


@pytest.fixture
def reader(db: None) -> User:
    """May list and read every retained message, but not publish."""
    return make_user("reader", (["iot:ListRetainedMessages", "iot:GetRetainedMessage"], "*"))


@pytest.fixture
def writer(db: None) -> User:
    return make_user("writer", ("iot:*", "*"))


@pytest.fixture
def nobody(db: None) -> User:
    """Signed in, no policy attached."""
    return make_user("nobody")


@pytest.fixture
def as_user() -> Callable[..., Client]:
    return client_for
