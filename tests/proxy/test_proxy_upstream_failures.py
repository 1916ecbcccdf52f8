"""An upstream that is down, hangs or fails: the client hears it, the step is failed, and the
proxy goes on serving."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from proxy_harness import READ_TIMEOUT_S, ProxyProcess, free_port

from agentsession.testing import FakeOpenAIServer, FakeReply

MESSAGES = [{"role": "user", "content": "hi"}]


def new_session_id() -> str:
    return f"failure-{uuid.uuid4().hex}"


def chat(client: openai.OpenAI, session_id: str, **options: object) -> object:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"X-TraceForge-Session-ID": session_id},
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def client(proxy: ProxyProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=proxy.base_url, api_key="sk-x", max_retries=0, timeout=10
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (429, openai.RateLimitError),
    ],
)
def test_an_upstream_error_status_reaches_the_client_and_fails_the_step(
    proxy: ProxyProcess,
    upstream: FakeOpenAIServer,
    client: openai.OpenAI,
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    """The upstream's status and error body pass through; the step records the message."""
    session_id = new_session_id()
    upstream.reply(FakeReply(status=status, error="the model exploded"))
    with pytest.raises(error, match="the model exploded") as raised:
        chat(client, session_id)
    assert raised.value.status_code == status
    assert raised.value.response.headers["x-traceforge-session-id"] == session_id
    (step,) = proxy.steps(session_id, 1)
    assert step.status == "failed"
    assert step.error == f"upstream HTTP {status}: the model exploded"
    assert step.metadata["http_status"] == status
    assert step.trace_id == raised.value.response.headers["x-traceforge-trace-id"]


def test_a_failing_streamed_call_is_a_failed_step(
    proxy: ProxyProcess, upstream: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """A stream request answered with a 500 fails at once, and so does its step."""
    session_id = new_session_id()
    upstream.reply(FakeReply(status=500, error="no stream today"))
    with pytest.raises(openai.InternalServerError, match="no stream today"):
        chat(client, session_id, stream=True)
    (step,) = proxy.steps(session_id, 1)
    assert (step.status, step.error) == ("failed", "upstream HTTP 500: no stream today")


def test_a_hanging_upstream_gets_a_504_after_the_read_timeout(
    proxy: ProxyProcess, upstream: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """An upstream slower than --read-timeout: 504 with an OpenAI error body, a failed step."""
    session_id = new_session_id()
    upstream.reply(FakeReply(delay_s=READ_TIMEOUT_S + 2))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as raised:
        chat(client, session_id)
    assert time.monotonic() - started < READ_TIMEOUT_S + 1.5
    assert raised.value.status_code == 504
    assert raised.value.response.json()["error"]["code"] == "upstream_timeout"
    (step,) = proxy.steps(session_id, 1)
    assert step.status == "failed"
    assert "did not answer in time" in (step.error or "")
    assert step.metadata["http_status"] == 504
    assert chat(client, session_id) is not None  # still serving


def test_an_upstream_that_is_down_gets_a_502_and_the_proxy_keeps_serving(
    tmp_path: Path,
) -> None:
    """Connection refused: 502 with an OpenAI error body and our headers, every time."""
    proxy = ProxyProcess(f"http://127.0.0.1:{free_port()}/v1", tmp_path / "p.db")
    try:
        session_id = new_session_id()
        with openai.OpenAI(
            base_url=proxy.base_url, api_key="sk-x", max_retries=0, timeout=10
        ) as client:
            for _ in range(2):
                with pytest.raises(openai.InternalServerError) as raised:
                    chat(client, session_id)
                assert raised.value.status_code == 502
                body = raised.value.response.json()
                assert body["error"]["code"] == "upstream_unavailable"
                assert raised.value.response.headers["x-traceforge-session-id"] == session_id
        assert httpx.get(f"{proxy.url}/healthz").status_code == 200
        steps = proxy.steps(session_id, 2)
        assert [s.step_index for s in steps] == [0, 1]
        assert {s.status for s in steps} == {"failed"}
        assert all("could not be reached" in (s.error or "") for s in steps)
    finally:
        assert proxy.stop() == 0, proxy.log()
