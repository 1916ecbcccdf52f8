"""The proxy's handling of incoming session headers, fuzzed, in front of a FakeOpenAIServer.

Hypothesis drives the real proxy app in this process (one app and one upstream for all
examples), with header bytes exactly as generated: session headers holding random bytes, CR/LF,
NUL, non-UTF-8, huge values, indexes past 2**64, repeated and differently cased; other headers
as any HTTP server would pass them on. Every call must reach the upstream exactly once, with no
header the client did not send and no session header; the client gets the upstream's answer;
the call is recorded as a step, and every malformed header is counted. A second test sends raw
bytes over a socket to the real ``agentsession proxy`` subprocess (proxy_harness), where the
HTTP server itself sees them first."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from proxy_harness import ProxyProcess
from starlette.applications import Starlette

import agentsession
from agentsession import parse_headers, testing
from agentsession._headers import header_names
from agentsession.proxy import create_proxy_app
from agentsession.proxy._upstream import HOP_BY_HOP
from agentsession.testing import CapturedSessions, FakeOpenAIServer

SESSION, INDEX, PARENT, STATE = (name.lower() for name in header_names("X-TraceForge"))
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
BASE_HEADERS = [
    (b"host", b"127.0.0.1:4000"),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]
"""What every in-process request carries before the generated headers."""
SET_BY_HTTPX = {"host", "content-length", "accept", "accept-encoding", "connection", "user-agent"}
"""Headers the proxy's own HTTP client adds when the client sent none (or sets itself)."""
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


@dataclass
class InProcessProxy:
    """The proxy app running in a portal's event loop, recording into ``captured``."""

    app: Starlette
    portal: BlockingPortal
    captured: CapturedSessions

    def post(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, str], bytes]:
        """POST /v1/chat/completions with exactly ``headers``; (status, headers, body)."""
        return self.portal.call(_asgi_post, self.app, headers)


async def _asgi_post(
    app: Starlette, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, str], bytes]:
    body = BODY.encode()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [*BASE_HEADERS, *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4000),
    }
    delivered = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in messages if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    response_headers = {
        name.decode("latin-1"): value.decode("latin-1") for name, value in start["headers"]
    }
    return start["status"], response_headers, answer


@pytest.fixture(scope="module")
def in_process(upstream: FakeOpenAIServer) -> Iterator[InProcessProxy]:
    """One proxy app (auto session ids on) for every example, with its lifespan running."""
    with testing.isolated() as captured, start_blocking_portal() as portal:
        app = create_proxy_app(upstream.base_url, auto_session_id=True, read_timeout_s=10.0)
        with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
            yield InProcessProxy(app, portal, captured)


# -- strategies ---------------------------------------------------------------------------------

junk = st.one_of(
    st.binary(max_size=60),
    st.text(
        st.one_of(
            st.characters(min_codepoint=0x20, max_codepoint=0x7E),
            st.sampled_from(["\r", "\n", "\x00", "\t", "\x7f", "\u00e9", "\U0001f600"]),
        ),
        max_size=60,
    ).map(str.encode),
    st.sampled_from([b"a\r\nX-Injected: 1", b"\r\n\r\nGET / HTTP/1.1", b"\xff\xfe", b" "]),
)
session_ids = st.one_of(
    st.sampled_from([b"fuzz-proxy-conv-1", b"fuzz-proxy-conv-2", b"user_9_conv_fuzz"]),
    st.sampled_from([b"x" * 200, b"caf\xc3\xa9-conv", b"\xff-conv", b" padded"]),
    junk,
)
step_indexes = st.one_of(
    st.integers(min_value=-2, max_value=6).map(lambda n: str(n).encode()),
    st.sampled_from([b"18446744073709551616", b"9223372036854775808", b"9" * 5000, b"1e3"]),
    junk,
)
parents = st.one_of(st.just(b"4bf92f3577b34da6a3ce929d0e0e4736"), st.just(b"p" * 300), junk)
states = st.one_of(
    st.dictionaries(st.text(max_size=8), st.text(max_size=20) | st.integers(), max_size=3).map(
        lambda state: json.dumps(state, ensure_ascii=False).encode()
    ),
    st.sampled_from(
        [b'{"a":NaN}', b'{"a":"\\ud800"}', b"[1]", b'{"a":"' + b"x" * 11_000 + b'"}', b"{" * 5000]
    ),
    junk,
)
header_case = st.sampled_from([str.lower, str.upper, lambda name: name])


@st.composite
def session_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Each session header absent, present or repeated, its name in any case."""
    headers = []
    for name, values in ((SESSION, session_ids), (INDEX, step_indexes), (PARENT, parents)):
        for value in draw(st.lists(values, max_size=2)):
            headers.append((draw(header_case)(name).encode(), value))
    for value in draw(st.lists(states, max_size=1)):
        headers.append((draw(header_case)(STATE).encode(), value))
    # Unknown headers under the session prefix: never forwarded either.
    for value in draw(st.lists(junk, max_size=1)):
        headers.append((b"X-TraceForge-Evil", value))
    return draw(st.permutations(headers))


# What an HTTP server passes on: visible ASCII and obs-text, spaces and tabs inside only.
field_values = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    min_size=1,
    max_size=40,
).map(lambda text: text.encode("latin-1")) | st.just(b"a \tb")
other_headers = st.lists(
    st.tuples(
        st.sampled_from(
            [
                b"authorization",
                b"x-request-id",
                b"openai-organization",
                b"user-agent",
                b"accept",
                b"x-custom",
                b"keep-alive",
                b"te",
                b"x-traceforge-warning",
                b"X-TraceForge-Next-Step",
            ]
        ),
        field_values,
    ),
    max_size=4,
)


# -- the in-process app -------------------------------------------------------------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(ours=[(b"x-traceforge-session-id", b"a\r\nX-Injected: 1")], theirs=[])
@example(
    ours=[(b"x-traceforge-state", b"{" * 5000), (b"x-traceforge-step-index", b"-1")], theirs=[]
)
@example(ours=[(b"X-TRACEFORGE-STEP-INDEX", b"18446744073709551616")], theirs=[])
@given(ours=session_headers(), theirs=other_headers)
def test_any_session_headers_reach_the_upstream_once_and_are_recorded_or_counted(
    in_process: InProcessProxy,
    upstream: FakeOpenAIServer,
    ours: list[tuple[bytes, bytes]],
    theirs: list[tuple[bytes, bytes]],
) -> None:
    """Whatever the session headers hold, the call goes upstream exactly once, carrying the
    client's other headers unchanged and nothing else (no session header, no injected line);
    the client gets the upstream's 200; the call is one step of the session the headers name
    (or of a new one) with the state and parent they give when valid; each malformed header is
    counted in proxy.header_problems and reported in X-TraceForge-Warning."""
    headers = [*theirs, *ours]
    expected = parse_headers(headers, strict=False)
    before = len(upstream.requests)
    problems_before = agentsession.get_stats().get("proxy.header_problems", 0)

    status, answer_headers, body = in_process.post(headers)

    assert status == 200, body
    assert json.loads(body)["object"] == "chat.completion"
    assert len(upstream.requests) == before + 1
    received = upstream.requests[-1].headers
    forwarded = _forwardable([*BASE_HEADERS, *headers])
    assert set(received) <= set(forwarded) | SET_BY_HTTPX, set(received) - set(forwarded)
    for name, value in forwarded.items():
        assert received[name] == value, name
    for name, value in received.items():
        assert not name.startswith("x-traceforge-")
        assert "\r" not in value
        assert "\n" not in value
    for name, value in answer_headers.items():
        assert _PRINTABLE.fullmatch(value), (name, value)

    assert agentsession.flush(10.0)
    session_id = answer_headers[SESSION]
    if expected.session_id is not None:
        assert session_id == expected.session_id
    (step,) = [
        s
        for s in in_process.captured.steps_of(session_id)
        if s.trace_id == answer_headers["x-traceforge-trace-id"]
    ]
    assert step.status == "completed"
    if expected.state is not None:
        assert step.state == expected.state
    if expected.parent_trace_id is not None:
        assert step.parent_trace_id == expected.parent_trace_id
    counted = agentsession.get_stats().get("proxy.header_problems", 0) - problems_before
    assert counted >= len(expected.problems)
    assert ("x-traceforge-warning" in answer_headers) == (counted > 0)


def _forwardable(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers the upstream should get as sent: the last value of each name."""
    hop_by_hop = {
        token.strip().decode("latin-1").lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    kept: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name in NOT_FORWARDED or name in hop_by_hop or name.startswith("x-traceforge-"):
            continue
        kept[name] = raw_value.decode("latin-1")
    return kept


# -- the real subprocess, raw bytes on the socket -----------------------------------------------


def _raw_post(proxy: ProxyProcess, extra: bytes) -> tuple[int, dict[str, str], bytes]:
    body = BODY.encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, content


raw_values = st.one_of(
    st.binary(max_size=40).filter(lambda value: b"\n" not in value),
    st.sampled_from(
        [
            b"a\rX-Injected: 1",  # a bare CR: a server taking it as a line end would inject
            b"a\x00b",
            b"\xff\xfe",
            b"caf\xc3\xa9",
            b"x" * 10_000,
            b"9" * 5000,
        ]
    ),
)


@settings(max_examples=25, deadline=None)
@example(name=b"X-TraceForge-Session-ID", value=b"a\rX-Injected: 1")
@example(name=b"X-TraceForge-Step-Index", value=b"18446744073709551616")
@example(name=b"X-TraceForge-State", value=b"{\xff}")
@given(
    name=st.sampled_from([b"X-TraceForge-" + n for n in (b"Session-ID", b"Step-Index", b"State")]),
    value=raw_values,
)
def test_raw_header_bytes_get_the_upstreams_answer_or_a_clear_400(
    proxy: ProxyProcess, upstream: FakeOpenAIServer, name: bytes, value: bytes
) -> None:
    """Over a real socket, any bytes (no LF) in a session header get the upstream's 200 after
    exactly one upstream call, or the HTTP server's 400 after none; never a 500, and the
    upstream never sees a session header or one that was not sent."""
    before = len(upstream.requests)
    status, headers, content = _raw_post(proxy, name + b": " + value + b"\r\n")
    assert status in (200, 400), content
    assert len(upstream.requests) == before + (status == 200)
    if status == 200:
        assert json.loads(content)["object"] == "chat.completion"
        assert "x-traceforge-session-id" in headers
        received = upstream.requests[-1].headers
        assert set(received) <= {"content-type"} | SET_BY_HTTPX, received
