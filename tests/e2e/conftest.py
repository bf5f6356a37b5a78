"""Fixtures of the browser tests: one real `manage.py serve`, Debian's Chromium driven by
Playwright (launched once per module), and signed-in browser contexts.

Playwright's own browser downloads are never used: the tests drive /usr/bin/chromium (bin/test
installs the Debian package). Without it the tests are skipped, saying so.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.conftest import ensure_policy
from tests.support.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# How long a page action may wait (navigation, a click): generous on a loaded 2-core machine;
# the live-update deadlines are asserted separately, with their own (1 s) timeouts.
ACTION_TIMEOUT_MS = 10_000


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def admin_password(data_dir: Path) -> str:
    """From the credentials file `serve` writes on first start."""
    for line in (data_dir / "admin-credentials.txt").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "password":
            return value.strip()
    raise AssertionError("no password line in admin-credentials.txt")


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    """Through the real login form; ends on the retained-messages list."""
    page.goto(f"{base_url}/accounts/login/?next=/retained/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url.startswith(f"{base_url}/retained/"), page.url
    assert page.locator(".user-name").inner_text() == username


def create_console_user(server: ServerProcess, username: str, password: str) -> None:
    server.manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user({username!r}, password={password!r})",
    )


def policy_allowing(*actions: str) -> str:
    quoted = ", ".join(f'"{action}"' for action in actions)
    return (
        '{"Version": "2012-10-17", "Statement": '
        f'[{{"Effect": "Allow", "Action": [{quoted}], "Resource": "*"}}]}}'
    )


@pytest.fixture(scope="module")
def console_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A server of this module's own: its users, policies and anonymous-local MQTT access are
    not shared with the other tests."""
    return start_server()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def admin_context(browser: Browser, console_server: ServerProcess) -> Iterator[BrowserContext]:
    """A browser context signed in as the admin superuser, through the login page."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    log_in(page, console_server.base_url, "admin", admin_password(console_server.data_dir))
    page.close()
    yield context
    context.close()


@pytest.fixture
def admin_page(admin_context: BrowserContext) -> Iterator[Page]:
    page = admin_context.new_page()
    yield page
    page.close()


@pytest.fixture(scope="module")
def user_context(
    browser: Browser, console_server: ServerProcess
) -> Iterator[Callable[..., BrowserContext]]:
    """make(actions...) -> a context signed in as a user whose one policy allows exactly
    `actions` on every resource (one user per set of actions and module)."""
    contexts: dict[tuple[str, ...], BrowserContext] = {}

    def make(*actions: str) -> BrowserContext:
        if actions in contexts:
            return contexts[actions]
        username = f"e2e-{uuid.uuid4().hex[:8]}"
        password = f"pw-{uuid.uuid4().hex}"
        with ThreadPoolExecutor(2) as pool:  # two independent manage.py runs at once
            made = pool.submit(create_console_user, console_server, username, password)
            pool.submit(
                ensure_policy, console_server, f"{username}-policy", policy_allowing(*actions)
            ).result()
            made.result()
        console_server.manage("attach_policy", f"{username}-policy", "--user", username)
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        contexts[actions] = context
        page = context.new_page()
        log_in(page, console_server.base_url, username, password)
        page.close()
        return context

    yield make
    for context in contexts.values():
        context.close()


@pytest.fixture
def topic_prefix() -> str:
    """A unique first levels for a test's topics (and the list search that shows them)."""
    return f"e2e-{uuid.uuid4().hex[:10]}"
