from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from retained.conf import RATE_LIMIT_FIELDS
from tests.support.server import ServerProcess, make_server


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def with_wrong_secret(self) -> Credentials:
        """The same key id with a secret one character off (never the real one)."""
        secret = self.secret_access_key
        return Credentials(self.access_key_id, secret[:-1] + ("y" if secret[-1] == "x" else "x"))


ALLOW_ALL_POLICY = """{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}"""


def ensure_policy(server: ServerProcess, name: str, document: str) -> None:
    path = server.data_dir / f"policy-{name}.json"
    path.write_text(document)
    result = server.manage("create_policy", name, str(path), check=False)
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise RuntimeError(result.stderr)


def create_credentials(
    server: ServerProcess, username: str = "tester", *, policy: str | None = "allow-all"
) -> Credentials:
    """An access key for `username` (created if needed); with `policy`, that policy attached
    (the default "allow-all" allows every iot:* action)."""
    result = server.manage("create_access_key", username, "--create-user")
    lines = result.stdout.strip().splitlines()
    access_key_id, secret = lines[-1].split()
    if policy == "allow-all":
        ensure_policy(server, "allow-all", ALLOW_ALL_POLICY)
    if policy is not None:
        server.manage("attach_policy", policy, "--user", username)
    return Credentials(access_key_id, secret)


def iot_data_client(server: ServerProcess, credentials: Credentials, **kwargs: Any) -> Any:
    return boto3.client(
        "iot-data",
        endpoint_url=server.base_url,
        region_name=kwargs.pop("region_name", "us-east-1"),
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        config=kwargs.pop("config", Config(retries={"max_attempts": 1, "mode": "standard"})),
        **kwargs,
    )


@pytest.fixture(autouse=True)
def no_rate_limits(settings: Any) -> Iterator[None]:
    """In-process code runs with the rate limits off and no sign-in failures remembered: many
    tests replace one retained message quickly. A test wants the limits: it sets
    settings.RETAINED_LIMITS (or the RETAINED_LOGIN_* settings) itself."""
    from console import login_throttle

    settings.RETAINED_LIMITS = dataclasses.replace(
        settings.RETAINED_LIMITS, **dict.fromkeys(RATE_LIMIT_FIELDS, 0)
    )
    login_throttle.reset()
    yield
    login_throttle.reset()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real `manage.py serve` process shared by the interface tests."""
    process = make_server(tmp_path_factory.mktemp("server"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def start_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers with their own settings (env overrides); all stopped at the end."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        process = make_server(Path(tmp_path_factory.mktemp("server-extra")), **env)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def credentials(server: ServerProcess) -> Credentials:
    return create_credentials(server)


@pytest.fixture
def iot(server: ServerProcess, credentials: Credentials) -> Any:
    return iot_data_client(server, credentials)
