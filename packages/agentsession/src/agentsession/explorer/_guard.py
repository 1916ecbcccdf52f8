"""Who may talk to the explorer: the token check, the login form and the loopback host check.

Without a token the server binds to the loopback interface, and the one remote way in is a web
page the user visits that rebinds its own domain name to 127.0.0.1; requests naming any host
but a loopback one are refused, which closes it. With a token every request must carry it, as
``Authorization: Bearer <token>`` or as the cookie the login form sets (the browser cannot
send a header when it loads the page).
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "SECURITY_HEADERS", "TOKEN_MIN_LENGTH", "Guard", "check_token"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_MIN_LENGTH = 16
_COOKIE = "agentsession_explorer"
_LOGIN_FORM_MAX = 4096

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    # Every asset is served from here; nothing inline, nothing from elsewhere, no framing.
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def check_token(token: str) -> str:
    """``token`` if it is fit to guard a server; ValueError naming the rule otherwise."""
    if len(token) < TOKEN_MIN_LENGTH:
        raise ValueError(
            f"the explorer token must be at least {TOKEN_MIN_LENGTH} characters, "
            f"got {len(token)}; e.g. python3 -c 'import secrets; print(secrets.token_urlsafe())'"
        )
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise ValueError("the explorer token must be printable US-ASCII without spaces")
    return token


def _host_name(host: str) -> str:
    """``host`` of a Host header without its port: ``[::1]:3001`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware in front of the whole explorer: refuses, logs in, adds safety headers."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, allowed_hosts: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.token = None if token is None else check_token(token).encode()
        # The cookie holds a value derived from the token, never the token itself.
        self._cookie = b""
        if self.token is not None:
            self._cookie = (
                hmac.new(self.token, b"agentsession explorer cookie", hashlib.sha256)
                .hexdigest()
                .encode()
            )
        self.allowed_hosts = LOOPBACK_HOSTS | {host.lower() for host in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        headers = _headers(scope)
        token = self.token
        if token is not None and scope["path"] == "/login" and scope["method"] == "POST":
            await self._login(token, receive, send_with_headers)
            return
        if token is None:
            # No Host header (HTTP/1.0) names no loopback host either: refused, not waved through.
            host = headers.get("host", "")
            if _host_name(host.lower()) not in self.allowed_hosts:
                await _answer(
                    send_with_headers,
                    403,
                    b"application/json",
                    b'{"error":{"code":"forbidden_host","message":"this explorer answers '
                    b"requests for a loopback host only (127.0.0.1, localhost, ::1); start it "
                    b'with a token to serve other hosts"}}',
                )
                return
        elif not self._authorized(token, headers):
            if scope["path"].startswith("/api/") or scope["path"] == "/openapi.json":
                await _answer(
                    send_with_headers,
                    401,
                    b"application/json",
                    b'{"error":{"code":"unauthorized","message":"this explorer needs its '
                    b'token: send Authorization: Bearer <token>"}}',
                    [(b"www-authenticate", b'Bearer realm="agentsession explorer"')],
                )
            else:
                await _answer(send_with_headers, 401, b"text/html; charset=utf-8", _login_page())
            return
        await self.app(scope, receive, send_with_headers)

    def _authorized(self, token: bytes, headers: dict[str, str]) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode("latin-1"), token
        ):
            return True
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header authorizes nothing
            return False
        morsel = cookies.get(_COOKIE)
        return morsel is not None and hmac.compare_digest(
            morsel.value.encode("latin-1"), self._cookie
        )

    async def _login(self, token: bytes, receive: Receive, send: Send) -> None:
        """The login form's POST: set the cookie and go to the page, or show the form again."""
        body = b""
        more = True
        while more and len(body) <= _LOGIN_FORM_MAX:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        given = parse_qs(body[:_LOGIN_FORM_MAX].decode("latin-1")).get("token", [""])[0]
        if hmac.compare_digest(given.encode(), token):
            cookie = f"{_COOKIE}={self._cookie.decode()}; Path=/; HttpOnly; SameSite=Strict"
            await _answer(
                send,
                303,
                b"text/plain",
                b"",
                [(b"location", b"/"), (b"set-cookie", cookie.encode())],
            )
        else:
            page = _login_page("That token is not the one this explorer was started with.")
            await _answer(send, 401, b"text/html; charset=utf-8", page)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def _answer(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _login_page(problem: str | None = None) -> bytes:
    notice = f"<p role='alert'>{html.escape(problem)}</p>" if problem else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agentsession explorer: log in</title>
<link rel="icon" href="data:,"></head>
<body><h1>agentsession explorer</h1>
<p>This explorer was started with a token. Enter it to continue.</p>{notice}
<form method="post" action="/login"><label>Token <input type="password" name="token"
autocomplete="current-password" autofocus required></label> <button type="submit">Log in</button>
</form></body></html>
""".encode()
