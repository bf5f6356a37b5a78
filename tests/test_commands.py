"""The operational contract: serve's first start, create_access_key, settings from env."""

from __future__ import annotations

import json
import stat
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, make_server


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_admin_once_and_keeps_secrets_private(tmp_path: Path) -> None:
    server = make_server(tmp_path / "data")
    server.start()
    server.stop()
    server.start()
    server.stop()

    log = server.log()
    assert log.count("Created the admin account") == 1
    credentials = (tmp_path / "data" / "admin-credentials.txt").read_text()
    password = credentials.split("password: ")[1].strip()
    assert password in log
    assert mode(tmp_path / "data" / "admin-credentials.txt") == 0o600
    assert mode(tmp_path / "data" / "secret_key") == 0o600
    check = server.manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.contrib.auth import authenticate; "
        f"u = authenticate(username='admin', password={password!r}); print(u.is_superuser)",
    )
    assert check.stdout.strip() == "True"


def test_healthz_answers_json(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        body = json.load(response)
    assert body["status"] == "ok"
    assert body["database"] == "ok"


def test_create_access_key_prints_one_line(server: ServerProcess) -> None:
    result = server.manage("create_access_key", "admin")
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    access_key_id, secret = lines[0].split(" ")
    assert access_key_id.startswith("AKIR")
    assert len(access_key_id) == 20
    assert len(secret) == 40


def test_create_access_key_for_unknown_user_fails_clearly(server: ServerProcess) -> None:
    result = server.manage("create_access_key", "nobody-here", check=False)
    assert result.returncode != 0
    assert "no user named 'nobody-here'" in result.stderr


def test_database_url_and_limits_come_from_the_environment(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    database = tmp_path / "elsewhere.sqlite3"
    server = start_server(DATABASE_URL=f"sqlite:///{database}", RETAINED_LIST_MAX_RESULTS="7")
    assert database.exists()
    assert not (server.data_dir / "db.sqlite3").exists()
    check = server.manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.RETAINED_LIMITS.list_max_results)",
    )
    assert check.stdout.strip() == "7"


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    server = make_server(tmp_path / "bad", RETAINED_MAX_PAYLOAD_BYTES="lots")
    with pytest.raises(RuntimeError, match="RETAINED_MAX_PAYLOAD_BYTES must be an integer"):
        server.start(timeout=30)
