"""Real OpenAI clients through the proxy subprocess, and the steps it stored in SQLite."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import openai
import pytest
from proxy_harness import ProxyProcess

from agentsession import MemoryBackend, SessionTracker
from agentsession.testing import FakeOpenAIServer

API_KEY = "sk-proxy-test-0d5c9e1f7a2b"
MESSAGES = [{"role": "user", "content": "Book a flight to Paris"}]
ANSWER = "Hello from the fake model."


def new_session_id() -> str:
    return f"proxy-test-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=API_KEY, max_retries=0, timeout=10)


def test_three_calls_record_steps_with_the_index_state_and_parent_they_carried(
    proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """Three chat calls with a tracker's headers become steps 0, 1, 2 with what each sent."""
    session = SessionTracker(backend=MemoryBackend())
    session.set_parent_trace_id("a" * 32)
    answers = []
    for turn in range(3):
        session.set_state("turn", turn)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=session.get_headers()
        )
        assert raw.parse().choices[0].message.content == ANSWER
        answers.append(raw.headers)
        session.next_step()

    steps = proxy.steps(session.session_id, 3)
    assert [s.step_index for s in steps] == [0, 1, 2]
    assert [s.state for s in steps] == [{"turn": 0}, {"turn": 1}, {"turn": 2}]
    assert {s.parent_trace_id for s in steps} == {"a" * 32}
    assert {(s.model, s.input_tokens, s.output_tokens, s.total_tokens) for s in steps} == {
        ("gpt-4o-mini", 11, 7, 18)
    }
    assert {(s.status, s.kind, s.name, s.framework) for s in steps} == {
        ("completed", "llm", "chat.completions", "proxy")
    }
    assert steps[0].input == MESSAGES
    assert steps[0].output == [{"role": "assistant", "content": ANSWER}]
    assert all(s.duration_ms > 0 for s in steps)
    assert [h["x-traceforge-session-id"] for h in answers] == [session.session_id] * 3
    assert [h["x-traceforge-trace-id"] for h in answers] == [s.trace_id for s in steps]
    assert [h["x-traceforge-next-step"] for h in answers] == ["1", "2", "3"]


async def test_concurrent_async_calls_without_an_index_get_unique_gap_free_steps(
    proxy: ProxyProcess,
) -> None:
    """Eight concurrent calls of one session that send no step index get steps 0 to 7."""
    session_id = new_session_id()
    async with openai.AsyncOpenAI(
        base_url=proxy.base_url,
        api_key=API_KEY,
        max_retries=0,
        timeout=10,
        default_headers={"X-TraceForge-Session-ID": session_id},
    ) as client:
        replies = await asyncio.gather(
            *(client.chat.completions.create(model="gpt-4o", messages=MESSAGES) for _ in range(8))
        )
    assert {r.choices[0].message.content for r in replies} == {ANSWER}
    steps = proxy.steps(session_id, 8)
    assert [s.step_index for s in steps] == list(range(8))
    assert {s.status for s in steps} == {"completed"}


def test_a_streamed_call_records_the_usage_of_its_final_chunk_and_its_text(
    proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """A stream with include_usage passes through whole; its step has the tokens and the text."""
    session_id = new_session_id()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-TraceForge-Session-ID": session_id},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 18
    (step,) = proxy.steps(session_id, 1)
    assert (step.input_tokens, step.output_tokens, step.total_tokens) == (11, 7, 18)
    assert step.output == ANSWER
    assert step.status == "completed"
    assert step.metadata["stream"] is True


def test_a_stream_without_usage_records_no_tokens(
    proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """A stream that reports no usage is recorded completed, its tokens unknown (not zero)."""
    session_id = new_session_id()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"X-TraceForge-Session-ID": session_id},
    )
    assert len(list(stream)) >= 3
    (step,) = proxy.steps(session_id, 1)
    assert (step.status, step.input_tokens, step.output_tokens) == ("completed", None, None)


def test_embeddings_are_recorded_as_embedding_steps_with_prompt_tokens(
    proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """An embeddings call records its input texts and prompt tokens, not the vectors."""
    session_id = new_session_id()
    result = client.embeddings.create(
        model="text-embedding-3-small",
        input=["Paris", "Rome"],
        extra_headers={"X-TraceForge-Session-ID": session_id},
    )
    assert len(result.data) == 2
    (step,) = proxy.steps(session_id, 1)
    assert (step.kind, step.name, step.model) == (
        "embedding",
        "embeddings",
        "text-embedding-3-small",
    )
    assert (step.input_tokens, step.output_tokens, step.total_tokens) == (11, None, 11)
    assert step.input == ["Paris", "Rome"]
    assert step.output is None


def test_text_completions_are_recorded_streamed_or_not(
    proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """Legacy completions record tokens from the body and from the stream's final chunk."""
    session_id = new_session_id()
    headers = {"X-TraceForge-Session-ID": session_id}
    whole = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hi", extra_headers=headers
    )
    assert whole.choices[0].text == ANSWER
    streamed = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say hi",
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == ANSWER
    steps = proxy.steps(session_id, 2)
    assert [(s.name, s.input_tokens, s.output_tokens) for s in steps] == [
        ("completions", 11, 7),
        ("completions", 11, 7),
    ]
    assert steps[0].input == "Say hi"
    assert steps[1].output == ANSWER


def test_the_responses_api_usage_shape_is_read(proxy: ProxyProcess, client: openai.OpenAI) -> None:
    """A Responses API call records input_tokens and output_tokens from its own usage shape."""
    session_id = new_session_id()
    response = client.responses.create(
        model="gpt-4o-mini", input="Say hi", extra_headers={"X-TraceForge-Session-ID": session_id}
    )
    assert response.output_text == ANSWER
    (step,) = proxy.steps(session_id, 1)
    assert (step.name, step.input_tokens, step.output_tokens, step.total_tokens) == (
        "responses",
        11,
        7,
        18,
    )
    assert step.input == "Say hi"


def test_session_headers_never_reach_the_upstream_and_authorization_does(
    proxy: ProxyProcess, upstream: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """The upstream sees the API key but none of the X-TraceForge headers (the state least)."""
    session = SessionTracker(backend=MemoryBackend())
    session.set_state("secret_plan", "do not tell the provider")
    session.set_parent_trace_id("b" * 32)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=session.get_headers()
    )
    received = upstream.requests[-1].headers
    assert received["authorization"] == f"Bearer {API_KEY}"
    assert [name for name in received if name.startswith("x-traceforge")] == []
    assert "do not tell" not in repr(received)
    (step,) = proxy.steps(session.session_id, 1)
    assert step.state == {"secret_plan": "do not tell the provider"}


def test_hop_by_hop_headers_are_not_forwarded(
    proxy: ProxyProcess, upstream: FakeOpenAIServer
) -> None:
    """Connection-scoped headers, and those the Connection header names, stop at the proxy."""
    response = httpx.post(
        f"{proxy.base_url}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={
            "Connection": "keep-alive, X-Per-Hop",
            "X-Per-Hop": "1",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "X-End-To-End": "kept",
        },
    )
    assert response.status_code == 200
    received = upstream.requests[-1].headers
    assert received["x-end-to-end"] == "kept"
    assert "x-per-hop" not in received
    assert "proxy-authorization" not in received


def test_the_api_key_is_never_stored(proxy: ProxyProcess, client: openai.OpenAI) -> None:
    """After recorded calls, no file of the SQLite store contains the Authorization value."""
    session_id = new_session_id()
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"X-TraceForge-Session-ID": session_id},
    )
    proxy.steps(session_id, 1)
    files = list(proxy.db_path.parent.glob(f"{proxy.db_path.name}*"))
    assert proxy.db_path in files
    for path in files:
        assert API_KEY.encode() not in path.read_bytes(), path


def test_a_call_without_a_session_gets_one_that_the_next_call_continues(
    proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """No session header: a new session id comes back, and sending it continues at step 1."""
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    session_id = first.headers["x-traceforge-session-id"]
    assert first.headers["x-traceforge-next-step"] == "1"
    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"X-TraceForge-Session-ID": session_id}
    )
    assert second.headers["x-traceforge-next-step"] == "2"
    assert [s.step_index for s in proxy.steps(session_id, 2)] == [0, 1]


def test_headers_computed_once_still_give_one_step_per_call(
    proxy: ProxyProcess, client: openai.OpenAI
) -> None:
    """The same step index sent three times records steps 0, 1, 2 and says why in a warning."""
    session = SessionTracker(backend=MemoryBackend())
    headers = session.get_headers()  # step 0, never recomputed: the classic default_headers slip
    warnings = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=headers
        )
        warnings.append(raw.headers.get("x-traceforge-warning"))
    assert warnings[0] is None
    assert all("already recorded" in (w or "") for w in warnings[1:])
    steps = proxy.steps(session.session_id, 3)
    assert [s.step_index for s in steps] == [0, 1, 2]
    assert "header_problems" in steps[2].metadata


def test_other_v1_paths_pass_through_unrecorded(
    proxy: ProxyProcess, upstream: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    """GET /v1/models reaches the upstream with its query, is answered, and takes no step."""
    session_id = new_session_id()
    raw = client.models.with_raw_response.list(
        extra_headers={"X-TraceForge-Session-ID": session_id}, extra_query={"limit": "2"}
    )
    assert [m.id for m in raw.parse()] == ["fake-model"]
    assert "x-traceforge-trace-id" not in raw.headers
    assert upstream.requests[-1].path == "/v1/models?limit=2"
    assert "x-traceforge-session-id" not in upstream.requests[-1].headers
    client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"X-TraceForge-Session-ID": session_id}
    )
    (step,) = proxy.steps(session_id, 1)  # the chat call is the session's first and only step
    assert (step.step_index, step.name) == (0, "chat.completions")


def test_paths_outside_v1_get_an_openai_shaped_404(proxy: ProxyProcess) -> None:
    """The proxy answers only /v1/*: other paths get a 404 in OpenAI's error shape."""
    response = httpx.post(f"{proxy.url}/chat/completions", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
