"""Fixtures for the interop tests: the two retained-delivery modes side by side."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Credentials, create_credentials, iot_data_client
from tests.support.server import ServerProcess

MODES = ("aws", "spec")


@dataclass(frozen=True)
class ModeServer:
    """A running server and which retained-delivery mode it runs in."""

    mode: str  # "aws": exact-match filters only (default); "spec": every matching filter
    server: ServerProcess
    credentials: Credentials

    @property
    def port(self) -> int:
        return self.server.mqtt_port

    def iot(self) -> Any:
        return iot_data_client(self.server, self.credentials)


@pytest.fixture(scope="session")
def spec_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A second server in MQTT-spec delivery mode (RETAINED_WILDCARD_DELIVERY=true)."""
    return start_server(RETAINED_WILDCARD_DELIVERY="true")


@pytest.fixture(scope="session")
def spec_credentials(spec_server: ServerProcess) -> Credentials:
    return create_credentials(spec_server)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> ModeServer:
    """The test runs once against each delivery mode."""
    if request.param == "aws":
        server = request.getfixturevalue("server")
        credentials = request.getfixturevalue("credentials")
    else:
        server = request.getfixturevalue("spec_server")
        credentials = request.getfixturevalue("spec_credentials")
    return ModeServer(mode=request.param, server=server, credentials=credentials)
