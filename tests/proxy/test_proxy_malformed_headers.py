"""Malformed session headers never block the call: it is forwarded, recorded with the valid
parts, and the problem comes back in X-TraceForge-Warning (and in the log, once per kind)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest
from proxy_harness import ProxyProcess

from agentsession import SQLiteBackend
from agentsession.testing import FakeOpenAIServer

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
GOOD_STATE = '{"plan":"ok"}'
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,1000}")


def post(
    proxy: ProxyProcess, headers: dict[str, str] | list[tuple[bytes, bytes]]
) -> httpx.Response:
    return httpx.post(f"{proxy.base_url}/chat/completions", json=BODY, headers=headers, timeout=10)


def session_headers(session_id: str, **overrides: str) -> dict[str, str]:
    headers = {
        "X-TraceForge-Session-ID": session_id,
        "X-TraceForge-Step-Index": "4",
        "X-TraceForge-State": GOOD_STATE,
    }
    headers.update(overrides)
    return headers


@pytest.mark.parametrize(
    ("bad", "value"),
    [
        ("X-TraceForge-Step-Index", "three"),
        ("X-TraceForge-Step-Index", "-1"),
        ("X-TraceForge-Step-Index", "99999999999999999999"),
        ("X-TraceForge-State", "{not json"),
        ("X-TraceForge-State", "[1, 2]"),
        ("X-TraceForge-State", json.dumps({"notes": "x" * 11_000})),
        ("X-TraceForge-Parent-Trace-ID", "t" * 300),
        ("X-TraceForge-State", '{"plan":NaN}'),
        ("X-TraceForge-State", '{"plan":-Infinity}'),
        ("X-TraceForge-State", '{"plan":"\\ud800"}'),
    ],
    ids=[
        "index-word",
        "index-negative",
        "index-too-large",
        "state-not-json",
        "state-not-object",
        "state-over-limit",
        "parent-too-long",
        "state-nan",
        "state-infinity",
        "state-lone-surrogate",
    ],
)
def test_a_malformed_header_is_left_out_and_the_rest_recorded(
    proxy: ProxyProcess, upstream: FakeOpenAIServer, bad: str, value: str
) -> None:
    """The call reaches the upstream; its step keeps every valid header and lists the problem."""
    session_id = f"malformed-{uuid.uuid4().hex}"
    before = len(upstream.requests)
    response = post(proxy, session_headers(session_id, **{bad: value}))
    assert response.status_code == 200
    assert len(upstream.requests) == before + 1
    warning = response.headers["x-traceforge-warning"]
    assert _HEADER_VALUE.fullmatch(warning)
    assert warning.startswith(bad)
    (step,) = proxy.steps(session_id, 1)
    assert step.step_index == (0 if bad.endswith("Index") else 4)
    assert step.state == ({} if bad.endswith("State") else {"plan": "ok"})
    assert step.parent_trace_id is None
    assert step.status == "completed"
    assert step.metadata["header_problems"][0].startswith(bad)


def test_an_invalid_session_id_starts_a_new_session_with_the_rest(
    proxy: ProxyProcess, upstream: FakeOpenAIServer
) -> None:
    """An over-long session id is replaced by a new session that keeps index and state."""
    response = post(proxy, session_headers("s" * 300))
    assert response.status_code == 200
    assert response.headers["x-traceforge-warning"].startswith("X-TraceForge-Session-ID")
    new_id = response.headers["x-traceforge-session-id"]
    assert new_id != "s" * 300
    (step,) = proxy.steps(new_id, 1)
    assert (step.step_index, step.state) == (4, {"plan": "ok"})


def test_a_non_ascii_session_id_is_reported_in_plain_ascii(proxy: ProxyProcess) -> None:
    """A session id with a byte outside ASCII is refused; the warning itself stays ASCII."""
    response = post(
        proxy,
        [(b"X-TraceForge-Session-ID", "caf\u00e9-session".encode("latin-1"))],
    )
    assert response.status_code == 200
    warning = response.headers["x-traceforge-warning"]
    assert _HEADER_VALUE.fullmatch(warning)
    assert "printable US-ASCII" in warning


def test_many_problems_give_one_bounded_warning(proxy: ProxyProcess) -> None:
    """Every header wrong at once: one warning value, ASCII, no CR/LF, at most 1,000 chars."""
    response = post(
        proxy,
        {
            "X-TraceForge-Session-ID": "s" * 5_000,
            "X-TraceForge-Step-Index": "-" * 2_000,
            "X-TraceForge-State": "{" * 3_000,
            "X-TraceForge-Parent-Trace-ID": "p" * 2_000,
        },
    )
    assert response.status_code == 200
    warning = response.headers["x-traceforge-warning"]
    assert _HEADER_VALUE.fullmatch(warning)
    assert len(warning) <= 1000
    assert "\r" not in warning
    assert "\n" not in warning


def test_each_kind_of_problem_is_logged_once(proxy: ProxyProcess) -> None:
    """Repeated malformed indexes are all answered with a warning but logged only once."""
    session_id = f"malformed-{uuid.uuid4().hex}"
    for _ in range(3):
        response = post(proxy, session_headers(session_id, **{"X-TraceForge-Step-Index": "x"}))
        assert "x-traceforge-warning" in response.headers
    proxy.steps(session_id, 3)
    assert proxy.log().count("agentsession proxy: X-TraceForge-Step-Index:") == 1


def test_without_auto_ids_a_call_with_no_session_is_forwarded_unrecorded(
    upstream: FakeOpenAIServer, tmp_path: Path
) -> None:
    """--no-auto-session-id: no session header means forwarded, answered and not recorded."""
    proxy = ProxyProcess(upstream.base_url, tmp_path / "p.db", "--no-auto-session-id")
    try:
        anonymous = post(proxy, {})
        assert anonymous.status_code == 200
        assert "x-traceforge-session-id" not in anonymous.headers
        named = post(proxy, {"X-TraceForge-Session-ID": "named-session-0001"})
        assert named.headers["x-traceforge-next-step"] == "1"
    finally:
        assert proxy.stop() == 0, proxy.log()
    backend = SQLiteBackend(tmp_path / "p.db")
    try:
        assert [s.session_id for s in backend.list_sessions().sessions] == ["named-session-0001"]
    finally:
        backend.close()
