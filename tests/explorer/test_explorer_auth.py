"""Who may use the explorer: the token on every request (header or login cookie), the login
form, and, without a token, requests naming a loopback host only."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette", reason="the explorer extra is not installed")
pytest.importorskip("httpx", reason="the tests talk to the app through httpx")

from explorer_client import ServerThread
from explorer_data import NESTED
from starlette.testclient import TestClient

from agentsession import SQLiteBackend
from agentsession.explorer import create_explorer_app
from agentsession.explorer._guard import check_token

TOKEN = "correct-horse-battery-staple"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def guarded(store: SQLiteBackend) -> Iterator[TestClient]:
    """The explorer of the generated store, started with TOKEN, seen from any host."""
    app = create_explorer_app(store, token=TOKEN)
    with TestClient(app, base_url="http://explorer.example:3001") as client:
        yield client


@pytest.mark.parametrize(
    "path", ["/api/sessions", f"/api/sessions/{NESTED}/timeline", "/openapi.json"]
)
def test_the_api_needs_the_token(guarded: TestClient, path: str) -> None:
    """Without it, or with another, the API answers 401 JSON with a Bearer challenge."""
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": TOKEN},
    ):
        response = guarded.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert guarded.get(path, headers=BEARER).status_code == 200
    assert guarded.get(path, headers={"Authorization": f"bearer  {TOKEN} "}).status_code == 200


def test_writes_need_the_token(guarded: TestClient) -> None:
    """A score without the token is refused before anything is read or written."""
    response = guarded.post(f"/api/sessions/{NESTED}/scores", json={"name": "q", "value": 1})
    assert response.status_code == 401


def test_the_page_and_its_assets_need_the_token(guarded: TestClient) -> None:
    """Without the token the page is a login form (401); the assets are not served."""
    page = guarded.get("/")
    assert page.status_code == 401
    assert '<form method="post" action="/login">' in page.text
    assert guarded.get("/static/explorer.js").status_code == 401
    assert guarded.get("/", headers=BEARER).status_code == 200


def test_the_login_form_sets_a_cookie_that_opens_everything(guarded: TestClient) -> None:
    """The right token sets an HttpOnly, SameSite=Strict cookie that is not the token itself."""
    wrong = guarded.post("/login", data={"token": "not-the-token-at-all"})
    assert wrong.status_code == 401
    assert "not the one" in wrong.text
    assert "set-cookie" not in wrong.headers

    right = guarded.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert right.status_code == 303
    assert right.headers["location"] == "/"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert TOKEN not in cookie
    # The TestClient keeps the cookie, as a browser would.
    assert guarded.get("/").status_code == 200
    assert guarded.get("/api/sessions").status_code == 200


def test_a_forged_or_broken_cookie_opens_nothing(guarded: TestClient) -> None:
    """A cookie with another value, or a Cookie header that does not parse, is a 401."""
    for cookie in (
        "agentsession_explorer=" + "0" * 64,
        'agentsession_explorer="unterminated',
        "=;;",
    ):
        response = guarded.get("/api/sessions", headers={"Cookie": cookie})
        assert response.status_code == 401


def test_a_login_with_non_ascii_bytes_is_a_401_not_a_crash(guarded: TestClient) -> None:
    """Whatever the form holds, a wrong token is only a wrong token."""
    response = guarded.post(
        "/login",
        content=b"token=%C3%A9%FF%00&x=" + b"y" * 10_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401


def test_openapi_declares_the_bearer_scheme_when_a_token_is_set(guarded: TestClient) -> None:
    """With a token the document says every operation needs it."""
    document = guarded.get("/openapi.json", headers=BEARER).json()
    assert document["security"] == [{"token": []}]
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:3001", 200),
        ("localhost", 200),
        ("LOCALHOST:3001", 200),
        ("[::1]:3001", 200),
        ("evil.example", 403),
        ("127.0.0.1.evil.example:3001", 403),
        ("[::2]:80", 403),
    ],
)
def test_without_a_token_only_loopback_hosts_are_answered(
    store: SQLiteBackend, host: str, status: int
) -> None:
    """A page that rebinds its own name to 127.0.0.1 gets 403, whatever it asks for."""
    with TestClient(create_explorer_app(store)) as client:
        response = client.get("/api/sessions", headers={"Host": host})
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "forbidden_host"


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /api/sessions HTTP/1.0\r\n\r\n", 403),
        (b"GET /api/sessions HTTP/1.0\r\nHost: \r\n\r\n", 403),
        (b"GET /api/sessions HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", 200),
    ],
    ids=["no-host", "empty-host", "loopback-host"],
)
def test_without_a_token_a_request_naming_no_host_is_refused(
    store: SQLiteBackend, request_head: bytes, status: int
) -> None:
    """An HTTP/1.0 request without a Host header gets 403 like a foreign host, on a real server."""
    with (
        ServerThread(create_explorer_app(store)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.sendall(request_head)
        answer = b""
        while chunk := sock.recv(65536):  # HTTP/1.0: the server closes after the answer
            answer += chunk
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    if status == 403:
        assert b'"forbidden_host"' in answer


def test_allowed_hosts_add_names_the_server_answers_to(store: SQLiteBackend) -> None:
    """A name passed in allowed_hosts is answered too (e.g. the --host it listens on)."""
    app = create_explorer_app(store, allowed_hosts=["box.internal"])
    with TestClient(app, base_url="http://box.internal:3001") as client:
        assert client.get("/api/sessions").status_code == 200


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("short", "at least 16 characters, got 5"),
        ("with spaces in it ok", "without spaces"),
        ("é" * 20, "US-ASCII"),
    ],
)
def test_weak_or_odd_tokens_are_refused(store: SQLiteBackend, token: str, says: str) -> None:
    """A token under 16 characters, or with spaces or non-ASCII, is refused at startup."""
    with pytest.raises(ValueError, match=says):
        check_token(token)
    with pytest.raises(ValueError, match=says):
        create_explorer_app(store, token=token)
