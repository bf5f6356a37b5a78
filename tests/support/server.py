"""A real `manage.py serve` process on free loopback ports, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from retained.conf import RATE_LIMIT_FIELDS

REPO_ROOT = Path(__file__).resolve().parents[2]
# Every rate limit off (0 = unlimited).
NO_RATE_LIMITS = {f"RETAINED_{name.upper()}": "0" for name in RATE_LIMIT_FIELDS}


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: all bound at once, so the OS cannot hand one out twice."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class ServerProcess:
    data_dir: Path
    http_port: int
    mqtt_port: int
    env: dict[str, str]
    mqtts_port: int = field(default_factory=lambda: free_port())
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "serve.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a management command against this server's data dir."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "serve",
                "--bind",
                "127.0.0.1",
                "--http-port",
                str(self.http_port),
                "--mqtt-port",
                str(self.mqtt_port),
                "--mqtts-port",
                str(self.mqtts_port),
            ],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{self.log_path.read_text()}")
            if self.health() == 200:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve did not become healthy:\n{self.log_path.read_text()}")

    def health(self) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:
                json.load(response)
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def pki_dir(self) -> Path:
        """The server's CA and TLS listener files (root-CA.crt, ca.key, server.crt)."""
        return self.data_dir / "pki"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def make_server(data_dir: Path, **env_overrides: str) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RETAINED_", "DATABASE_URL", "SECRET_KEY"))
    }
    env.update({"RETAINED_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    # Tests and benchmarks replace one retained message many times a second: AWS's rate
    # limits are off unless the caller sets them (tests/test_rate_limits.py does).
    env.update(NO_RATE_LIMITS)
    env.update(env_overrides)
    http_port, mqtt_port, mqtts_port = free_ports(3)
    return ServerProcess(
        data_dir=data_dir,
        http_port=http_port,
        mqtt_port=mqtt_port,
        mqtts_port=mqtts_port,
        env=env,
    )
