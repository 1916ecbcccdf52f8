"""HTTP event hooks: session headers rewritten on every request of real httpx/httpx2 clients.

Each test talks HTTP to a FakeOpenAIServer on 127.0.0.1. httpx and httpx2 are not dependencies
of the core; the nox session that runs these tests installs both.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentsession
from agentsession import (
    SessionTracker,
    instrument_http_client,
    session_event_hooks,
    session_http_client,
    uninstrument_http_client,
    using_session,
)
from agentsession.testing import FakeOpenAIServer, FakeReply

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
PARENT = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(params=["httpx", "httpx2"])
def httpx_module(request: pytest.FixtureRequest) -> ModuleType:
    """The HTTP library under test: httpx (openai 2.x and most libraries) or httpx2 (openai 3.x)."""
    return pytest.importorskip(request.param)


@pytest.fixture(scope="module")
def running_server() -> Iterator[FakeOpenAIServer]:
    """One fake server for the module: stopping one takes half a second."""
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def server(running_server: FakeOpenAIServer) -> FakeOpenAIServer:
    """The module's fake server, with no request recorded yet."""
    running_server.requests.clear()
    return running_server


def _sent(server: FakeOpenAIServer, name: str) -> list[str | None]:
    return [request.headers.get(name.lower()) for request in server.requests]


def _chat(client: Any, server: FakeOpenAIServer) -> Any:
    response = client.post(f"{server.base_url}/chat/completions", json=BODY)
    assert response.status_code == 200
    return response


def test_sync_hooks_send_each_request_its_own_step(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """Three requests in one session carry steps 0, 1, 2, the state set before each, the parent."""
    tracker = SessionTracker("http-sync-1", parent_trace_id=PARENT)
    with httpx_module.Client(event_hooks=session_event_hooks()) as client, using_session(tracker):
        for turn in ("plan", "search", "answer"):
            tracker.set_state("turn", turn)
            _chat(client, server)
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "1", "2"]
    assert _sent(server, "X-TraceForge-State") == [
        '{"turn":"plan"}',
        '{"turn":"search"}',
        '{"turn":"answer"}',
    ]
    assert _sent(server, "X-TraceForge-Parent-Trace-ID") == [PARENT] * 3
    assert _sent(server, "X-TraceForge-Session-ID") == ["http-sync-1"] * 3
    assert tracker.step_index == 3


async def test_async_hooks_send_each_request_its_own_step(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """The async hooks do the same for an AsyncClient."""
    tracker = SessionTracker("http-async-1", parent_trace_id=PARENT)
    hooks = session_event_hooks(asynchronous=True)
    async with httpx_module.AsyncClient(event_hooks=hooks) as client, using_session(tracker):
        for turn in range(3):
            tracker.set_state("turn", turn)
            response = await client.post(f"{server.base_url}/chat/completions", json=BODY)
            assert response.status_code == 200
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "1", "2"]
    assert _sent(server, "X-TraceForge-State") == ['{"turn":0}', '{"turn":1}', '{"turn":2}']
    assert _sent(server, "X-TraceForge-Parent-Trace-ID") == [PARENT] * 3


def test_stale_default_headers_are_replaced(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """Headers computed once freeze step 0 and stale state; with the hooks each is current."""
    tracker = SessionTracker("http-stale-1")
    tracker.set_state("turn", "stale")
    frozen = tracker.get_headers()
    with httpx_module.Client(headers=frozen) as naive:
        for _ in range(3):
            _chat(naive, server)
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "0", "0"]
    server.requests.clear()
    tracker.clear_state()
    hooks = session_event_hooks(tracker)
    with httpx_module.Client(headers=frozen, event_hooks=hooks) as client:
        responses = [_chat(client, server) for _ in range(3)]
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "1", "2"]
    assert _sent(server, "X-TraceForge-State") == [None] * 3  # the stale state is gone too
    for response in responses:  # replaced, not added next to the stale copy
        assert len(response.request.headers.get_list("X-TraceForge-Step-Index")) == 1


def test_open_step_lends_its_index_state_and_parent(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """Inside ``with tracker.begin_step()`` every request sends that step, allocating nothing."""
    tracker = SessionTracker("http-step-1")
    tracker.set_state("phase", "inside")
    with httpx_module.Client(event_hooks=session_event_hooks()) as client, using_session(tracker):
        _chat(client, server)  # step 0, header-only
        with tracker.begin_step(name="plan", parent_trace_id=PARENT) as step:
            tracker.set_state("phase", "changed after the step began")
            _chat(client, server)
            _chat(client, server)  # e.g. a retry: the same step
        _chat(client, server)
    assert step.step_index == 1
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "1", "1", "2"]
    assert _sent(server, "X-TraceForge-State")[1:3] == ['{"phase":"inside"}'] * 2
    assert _sent(server, "X-TraceForge-Parent-Trace-ID")[1:3] == [PARENT] * 2


def test_response_trace_id_and_next_step_are_read_back(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """The proxy's trace id becomes latest_trace_id; its next step moves a header-only counter."""
    tracker = SessionTracker("http-readback-1")
    server.reply(
        FakeReply(headers={"X-TraceForge-Trace-ID": "trace-a", "X-TraceForge-Next-Step": "5"}),
        FakeReply(headers={"X-TraceForge-Trace-ID": "trace-b", "X-TraceForge-Next-Step": "2"}),
    )
    with httpx_module.Client(event_hooks=session_event_hooks(tracker)) as client:
        _chat(client, server)
        assert tracker.latest_trace_id == "trace-a"
        assert tracker.step_index == 5
        _chat(client, server)  # sent as step 5; the proxy's 2 would move it backwards
        assert tracker.latest_trace_id == "trace-b"
        assert tracker.step_index == 6
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "5"]
    assert tracker.child().parent_trace_id == "trace-b"


def test_next_step_is_ignored_when_steps_are_recorded_here(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """A tracker that records its own steps is not header-only: the proxy's next step is ignored."""
    tracker = SessionTracker("http-readback-2")
    with tracker.begin_step():
        pass
    server.reply(FakeReply(headers={"X-TraceForge-Trace-ID": "t-1", "X-TraceForge-Next-Step": "9"}))
    with httpx_module.Client(event_hooks=session_event_hooks(tracker)) as client:
        _chat(client, server)
    assert tracker.latest_trace_id == "t-1"
    assert tracker.step_index == 2


def test_malformed_response_headers_are_ignored_and_counted(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """An oversize trace id or a non-numeric next step never reaches the tracker or the caller."""
    tracker = SessionTracker("http-readback-3")
    server.reply(
        FakeReply(headers={"X-TraceForge-Trace-ID": "t" * 300}),
        FakeReply(headers={"X-TraceForge-Trace-ID": "t-ok", "X-TraceForge-Next-Step": "-4"}),
    )
    with httpx_module.Client(event_hooks=session_event_hooks(tracker)) as client:
        _chat(client, server)
        assert tracker.latest_trace_id is None
        _chat(client, server)
    assert tracker.latest_trace_id == "t-ok"
    assert tracker.step_index == 2
    assert agentsession.get_stats()["http.bad_response_headers"] == 1


def test_a_request_hook_fault_never_breaks_the_request(
    httpx_module: ModuleType,
    server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fault while building headers is counted and logged once; the requests still go out."""
    tracker = SessionTracker("http-fault-1")

    def broken(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise RuntimeError("header bug")

    monkeypatch.setattr(tracker, "get_headers", broken)
    caplog.set_level(logging.WARNING, logger="agentsession")
    with httpx_module.Client(event_hooks=session_event_hooks(tracker)) as client:
        _chat(client, server)
        _chat(client, server)
    assert len(server.requests) == 2
    assert agentsession.get_stats()["faults.http.request_hook"] == 2
    assert len([r for r in caplog.records if "http.request_hook" in r.getMessage()]) == 1


async def test_a_response_hook_fault_never_breaks_the_response(
    httpx_module: ModuleType, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault while reading the proxy's answer is counted; the caller gets its response."""
    tracker = SessionTracker("http-fault-2")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("read-back bug")

    monkeypatch.setattr(tracker, "observe_trace_id", broken)
    server.reply(FakeReply(text="still here", headers={"X-TraceForge-Trace-ID": "t-1"}))
    hooks = session_event_hooks(tracker, asynchronous=True)
    async with httpx_module.AsyncClient(event_hooks=hooks) as client:
        response = await client.post(f"{server.base_url}/chat/completions", json=BODY)
    assert response.json()["choices"][0]["message"]["content"] == "still here"
    assert agentsession.get_stats()["faults.http.response_hook"] == 1


def test_requests_outside_any_session_are_left_alone(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """With no session in force and none bound, the hook changes nothing."""
    with httpx_module.Client(
        headers={"X-TraceForge-Step-Index": "41"}, event_hooks=session_event_hooks()
    ) as client:
        _chat(client, server)
    assert _sent(server, "X-TraceForge-Step-Index") == ["41"]
    assert _sent(server, "X-TraceForge-Session-ID") == [None]


def test_reads_and_deletes_are_not_steps(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """A GET (a model list) is no LLM call: it is left alone and takes no step index."""
    tracker = SessionTracker("http-get-1")
    with httpx_module.Client(event_hooks=session_event_hooks(tracker)) as client:
        assert client.get(f"{server.base_url}/models").status_code == 200
        _chat(client, server)
    assert _sent(server, "X-TraceForge-Step-Index") == [None, "0"]
    assert tracker.step_index == 1


def test_a_bound_tracker_wins_over_the_session_in_force(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """session_event_hooks(tracker) labels every request for that tracker, in or out of sessions."""
    bound = SessionTracker("http-bound-1")
    with httpx_module.Client(event_hooks=session_event_hooks(bound)) as client:
        _chat(client, server)
        with using_session("http-other-1"):
            _chat(client, server)
    assert _sent(server, "X-TraceForge-Session-ID") == ["http-bound-1"] * 2
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "1"]


async def test_concurrent_requests_get_unique_gap_free_steps(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """Twenty requests in flight at once in one session take the steps 0 to 19, each once."""
    hooks = session_event_hooks(asynchronous=True)
    # Four connections: the hooks of all twenty run before any waits for one, and the fake
    # server's listen backlog (5) is not flooded.
    limits = httpx_module.Limits(max_connections=4)
    url = f"{server.base_url}/chat/completions"
    async with (
        httpx_module.AsyncClient(event_hooks=hooks, limits=limits) as client,
        using_session("http-gather-1"),
    ):
        await asyncio.gather(*(client.post(url, json=BODY) for _ in range(20)))
    indexes = sorted(int(value or -1) for value in _sent(server, "X-TraceForge-Step-Index"))
    assert indexes == list(range(20))


class _Redirector:
    """A 127.0.0.1 server answering every POST with a 307 to the same path on ``target``."""

    def __init__(self, target: str) -> None:
        handler = type("Handler", (_RedirectHandler,), {"target": target})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _Redirector:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _RedirectHandler(BaseHTTPRequestHandler):
    target: str

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_redirect_keeps_the_step_of_its_request(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """A redirected request is the same call: it keeps its step instead of taking the next one."""
    tracker = SessionTracker("http-redirect-1")
    hooks = session_event_hooks(tracker)
    target = f"http://127.0.0.1:{server.port}"
    with (
        _Redirector(target) as redirector,
        httpx_module.Client(event_hooks=hooks, follow_redirects=True) as client,
    ):
        for _ in range(2):
            response = client.post(f"{redirector.url}/v1/chat/completions", json=BODY)
            assert response.status_code == 200
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "1"]
    assert tracker.step_index == 2


def test_instrumenting_is_idempotent_and_reversible(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """instrument twice adds one hook pair, keeps the client's own hooks; uninstrument undoes it."""
    seen: list[str] = []

    def own_hook(request: Any) -> None:
        seen.append(request.headers.get("X-TraceForge-Step-Index", "none"))

    client = httpx_module.Client(event_hooks={"request": [own_hook]})
    first, other = SessionTracker("http-instr-1"), SessionTracker("http-instr-2")
    assert instrument_http_client(client, first) is client
    instrument_http_client(client, other)  # rebinds: replaces, never stacks
    assert len(client.event_hooks["request"]) == 2
    assert len(client.event_hooks["response"]) == 1
    assert client.event_hooks["request"][0] is own_hook
    with client:
        _chat(client, server)
        uninstrument_http_client(client)
        uninstrument_http_client(client)
        assert client.event_hooks == {"request": [own_hook], "response": []}
        _chat(client, server)
    assert _sent(server, "X-TraceForge-Session-ID") == ["http-instr-2", None]
    assert first.step_index == 0


async def test_instrumenting_an_async_client_installs_async_hooks(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """An AsyncClient gets awaitable hooks (a sync hook there would fail every request)."""
    async with httpx_module.AsyncClient() as client:
        instrument_http_client(client)
        async with using_session("http-instr-async-1"):
            for _ in range(2):
                await client.post(f"{server.base_url}/chat/completions", json=BODY)
    assert _sent(server, "X-TraceForge-Step-Index") == ["0", "1"]


def test_clients_are_found_inside_wrapper_objects(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """A client kept as ``_client`` (openai, AutoGen) or ``root_client`` (LangChain) is found."""

    class Wrapper:
        def __init__(self, inner: Any) -> None:
            self._client = inner

    class Framework:
        def __init__(self, inner: Any) -> None:
            self.root_client = Wrapper(inner)
            self.root_async_client = None

    http_client = httpx_module.Client()
    instrument_http_client(Framework(http_client))
    with http_client, using_session("http-wrapped-1"):
        _chat(http_client, server)
    assert _sent(server, "X-TraceForge-Step-Index") == ["0"]


def test_instrumenting_an_object_without_a_client_is_a_clear_error() -> None:
    """An object holding no httpx/httpx2 client raises TypeError saying what to do instead."""
    with pytest.raises(
        TypeError, match=r"found no httpx or httpx2 client in object .*http_client="
    ):
        instrument_http_client(object())


def test_session_http_client_builds_each_flavor_with_the_hooks(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """session_http_client(flavor=...) is a client of that library; given hooks run first."""
    order: list[str] = []
    flavor = httpx_module.__name__
    client = session_http_client(
        flavor=flavor, event_hooks={"request": [lambda request: order.append("own")]}, timeout=5.0
    )
    assert isinstance(client, httpx_module.Client)
    async_client = session_http_client(flavor=flavor, asynchronous=True)
    assert isinstance(async_client, httpx_module.AsyncClient)
    with client, using_session("http-built-1"):
        response = _chat(client, server)
    assert order == ["own"]
    assert response.request.headers["X-TraceForge-Step-Index"] == "0"
    with pytest.raises(ValueError, match="flavor must be 'httpx' or 'httpx2', got 'requests'"):
        session_http_client(flavor="requests")  # type: ignore[arg-type]


def test_other_dialects_are_rewritten_and_baggage_merged(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """Stale Helicone/LiteLLM headers are replaced; the app's own baggage members are kept."""
    tracker = SessionTracker(
        "http-dialects-1", user_id="user-1", header_dialects=("helicone", "litellm", "baggage")
    )
    frozen = {
        **SessionTracker(
            "http-dialects-stale", header_dialects=("helicone", "litellm")
        ).get_headers(),
        "baggage": "tenant=acme,session.id=http-dialects-stale",
    }
    with httpx_module.Client(headers=frozen, event_hooks=session_event_hooks(tracker)) as client:
        _chat(client, server)
    (request,) = server.requests
    assert request.headers["helicone-session-id"] == "http-dialects-1"
    assert request.headers["helicone-session-path"] == "/http-dialects-1"
    assert request.headers["x-litellm-session-id"] == "http-dialects-1"
    assert request.headers["baggage"] == "tenant=acme,session.id=http-dialects-1,user.id=user-1"
    assert "x-traceforge-step-index" not in request.headers  # traceforge was not asked for


def test_state_over_the_budget_is_truncated_on_the_wire(
    httpx_module: ModuleType, server: FakeOpenAIServer
) -> None:
    """The hook sends the state header cut to the budget, and the header naming what was cut."""
    tracker = SessionTracker("http-budget-1", header_budget_bytes=100)
    tracker.update_state({"doc": "d" * 500, "n": 1})
    with httpx_module.Client(event_hooks=session_event_hooks(tracker)) as client:
        _chat(client, server)
    (request,) = server.requests
    assert len(request.headers["x-traceforge-state"]) <= 100
    assert request.headers["x-traceforge-state-truncated"] == "doc"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    session_id=st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=199
    ).filter(lambda s: s == s.strip(" ")),
    user_id=st.none() | st.text(),
    session_name=st.none() | st.text(),
    state=st.dictionaries(st.text(min_size=1), st.text() | st.integers(), max_size=4),
)
def test_any_session_goes_out_on_the_wire(
    httpx_module: ModuleType,
    server: FakeOpenAIServer,
    session_id: str,
    user_id: str | None,
    session_name: str | None,
    state: dict[str, Any],
) -> None:
    """Whatever the ids, name and state, the HTTP library accepts every header the hook sets."""
    tracker = SessionTracker(
        session_id,
        user_id=user_id,
        metadata={"session_name": session_name},
        header_dialects=("traceforge", "helicone", "litellm", "baggage"),
        header_budget_bytes=300,
    )
    tracker.update_state(state)
    with httpx_module.Client(event_hooks=session_event_hooks(tracker)) as client:
        response = _chat(client, server)
    for name in ("X-TraceForge-Session-ID", "Helicone-Session-Id", "x-litellm-session-id"):
        assert response.request.headers[name] == session_id
    assert agentsession.get_stats().get("faults.http.request_hook", 0) == 0
