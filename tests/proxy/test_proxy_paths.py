"""The path a proxied request names stays under the upstream's base path: it travels still
percent-encoded, and a ``.`` or ``..`` segment (encoded or not) is refused before it leaves."""

from __future__ import annotations

import http.client
import json

import pytest
from proxy_harness import ProxyProcess

from agentsession.testing import FakeOpenAIServer


def send_raw(proxy: ProxyProcess, method: str, target: str) -> tuple[int, bytes]:
    """Send ``target`` byte for byte (http.client, unlike httpx, resolves no dot segments)."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        connection.request(method, target, body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "target",
    [
        "/v1/..%2F..%2Fadmin%3Fa=b",
        "/v1/../admin",
        "/v1/%2E%2E/%2e%2e/admin",
        "/v1/models/../../admin?a=b",
        "/v1/./chat/completions",
        "/v1/chat/%2E/completions",
        "/v1/..",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_dot_segment_gets_a_400_and_is_not_forwarded(
    proxy: ProxyProcess, upstream: FakeOpenAIServer, method: str, target: str
) -> None:
    """Traversal out of the base path, encoded or not, is refused in OpenAI's error shape."""
    before = len(upstream.requests)
    status, body = send_raw(proxy, method, target)
    assert status == 400
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "bad_path")
    assert "'..'" in error["message"]
    assert len(upstream.requests) == before


@pytest.mark.parametrize(
    ("target", "received"),
    [
        ("/v1/models%3Fa=b", "/v1/models%3Fa=b"),
        ("/v1/models%3Fa=b?limit=2&x=%2F", "/v1/models%3Fa=b?limit=2&x=%2F"),
        ("/v1/models/org%2Fname", "/v1/models/org%2Fname"),
        ("/v1/models/ft:gpt-4o:acme%23x", "/v1/models/ft:gpt-4o:acme%23x"),
        ("/v1/models/caf%C3%A9..%2E", "/v1/models/caf%C3%A9..%2E"),
    ],
)
def test_the_upstream_gets_the_path_as_the_client_encoded_it(
    proxy: ProxyProcess, upstream: FakeOpenAIServer, target: str, received: str
) -> None:
    """Encoded "?", "/", "#" and UTF-8 stay encoded: the request stays under the base path."""
    status, _ = send_raw(proxy, "GET", target)
    assert status in (200, 404)  # the fake answers what it has a route for
    assert upstream.requests[-1].path.startswith("/v1/")
    assert upstream.requests[-1].path == received
