"""Load: 200 sessions of 10 chat calls each, sent at once through the proxy subprocess. Every
call reaches the upstream once and is stored once, in its own session, indexes gap-free."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

import httpx
from proxy_harness import ProxyProcess

from agentsession import MemoryBackend, SessionTracker, SQLiteBackend
from agentsession.testing import FakeOpenAIServer

SESSIONS = 200
TURNS = 10
CONNECTIONS = 50
"""Requests on the wire at once (the client's pool); all SESSIONS conversations are under way
together. More connections only make the in-process fake upstream's threads fight over the
GIL: 200 take this machine about 30 s instead of 8."""


def question(n: int, turn: int) -> str:
    return f"session {n} turn {turn}"


async def test_two_hundred_sessions_at_once(
    proxy: ProxyProcess, upstream: FakeOpenAIServer
) -> None:
    """Even sessions send a tracker's headers (their step index included); odd ones send only
    their session id and the proxy numbers their calls in arrival order. Every call reaches the
    upstream once; the proxy's SQLite file holds each session's calls in turn order."""
    ids = [f"proxy-load-{n:04d}" for n in range(SESSIONS)]

    async def converse(client: httpx.AsyncClient, n: int) -> None:
        tracker = SessionTracker(ids[n], backend=MemoryBackend())
        for turn in range(TURNS):
            if n % 2 == 0:
                headers = tracker.get_headers()
                tracker.next_step()
            else:
                headers = {"X-TraceForge-Session-ID": ids[n]}
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": question(n, turn)}],
            }
            response = await client.post("/chat/completions", json=body, headers=headers)
            assert response.status_code == 200, response.text

    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=proxy.base_url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(converse(client, n) for n in range(SESSIONS)))

    sent = Counter(
        request.json["messages"][0]["content"]
        for request in upstream.requests
        if request.path == "/v1/chat/completions"
    )
    expected = [question(n, turn) for n in range(SESSIONS) for turn in range(TURNS)]
    assert sent == Counter(expected)
    for n, sid in enumerate(ids):
        steps = proxy.steps(sid, TURNS)
        assert [s.step_index for s in steps] == list(range(TURNS)), sid
        assert [s.input for s in steps] == [
            [{"role": "user", "content": question(n, turn)}] for turn in range(TURNS)
        ], sid
        assert {s.status for s in steps} == {"completed"}, sid
    # Read once every step is there (the proxy writes in the background).
    reader = SQLiteBackend(proxy.db_path)
    try:
        sessions = reader.list_sessions(limit=SESSIONS + 1).sessions
    finally:
        reader.close()
    assert {s.session_id: s.total_steps for s in sessions} == dict.fromkeys(ids, TURNS)
    # Drops, faults and header problems would each be logged once; the start-up line is alone.
    assert proxy.log().count("agentsession") == 1, proxy.log()


def test_an_idle_client_connection_outlives_five_seconds(proxy: ProxyProcess) -> None:
    """Client pools (httpx, the OpenAI SDK) reuse a connection idle for up to 5 s. A proxy that
    closed it at 5 s, uvicorn's default, made a request sent just then fail with a reset (the
    load test above, run over 200 connections, lost 5 to 22 of its 2,000 calls that way)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5.0) as connection:
        for wait_s in (5.5, 0.0):
            connection.sendall(request)
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                chunk = connection.recv(4096)
                assert chunk, f"the proxy closed the connection: {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(wait_s)
