"""LangGraph: a graph with a checkpointer and a thread_id is one session across turns."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.tools import tool
from langchain_fakes import react_agent, reply, scripted

import agentsession_langchain
from agentsession import Step
from agentsession_langchain import SessionCallbackHandler

MemorySaver = pytest.importorskip("langgraph.checkpoint.memory").MemorySaver

StepsOf = Callable[[str], list[Step]]


@tool
def lookup_order(order_id: str) -> str:
    """The status of an order."""
    return f"order {order_id} ships tomorrow"


def three_turn_agent() -> Any:
    """Turn 1 answers, turn 2 looks an order up then answers, turn 3 answers."""
    model = scripted(
        reply("Hello! How can I help?"),
        reply("", tool_calls=[{"name": "lookup_order", "args": {"order_id": "A-17"}}]),
        reply("Order A-17 ships tomorrow."),
        reply("You're welcome."),
    )
    return react_agent(model, [lookup_order], checkpointer=MemorySaver())


TURNS = ("Hi", "Where is order A-17?", "Thanks!")


def test_thread_id_turns_are_one_session(steps_of: StepsOf) -> None:
    """Three turns on one thread_id: one session, steps 0..3, each turn after the one before."""
    agent = three_turn_agent()
    handler = SessionCallbackHandler()
    config: dict[str, Any] = {
        "callbacks": [handler],
        "configurable": {"thread_id": "lc-thread-0001"},
    }
    for turn in TURNS:
        agent.invoke({"messages": [("user", turn)]}, config)
    steps = steps_of("lc-thread-0001")
    assert [s.step_index for s in steps] == [0, 1, 2, 3]
    assert [s.output["content"] for s in steps] == [
        "Hello! How can I help?",
        "",
        "Order A-17 ships tomorrow.",
        "You're welcome.",
    ]
    # The checkpointer gives each turn the whole conversation: turn 3 sees turns 1 and 2.
    assert [m["content"] for m in steps[3].input if m["role"] == "user"] == list(TURNS)
    assert [c.name for c in steps[2].tool_calls] == ["lookup_order"]
    assert all(a.ended_at <= b.started_at for a, b in itertools.pairwise(steps))
    assert handler.open_runs == 0


def test_instrumented_graph_uses_the_thread_id(steps_of: StepsOf) -> None:
    """With instrument() and no callbacks, the thread_id still names the session."""
    agentsession_langchain.instrument()
    agent = three_turn_agent()
    for turn in TURNS:
        agent.invoke(
            {"messages": [("user", turn)]}, {"configurable": {"thread_id": "lc-thread-0002"}}
        )
    assert [s.step_index for s in steps_of("lc-thread-0002")] == [0, 1, 2, 3]


async def test_async_turns_continue_the_session(steps_of: StepsOf) -> None:
    """ainvoke turns on one thread_id continue the same session."""
    agent = three_turn_agent()
    config: dict[str, Any] = {
        "callbacks": [SessionCallbackHandler()],
        "configurable": {"thread_id": "lc-thread-0003"},
    }
    for turn in TURNS:
        await agent.ainvoke({"messages": [("user", turn)]}, config)
    assert [s.step_index for s in steps_of("lc-thread-0003")] == [0, 1, 2, 3]


def test_two_threads_are_two_sessions(steps_of: StepsOf) -> None:
    """Different thread ids keep their own sessions and counters."""
    agentsession_langchain.instrument()
    for thread_id in ("lc-thread-0004", "lc-thread-0005"):
        agent = react_agent(scripted("first", "second"), [lookup_order], MemorySaver())
        for turn in ("a", "b"):
            agent.invoke({"messages": [("user", turn)]}, {"configurable": {"thread_id": thread_id}})
    assert [s.step_index for s in steps_of("lc-thread-0004")] == [0, 1]
    assert [s.step_index for s in steps_of("lc-thread-0005")] == [0, 1]
