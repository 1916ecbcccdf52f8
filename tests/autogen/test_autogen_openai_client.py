"""AutoGen's real OpenAIChatCompletionClient against a fake OpenAI server on 127.0.0.1:
tool loops, streaming with usage, cancellation and upstream errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_core import CancellationToken
from autogen_scripts import API_KEY, MODEL_INFO, search_flights

from agentsession import SessionTracker, Step
from agentsession.testing import FakeOpenAIServer, FakeReply
from agentsession_autogen import SessionChatCompletionClient

openai_models = pytest.importorskip("autogen_ext.models.openai")


def openai_client(server: FakeOpenAIServer, **options: Any) -> Any:
    return openai_models.OpenAIChatCompletionClient(
        model="gpt-4o-mini-2024-07-18",
        base_url=server.base_url,
        api_key=API_KEY,
        max_retries=0,
        model_info=MODEL_INFO,
        **options,
    )


def search_call(call_id: str, destination: str) -> dict[str, Any]:
    arguments = json.dumps({"destination": destination})
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "search_flights", "arguments": arguments},
    }


async def until_requested(server: FakeOpenAIServer) -> None:
    """Wait until the server has the request: the model call, and so its step, is under way."""
    for _ in range(500):
        if server.requests:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the model was never called")


async def test_tool_loop_through_the_real_openai_client(
    server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """Model, provider, tokens from the response's usage, and the tool between the two calls."""
    server.reply(
        FakeReply(text="", tool_calls=[search_call("call_1", "Paris")], prompt_tokens=40),
        FakeReply(text="AF1481 is the one.", prompt_tokens=60, completion_tokens=9),
    )
    session = SessionTracker()
    model = SessionChatCompletionClient(openai_client(server), session)
    planner = AssistantAgent(
        "planner", model_client=model, tools=[search_flights], reflect_on_tool_use=True
    )
    result = await planner.run(task="Flights to Paris?")
    await model.close()
    assert result.messages[-1].content == "AF1481 is the one."
    first, second = steps_of(session.session_id)
    assert (first.model, first.provider, first.name) == (
        "gpt-4o-mini-2024-07-18",
        "openai",
        "planner",
    )
    assert (first.input_tokens, first.output_tokens) == (40, 7)
    assert (second.input_tokens, second.output_tokens) == (60, 9)
    assert first.metadata["finish_reason"] == "function_calls"
    assert [(c.name, c.input) for c in second.tool_calls] == [
        ("search_flights", {"destination": "Paris"})
    ]
    assert (second.cost_usd or 0) > 0  # gpt-4o-mini is in the price table


async def test_streaming_with_usage_through_the_real_openai_client(
    server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """create_stream() with include_usage: one step with the streamed text and its tokens."""
    session = SessionTracker()
    model = SessionChatCompletionClient(
        openai_client(server, stream_options={"include_usage": True}), session
    )
    planner = AssistantAgent("planner", model_client=model, model_client_stream=True)
    await planner.run(task="Say hello")
    await model.close()
    (step,) = steps_of(session.session_id)
    assert step.output == "Hello from the fake model."
    assert (step.input_tokens, step.output_tokens) == (11, 7)
    assert step.metadata["stream"] is True
    assert server.requests[-1].json["stream"] is True


async def test_cancellation_token_propagates_and_is_a_cancelled_step(
    server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """Cancelling the CancellationToken mid-call raises CancelledError; the step is cancelled."""
    server.reply(FakeReply(delay_s=1.0))
    session = SessionTracker()
    model = SessionChatCompletionClient(openai_client(server), session)
    planner = AssistantAgent("planner", model_client=model)
    token = CancellationToken()
    run = asyncio.ensure_future(planner.run(task="Slow answer please", cancellation_token=token))
    await until_requested(server)
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await model.close()
    (step,) = steps_of(session.session_id)
    assert step.status == "cancelled"
    assert step.name == "planner"


async def test_cancelling_the_task_is_a_cancelled_step(
    server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """Cancelling the asyncio task of a streaming run is recorded as a cancelled step."""
    server.reply(FakeReply(delay_s=1.0))
    session = SessionTracker()
    model = SessionChatCompletionClient(openai_client(server), session)
    planner = AssistantAgent("planner", model_client=model, model_client_stream=True)
    run = asyncio.ensure_future(planner.run(task="Slow answer please"))
    await until_requested(server)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await model.close()
    (step,) = steps_of(session.session_id)
    assert step.status == "cancelled"


async def test_upstream_error_propagates_unchanged_and_fails_the_step(
    server: FakeOpenAIServer, steps_of: Callable[[str], list[Step]]
) -> None:
    """An API error reaches the agent's caller as the openai exception, and the step failed."""
    import openai

    server.reply(FakeReply(status=500, error="upstream exploded"))
    session = SessionTracker()
    model = SessionChatCompletionClient(openai_client(server), session)
    with pytest.raises(openai.InternalServerError, match="upstream exploded"):
        await AssistantAgent("planner", model_client=model).run(task="hi")
    await model.close()
    (step,) = steps_of(session.session_id)
    assert step.status == "failed"
    assert "InternalServerError" in (step.error or "")
