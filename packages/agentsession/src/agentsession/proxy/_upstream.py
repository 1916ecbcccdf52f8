"""The upstream side of the proxy: where a request goes, which headers travel, error bodies.

``upstream`` is the model server's OpenAI base URL, exactly what an OpenAI client takes as
``base_url`` (``https://api.openai.com/v1``, ``http://127.0.0.1:11434/v1``). A request for
``/v1/<rest>`` goes to ``<upstream>/<rest>`` with its query string, so an upstream that serves
the API without a ``/v1`` prefix is named without one. ``<rest>`` travels percent-encoded as
the client sent it and may not hold a ``.`` or ``..`` segment: the request stays under the base.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

try:
    # httpx's successor (the proxy extra installs it): its connection pool stays fast with many
    # connections, where httpx 0.28 spends most of a busy proxy's time rescanning its pool.
    import httpx2 as httpx
except ImportError:  # same API; about half the throughput under load (benchmarks/bench_proxy.py)
    import httpx  # type: ignore[no-redef]

__all__ = [
    "HOP_BY_HOP",
    "httpx",
    "UpstreamURL",
    "error_body",
    "forwarded_path",
    "new_upstream_client",
    "request_headers_for_upstream",
    "response_headers_for_client",
]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that describe one connection (RFC 9110, 7.6.1) and never cross a proxy."""

# httpx sets these for the upstream connection itself, from the URL and the body it sends.
_SET_BY_CLIENT = frozenset({"host", "content-length", "accept-encoding"})
# The body reaches the client decoded (httpx decompresses it), so its framing is ours to set.
_SET_BY_SERVER = frozenset({"content-length", "content-encoding", "date", "server"})


class UpstreamURL:
    """Maps ``/v1/<rest>`` to ``<upstream>/<rest>``; checked once at start-up."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"upstream must be an http(s) base URL such as http://127.0.0.1:9000/v1, "
                f"got {upstream!r}"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"upstream must not have a query or fragment, got {upstream!r}")
        self.base = upstream.rstrip("/")

    def for_path(self, rest: str, query: bytes) -> str:
        """The upstream URL of ``/v1/<rest>?<query>``, both still percent-encoded."""
        url = f"{self.base}/{rest}"
        return f"{url}?{query.decode('latin-1')}" if query else url

    def __repr__(self) -> str:
        return f"UpstreamURL({self.base!r})"


# RFC 3986 pchar minus the unreserved characters quote() always keeps, plus "/".
_PATH_SAFE = "/:@!$&'()*+,;="


def forwarded_path(rest: str, raw_path: bytes | None) -> str:
    """The path to send upstream for ``/v1/<rest>``: still percent-encoded, as the client sent it.

    ``rest`` is the decoded path the route matched. Forwarding it decoded would turn ``%3F``
    into a query and ``%2F`` into a separator, so its encoded form is taken from the end of
    ``raw_path`` (the ASGI request target); without one it is encoded again. Raises ValueError
    for a ``.`` or ``..`` segment, encoded or not: resolved by httpx or the upstream, it would
    leave the upstream's base path.
    """
    if any(segment in (".", "..") for segment in rest.split("/")):
        raise ValueError(f"the path must not have a '.' or '..' segment, got {rest[:200]!r}")
    if raw_path is not None:
        raw = _encoded_suffix(raw_path.split(b"?", 1)[0].decode("latin-1"), rest)
        if raw is not None:
            return raw
    return quote(rest, safe=_PATH_SAFE)


def _encoded_suffix(raw: str, decoded: str) -> str | None:
    """The end of the percent-encoded ``raw`` that decodes to ``decoded``, if it has one."""
    # "/" is never encoded by decoding, so segments decode one by one: walk back until long enough.
    segments = raw.split("/")
    length = -1
    for start in range(len(segments) - 1, -1, -1):
        length += len(unquote(segments[start])) + 1
        if length >= len(decoded):
            suffix = "/".join(segments[start:])
            return suffix if unquote(suffix) == decoded else None
    return None


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names a ``Connection`` header marks as hop-by-hop for this message."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
    return tokens


def request_headers_for_upstream(
    headers: list[tuple[bytes, bytes]], session_prefixes: tuple[bytes, ...]
) -> list[tuple[bytes, bytes]]:
    """The client's headers minus ours (``<prefix>-*``), hop-by-hop ones and what httpx sets.

    ``Authorization`` and everything else the provider needs pass unchanged. Session headers
    never leave: the state they carry is the application's, not the model provider's.
    """
    extra = _connection_tokens(headers)
    kept = []
    for name, value in headers:
        lowered = name.lower().decode("latin-1")
        if lowered in HOP_BY_HOP or lowered in _SET_BY_CLIENT:
            continue
        if lowered.encode("latin-1") in extra:
            continue
        if lowered.encode("latin-1").startswith(session_prefixes):
            continue
        kept.append((name, value))
    return kept


def response_headers_for_client(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers the client should see (rate limits, request ids...)."""
    extra = _connection_tokens(headers)
    return [
        (name, value)
        for name, value in headers
        if (lowered := name.lower().decode("latin-1")) not in HOP_BY_HOP
        and lowered not in _SET_BY_SERVER
        and lowered.encode("latin-1") not in extra
    ]


def error_body(message: str, error_type: str, code: str) -> bytes:
    """An error in OpenAI's shape, so that OpenAI clients raise their usual exceptions."""
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return json.dumps(payload).encode()


def new_upstream_client(*, connect_timeout_s: float, read_timeout_s: float) -> httpx.AsyncClient:
    """One pooled client for the proxy's lifetime: keep-alive connections are reused.

    ``read_timeout_s`` bounds the wait for each piece of the response (a stream may run longer
    as long as chunks keep coming); waiting for a free pooled connection counts as connecting.
    """
    timeout = httpx.Timeout(
        connect=connect_timeout_s,
        read=read_timeout_s,
        write=read_timeout_s,
        pool=connect_timeout_s,
    )
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
    # trust_env stays on, as in the OpenAI SDK: HTTPS_PROXY and SSL_CERT_FILE apply upstream.
    return httpx.AsyncClient(timeout=timeout, limits=limits)
