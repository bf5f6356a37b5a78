"""The frame: root redirect, login required everywhere, login/logout, layout, test client."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.console.conftest import client_for, put

pytestmark = pytest.mark.django_db

CONSOLE_PAGES = [
    "/retained/",
    "/retained/a/b",
    "/download/retained/a/b",
    "/edit/retained/a/b",
    "/delete/retained/a/b",
    "/create/retained/",
    "/test/",
]


def test_root_redirects_to_the_list() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/retained/"


@pytest.mark.parametrize("url", CONSOLE_PAGES)
def test_console_pages_need_a_login(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_login_page_and_sign_in(root: User) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/",
        {"username": "root", "password": "pw-root", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert client.get("/retained/").status_code == 200


def test_login_without_csrf_token_is_refused(root: User) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "root", "password": "pw-root"})
    assert response.status_code == 403


def test_logout_is_a_post(root: User) -> None:
    client = client_for(root)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/retained/").status_code == 302


def test_layout_navigation(reader: User) -> None:
    html = client_for(reader).get("/retained/").content.decode()
    for href, label in [
        ("/retained/", "Retained messages"),
        ("/test/", "MQTT test client"),
        ("/admin/retained/policy/", "Policies"),
        ("/admin/retained/accesskey/", "Access keys"),
    ]:
        assert f'href="{href}"' in html
        assert label in html
    assert 'aria-current="page">Retained messages' in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert "/static/vendor/htmx-ext-ws-2.0.4.js" in html
    assert "/static/console/console.css" in html
    assert "superuser" not in html


def test_superuser_is_told_policies_are_not_consulted(root: User) -> None:
    html = client_for(root).get("/retained/").content.decode()
    assert "superuser: account root, policies not consulted" in html


def test_test_client_page(reader: User) -> None:
    response = client_for(reader).get("/test/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "MQTT test client" in html
    assert "/ws/test-client/" in html or "test_client.js" in html
    assert 'aria-current="page">MQTT test client' in html


def test_healthz_stays_public() -> None:
    assert Client().get("/healthz").status_code in (200, 503)


def test_api_paths_are_not_console_pages(reader: User) -> None:
    put("a/b")
    # The data-plane API answers (unsigned: 401/403 JSON), not the console's login redirect.
    response = Client().get("/retainedMessage/a/b")
    assert response.status_code != 302
