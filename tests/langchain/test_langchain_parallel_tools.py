"""Runs beside a tool against runs inside it: only what a tool starts links to its calling step,
also when several tools run at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.runnables import RunnableConfig, RunnableLambda, RunnableParallel
from langchain_core.tools import tool
from langchain_fakes import react_agent, reply, scripted

from agentsession import SessionTracker, Step
from agentsession_langchain import SessionCallbackHandler

pytest.importorskip("langgraph")

StepsOf = Callable[[str], list[Step]]
WAIT = 5.0


class Gate(BaseCallbackHandler):
    """Holds back the start of one tool or of every model run until ``until`` is set: puts runs
    that LangChain starts at once in a fixed order. Listed before the handler under test."""

    run_inline = True

    def __init__(self, until: threading.Event, *, tool: str = "", done: Any = None) -> None:
        self.until, self.tool, self.done = until, tool, done

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        if self.tool and serialized.get("name") == self.tool:
            self.until.wait(WAIT)

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, **kw: Any) -> None:
        if not self.tool:
            self.until.wait(WAIT)

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        if self.done is not None:
            self.done.set()


class AsyncGate(AsyncCallbackHandler):
    """:class:`Gate` for async runs: awaits ``until`` on the event loop."""

    run_inline = True

    def __init__(self, until: asyncio.Event, *, tool: str = "", done: Any = None) -> None:
        self.until, self.tool, self.done = until, tool, done

    async def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, **kwargs: Any
    ) -> None:
        if self.tool and serialized.get("name") == self.tool:
            await asyncio.wait_for(self.until.wait(), WAIT)

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, **kwargs: Any
    ) -> None:
        if not self.tool:
            await asyncio.wait_for(self.until.wait(), WAIT)

    async def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        if self.done is not None:
            self.done.set()


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def inner_agent() -> Any:
    """An agent that looks the weather up, then answers."""
    model = scripted(
        reply("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}}]),
        reply("Sunny in Paris."),
    )
    return react_agent(model, [get_weather])


def outer_agent(*tools: Any) -> Any:
    """An agent that calls all ``tools`` at once (one message, two tool calls), then answers."""
    calls = [
        {"name": t.name, "args": {"question": "Paris weather?"}, "id": f"call_{t.name}"}
        for t in tools
    ]
    model = scripted(reply("", tool_calls=calls), reply("Pack sunglasses."))
    return react_agent(model, list(tools))


def beside(kind: str) -> Any:
    """A model run beside a tool: the branch itself, or the model after a lambda."""
    model = scripted(reply("beside"))
    return model if kind == "model" else RunnableLambda(lambda text: text) | model


def assert_tool_links(steps: list[Step]) -> None:
    """The outer step, each nested agent's two steps (first, then second), the outer answer."""
    outer_ask, *inner, outer_answer = steps
    assert len(inner) == 4
    assert {s.parent_trace_id for s in inner} == {outer_ask.trace_id}
    assert (outer_ask.parent_trace_id, outer_answer.parent_trace_id) == (None, None)
    # Each call recorded once. Which step holds "first" is the core's rule (a session's next
    # step): here the second agent's first step, as "first" ended before it began.
    calls = sorted(c.name for s in steps for c in s.tool_calls)
    assert calls == ["first", "get_weather", "get_weather", "second"]


@pytest.mark.parametrize("kind", ["model", "lambda_then_model"])
def test_model_beside_a_tool_does_not_link_to_the_latest_step(steps_of: StepsOf, kind: str) -> None:
    """RunnableParallel(t=tool, m=model): the model is the tool's sibling, not its child, so it
    keeps no parent, not the session's latest step."""
    tool_started, model_done = threading.Event(), threading.Event()

    @tool
    def slow(question: str) -> str:
        """Answers once the model beside it has."""
        tool_started.set()
        model_done.wait(WAIT)
        return "slow answer"

    with SessionTracker("lc-beside-0001") as session:
        handler = SessionCallbackHandler(session)
        scripted(reply("earlier")).invoke("earlier", {"callbacks": [handler]})
        gate = Gate(tool_started, done=model_done)
        result = RunnableParallel(t=slow, m=beside(kind)).invoke(
            "q", {"callbacks": [gate, handler]}
        )
    assert result["t"] == "slow answer"
    _earlier, beside_step = steps_of("lc-beside-0001")
    assert beside_step.parent_trace_id is None
    assert [c.name for c in beside_step.tool_calls] == []
    assert handler.open_runs == 0


@pytest.mark.parametrize("kind", ["model", "lambda_then_model"])
async def test_async_model_beside_a_tool_does_not_link_to_the_latest_step(
    steps_of: StepsOf, kind: str
) -> None:
    """The same with ainvoke: branches run as tasks at once."""
    tool_started, model_done = asyncio.Event(), asyncio.Event()

    @tool
    async def slow(question: str) -> str:
        """Answers once the model beside it has."""
        tool_started.set()
        await asyncio.wait_for(model_done.wait(), WAIT)
        return "slow answer"

    with SessionTracker("lc-beside-0002") as session:
        handler = SessionCallbackHandler(session)
        await scripted(reply("earlier")).ainvoke("earlier", {"callbacks": [handler]})
        gate = AsyncGate(tool_started, done=model_done)
        result = await RunnableParallel(t=slow, m=beside(kind)).ainvoke(
            "q", {"callbacks": [gate, handler]}
        )
    assert result["t"] == "slow answer"
    _earlier, beside_step = steps_of("lc-beside-0002")
    assert beside_step.parent_trace_id is None
    assert handler.open_runs == 0


def test_parallel_tools_each_link_their_agent_to_the_calling_step(steps_of: StepsOf) -> None:
    """ToolNode runs two tools at once, each running an agent with the config it was given: every
    nested step links to the outer step that called the tools, also the steps of the tool that
    starts after the other's agent has run (and after the other tool ended)."""
    first_done = threading.Event()

    @tool
    def first(question: str, config: RunnableConfig) -> str:
        """Ask the first research agent."""
        result = inner_agent().invoke({"messages": [("user", question)]}, config)
        first_done.set()
        return str(result["messages"][-1].content)

    @tool
    def second(question: str, config: RunnableConfig) -> str:
        """Ask the second research agent."""
        result = inner_agent().invoke({"messages": [("user", question)]}, config)
        return str(result["messages"][-1].content)

    with SessionTracker("lc-parallel-0001") as session:
        handler = SessionCallbackHandler(session)
        result = outer_agent(first, second).invoke(
            {"messages": [("user", "What should I pack?")]},
            {"callbacks": [Gate(first_done, tool="second"), handler]},
        )
    assert result["messages"][-1].content == "Pack sunglasses."
    assert_tool_links(steps_of("lc-parallel-0001"))
    assert handler.open_runs == 0


async def test_async_parallel_tools_each_link_their_agent_to_the_calling_step(
    steps_of: StepsOf,
) -> None:
    """The same with ainvoke: ToolNode runs the tools as tasks at once."""
    first_done = asyncio.Event()

    @tool
    async def first(question: str, config: RunnableConfig) -> str:
        """Ask the first research agent."""
        result = await inner_agent().ainvoke({"messages": [("user", question)]}, config)
        first_done.set()
        return str(result["messages"][-1].content)

    @tool
    async def second(question: str, config: RunnableConfig) -> str:
        """Ask the second research agent."""
        result = await inner_agent().ainvoke({"messages": [("user", question)]}, config)
        return str(result["messages"][-1].content)

    with SessionTracker("lc-parallel-0002") as session:
        handler = SessionCallbackHandler(session)
        result = await outer_agent(first, second).ainvoke(
            {"messages": [("user", "What should I pack?")]},
            {"callbacks": [AsyncGate(first_done, tool="second"), handler]},
        )
    assert result["messages"][-1].content == "Pack sunglasses."
    assert_tool_links(steps_of("lc-parallel-0002"))
    assert handler.open_runs == 0
