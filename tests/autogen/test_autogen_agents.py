"""A single AssistantAgent: its model calls, tool results between them, streaming, capture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ModelClientStreamingChunkEvent
from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    UserMessage,
)
from autogen_scripts import (
    answer,
    book_flight,
    names,
    replay,
    search_flights,
    tool_call,
    tool_calls,
)

from agentsession import SessionTracker, Step
from agentsession_autogen import SessionChatCompletionClient


def agent(model: ChatCompletionClient, **options: Any) -> AssistantAgent:
    return AssistantAgent(
        "planner", model_client=model, tools=[search_flights, book_flight], **options
    )


async def test_agent_answering_in_text_is_one_step(steps_of: Callable[[str], list[Step]]) -> None:
    """An agent that answers directly records one step named after the agent."""
    session = SessionTracker()
    model = SessionChatCompletionClient(replay(answer("Paris is sunny.")), session)
    result = await agent(model, system_message="You plan trips.").run(task="Weather in Paris?")
    assert result.messages[-1].content == "Paris is sunny."
    (step,) = steps_of(session.session_id)
    assert step.name == "planner"
    assert step.metadata["agent"] == "planner"
    assert "team_id" not in step.metadata  # an agent on its own is in no team
    assert step.metadata["tools"] == ["search_flights", "book_flight"]
    assert step.input == [
        {"role": "system", "content": "You plan trips."},
        {"role": "user", "source": "user", "content": "Weather in Paris?"},
    ]
    assert (step.input_tokens, step.output_tokens) == (30, 8)


async def test_tool_result_goes_into_the_next_steps_tool_calls(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """reflect_on_tool_use: the tool's name, arguments and result are listed on the reflection."""
    session = SessionTracker()
    model = SessionChatCompletionClient(
        replay(tool_call("search_flights", "call-1", destination="Paris"), answer("AF1481.")),
        session,
    )
    await agent(model, reflect_on_tool_use=True).run(task="Flights to Paris?")
    first, second = steps_of(session.session_id)
    assert first.tool_calls == ()
    assert first.metadata["finish_reason"] == "function_calls"
    assert first.output == [
        {"id": "call-1", "name": "search_flights", "arguments": {"destination": "Paris"}}
    ]
    (call,) = second.tool_calls
    assert (call.name, call.input, call.error) == ("search_flights", {"destination": "Paris"}, None)
    assert call.output == "AF1481 and KL1243 fly to Paris"
    assert names([first, second]) == ["planner", "planner"]
    assert second.parent_trace_id is None  # the agent's next step, not one nested in its tool


async def test_tool_loop_lists_each_round_once(steps_of: Callable[[str], list[Step]]) -> None:
    """A tool loop: every step lists the tools run since the previous one, never older ones."""
    if "max_tool_iterations" not in AssistantAgent.__init__.__code__.co_varnames:
        pytest.skip("AssistantAgent(max_tool_iterations=) arrived in autogen-agentchat 0.6")
    session = SessionTracker()
    model = SessionChatCompletionClient(
        replay(
            tool_calls(
                ("search_flights", "c1", {"destination": "Paris"}),
                ("search_flights", "c2", {"destination": "Lyon"}),
            ),
            tool_call("book_flight", "c3", flight="AF1481"),
            answer("Booked AF1481."),
        ),
        session,
    )
    await agent(model, max_tool_iterations=3).run(task="Book the cheapest to Paris or Lyon")
    steps = steps_of(session.session_id)
    assert [[(c.name, c.input) for c in s.tool_calls] for s in steps] == [
        [],
        [("search_flights", {"destination": "Paris"}), ("search_flights", {"destination": "Lyon"})],
        [("book_flight", {"flight": "AF1481"})],
    ]
    assert [s.step_index for s in steps] == [0, 1, 2]
    assert {s.parent_trace_id for s in steps} == {None}


async def test_tools_of_a_finished_turn_go_into_the_next_turn(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """Without reflection a turn ends on the tool: its result is listed on the next turn's step."""
    session = SessionTracker()
    model = SessionChatCompletionClient(
        replay(tool_call("search_flights", "call-1", destination="Paris"), answer("Done.")),
        session,
    )
    planner = agent(model)
    await planner.run(task="Flights to Paris?")
    await planner.run(task="Thanks, which is cheapest?")
    _, second = steps_of(session.session_id)
    assert [c.name for c in second.tool_calls] == ["search_flights"]


async def test_a_retried_call_does_not_list_the_same_tool_results_again(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """The same messages sent twice (a retry): their tool results go to the first step only."""
    history = [
        UserMessage(content="Flights to Paris?", source="user"),
        AssistantMessage(
            content=[
                FunctionCall(id="c1", name="search_flights", arguments='{"destination": "P"}')
            ],
            source="planner",
        ),
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(call_id="c1", name="search_flights", content="AF1481")]
        ),
    ]
    session = SessionTracker()
    model = SessionChatCompletionClient(replay("first", "retry"), session)
    await model.create(history)
    await model.create(history)
    first, retry = steps_of(session.session_id)
    assert [(c.name, c.input, c.output) for c in first.tool_calls] == [
        ("search_flights", {"destination": "P"}, "AF1481")
    ]
    assert retry.tool_calls == ()


async def test_a_failing_tool_is_recorded_with_its_error(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A tool that raises is listed with the error AutoGen reported to the model."""

    def cancel_booking(booking: str) -> str:
        """Cancel a booking."""
        raise ValueError(f"no booking {booking}")

    session = SessionTracker()
    model = SessionChatCompletionClient(
        replay(tool_call("cancel_booking", "call-9", booking="X1"), answer("Could not cancel.")),
        session,
    )
    planner = AssistantAgent(
        "planner", model_client=model, tools=[cancel_booking], reflect_on_tool_use=True
    )
    await planner.run(task="Cancel X1")
    (call,) = steps_of(session.session_id)[1].tool_calls
    assert call.name == "cancel_booking"
    assert "no booking X1" in (call.error or "")


async def test_streaming_agent_records_one_step_per_call(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """model_client_stream=True: chunks reach the agent's stream, one step per model call."""
    session = SessionTracker()
    model = SessionChatCompletionClient(
        replay(tool_call("search_flights", "call-1", destination="Paris"), "AF1481 it is"),
        session,
    )
    planner = agent(model, model_client_stream=True, reflect_on_tool_use=True)
    events = [event async for event in planner.run_stream(task="Flights to Paris?")]
    chunks = [e.content for e in events if isinstance(e, ModelClientStreamingChunkEvent)]
    assert "".join(chunks) == "AF1481 it is"
    first, second = steps_of(session.session_id)
    assert first.metadata["stream"] is True
    assert second.output == "AF1481 it is"
    assert [c.name for c in second.tool_calls] == ["search_flights"]
    assert names([first, second]) == ["planner", "planner"]


async def test_capture_off_keeps_the_facts_and_drops_the_content(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """capture_content=False: no input, output or tool data, but names, tokens and status stay."""
    session = SessionTracker(capture_content=False)
    model = SessionChatCompletionClient(
        replay(tool_call("search_flights", "call-1", destination="Paris"), answer("AF1481.")),
        session,
    )
    await agent(model, reflect_on_tool_use=True).run(task="Flights to Paris?")
    first, second = steps_of(session.session_id)
    assert (first.input, first.output, second.input, second.output) == (None, None, None, None)
    (call,) = second.tool_calls
    assert (call.name, call.input, call.output) == ("search_flights", None, None)
    assert (second.input_tokens, second.output_tokens, second.status) == (30, 8, "completed")


async def test_mask_sees_plain_data(steps_of: Callable[[str], list[Step]]) -> None:
    """A tracker's mask gets the messages as plain dicts and its result is what is stored."""
    seen: list[Any] = []

    def mask(value: Any) -> Any:
        seen.append(value)
        return "[masked]"

    session = SessionTracker(mask=mask)
    model = SessionChatCompletionClient(replay(answer("secret answer")), session)
    await agent(model).run(task="my passport is 123")
    (step,) = steps_of(session.session_id)
    assert (step.input, step.output) == ("[masked]", "[masked]")
    assert {"role": "user", "source": "user", "content": "my passport is 123"} in seen[0]
