"""Node.js's `mqtt` npm package (pinned in tests/node/package.json) over ws://HOST:PORT/mqtt.

A retained message published with paho over TCP reaches a Node.js subscriber that connects
over the WebSocket endpoint with an access key. `npm ci` runs first when
tests/node/node_modules is missing (the npm registry must be reachable then); without
node or npm the test is skipped, saying so (bin/test installs them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Credentials
from tests.interop.clients import PahoClient, unique
from tests.support.server import REPO_ROOT, ServerProcess

NODE_DIR = REPO_ROOT / "tests" / "node"
SCRIPT = NODE_DIR / "ws_subscribe.mjs"


@pytest.fixture(scope="module")
def node() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "mqtt").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return Path(node)


@pytest.mark.parametrize("version", [4, 5], ids=["mqtt311", "mqtt5"])
def test_node_mqtt_package_receives_a_retained_message_over_websocket(
    node: Path, server: ServerProcess, credentials: Credentials, version: int
) -> None:
    topic = unique("node-ws")
    publisher = PahoClient(server.mqtt_port, version=5)
    publisher.client.username_pw_set(credentials.access_key_id, credentials.secret_access_key)
    publisher.connect()
    try:
        assert publisher.publish(topic, "héllo from TCP", qos=1, retain=True) == 0
    finally:
        publisher.disconnect()

    result = subprocess.run(
        [
            str(node),
            str(SCRIPT),
            "--url",
            f"ws://127.0.0.1:{server.http_port}/mqtt",
            "--topic",
            topic,
            "--username",
            credentials.access_key_id,
            "--password",
            credentials.secret_access_key,
            "--protocol-version",
            str(version),
            "--timeout",
            "15",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"topic": topic, "payload": "héllo from TCP", "retain": True, "qos": 1}
    ]
