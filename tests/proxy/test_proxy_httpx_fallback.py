"""Without httpx2 the proxy forwards through plain httpx, and behaves the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openai
import pytest
from proxy_harness import READ_TIMEOUT_S, ProxyProcess

from agentsession.testing import FakeOpenAIServer, FakeReply

pytest.importorskip("httpx", reason="httpx is not installed")

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def httpx_proxy(
    upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    process = ProxyProcess(
        upstream.base_url,
        tmp_path_factory.mktemp("httpx") / "p.db",
        "--read-timeout",
        str(READ_TIMEOUT_S),
        hide_modules=("httpx2",),
    )
    yield process
    assert process.stop() == 0, process.log()


def test_calls_streams_and_failures_behave_the_same_over_httpx(
    httpx_proxy: ProxyProcess, upstream: FakeOpenAIServer
) -> None:
    """A call, a stream with usage, a 500 and a timeout are forwarded and recorded as usual."""
    session_id = f"httpx-{uuid.uuid4().hex}"
    headers = {"X-TraceForge-Session-ID": session_id}
    with openai.OpenAI(
        base_url=httpx_proxy.base_url, api_key="sk-x", max_retries=0, timeout=10
    ) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=headers)
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
        assert list(stream)[-1].usage is not None
        upstream.reply(FakeReply(status=500, error="down"), FakeReply(delay_s=READ_TIMEOUT_S + 2))
        with pytest.raises(openai.InternalServerError, match="down"):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=headers)
        with pytest.raises(openai.APIStatusError) as timed_out:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=headers)
        assert timed_out.value.status_code == 504
    steps = httpx_proxy.steps(session_id, 4)
    assert [(s.status, s.total_tokens) for s in steps] == [
        ("completed", 18),
        ("completed", 18),
        ("failed", None),
        ("failed", None),
    ]
    assert "(through httpx " in httpx_proxy.log()  # not httpx2
