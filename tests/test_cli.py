"""The AWS CLI (awscli from PyPI), unmodified, with --endpoint-url pointed at a live server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Credentials
from tests.support.server import ServerProcess

AWS = str(Path(sys.executable).with_name("aws"))


def aws(
    server: ServerProcess, credentials: Credentials, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    return subprocess.run(
        [AWS, "iot-data", *args, "--endpoint-url", server.base_url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_publish_get_list_and_delete(server: ServerProcess, credentials: Credentials) -> None:
    topic = "cli/users/settings/user01"
    published = aws(
        server,
        credentials,
        "publish",
        "--topic",
        topic,
        "--retain",
        "--qos",
        "1",
        "--payload",
        '{"account_type": "standard"}',
        "--user-properties",
        '[{"deviceName": "alpha"}]',
    )
    assert published.returncode == 0, published.stderr

    got = aws(server, credentials, "get-retained-message", "--topic", topic)
    assert got.returncode == 0, got.stderr
    message = json.loads(got.stdout)
    assert base64.b64decode(message["payload"]) == b'{"account_type": "standard"}'
    assert message["qos"] == 1
    assert json.loads(base64.b64decode(message["userProperties"])) == [{"deviceName": "alpha"}]

    listed = aws(server, credentials, "list-retained-messages")
    assert listed.returncode == 0, listed.stderr
    assert topic in [item["topic"] for item in json.loads(listed.stdout)["retainedTopics"]]

    deleted = aws(server, credentials, "publish", "--topic", topic, "--retain")
    assert deleted.returncode == 0, deleted.stderr
    missing = aws(server, credentials, "get-retained-message", "--topic", topic)
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
