"""A real LlamaIndex OpenAI-compatible LLM against a 127.0.0.1 server: tokens and model from the
provider's response, streamed usage, and the session headers of each request naming the step
the adapter recorded for it (with instrument_http_client on as well)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from agentsession import Step, instrument_http_client, using_session
from agentsession.testing import FakeOpenAIServer, FakeReply
from agentsession_llamaindex import SessionSpanHandler

openai_like = pytest.importorskip("llama_index.llms.openai_like")

MESSAGES = [ChatMessage(role="user", content="Where is Paris?")]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(
        FakeReply("Paris is in France.", prompt_tokens=13, completion_tokens=5)
    ) as fake:
        yield fake


def make_llm(server: FakeOpenAIServer, **kwargs: Any) -> Any:
    return openai_like.OpenAILike(
        model="fake-model",
        api_base=server.base_url,
        api_key="sk-test-not-a-real-key",
        is_chat_model=True,
        max_retries=0,
        **kwargs,
    )


def test_openai_like_chat_step_and_request_headers_agree(
    handler: SessionSpanHandler, server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """Three chats: steps 0..2 with the server's token counts; each request's step header is
    the index of the step recorded for it (no index is used twice)."""
    llm = instrument_http_client(make_llm(server))
    with using_session("openai-headers") as session:
        for _ in range(3):
            assert llm.chat(MESSAGES).message.content == "Paris is in France."
    steps = steps_of(session.session_id)
    assert [s.step_index for s in steps] == [0, 1, 2]
    assert {(s.input_tokens, s.output_tokens, s.total_tokens) for s in steps} == {(13, 5, 18)}
    assert steps[0].model == "fake-model"
    assert steps[0].provider == "openai_like"
    sent = [request.headers["x-traceforge-step-index"] for request in server.requests]
    assert sent == ["0", "1", "2"]
    assert session.step_index == 3


async def test_openai_like_async_stream_with_usage(
    handler: SessionSpanHandler, server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """astream_chat with include_usage: one step, the streamed text, the final chunk's usage."""
    llm = make_llm(server, additional_kwargs={"stream_options": {"include_usage": True}})
    async with using_session("openai-stream") as session:
        stream = await llm.astream_chat(MESSAGES)
        chunks = [chunk async for chunk in stream]
    (step,) = steps_of(session.session_id)
    assert step.output["content"] == chunks[-1].message.content
    assert (step.input_tokens, step.output_tokens) == (13, 5)
    assert step.status == "completed"
