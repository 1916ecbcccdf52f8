"""Parent links: a nested agent's steps point at the outer LLM step whose tool call ran it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langchain_fakes import react_agent, reply, scripted

import agentsession_langchain
from agentsession import SessionTracker, Step, using_session
from agentsession_langchain import SessionCallbackHandler

pytest.importorskip("langgraph")

StepsOf = Callable[[str], list[Step]]


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


def outer_agent(research: Any) -> Any:
    """An agent that delegates to the ``research`` tool, then answers."""
    model = scripted(
        reply("", tool_calls=[{"name": "research", "args": {"question": "Paris weather?"}}]),
        reply("Pack sunglasses."),
    )
    return react_agent(model, [research])


def test_nested_agent_steps_link_to_the_calling_step(steps_of: StepsOf) -> None:
    """Steps of an agent run inside a tool carry parent_trace_id = the outer step that called it."""

    @tool
    def research(question: str, config: RunnableConfig) -> str:
        """Ask the research agent."""
        result = inner_agent().invoke({"messages": [("user", question)]}, config)
        return str(result["messages"][-1].content)

    with SessionTracker("lc-nested-0001") as session:
        handler = SessionCallbackHandler(session)
        result = outer_agent(research).invoke(
            {"messages": [("user", "What should I pack?")]}, {"callbacks": [handler]}
        )
    assert result["messages"][-1].content == "Pack sunglasses."
    outer_ask, inner_ask, inner_answer, outer_answer = steps_of("lc-nested-0001")
    assert outer_ask.parent_trace_id is None
    assert inner_ask.parent_trace_id == outer_ask.trace_id
    assert inner_answer.parent_trace_id == outer_ask.trace_id
    assert outer_answer.parent_trace_id is None
    assert [c.name for c in inner_answer.tool_calls] == ["get_weather"]
    assert [c.name for c in outer_answer.tool_calls] == ["research"]
    assert outer_answer.tool_calls[0].output == "Sunny in Paris."
    assert handler.open_runs == 0


def test_instrumented_nested_agent_in_the_same_session(steps_of: StepsOf) -> None:
    """With instrument() only, a nested agent's steps link to the calling step, also where
    LangGraph runs the nested graph on the manager the tool was given."""
    agentsession_langchain.instrument()

    @tool
    def research(question: str, config: RunnableConfig) -> str:
        """Ask the research agent."""
        result = inner_agent().invoke({"messages": [("user", question)]}, config)
        return str(result["messages"][-1].content)

    with using_session("lc-nested-0002"):
        outer_agent(research).invoke({"messages": [("user", "What should I pack?")]})
    outer_ask, inner_ask, inner_answer, outer_answer = steps_of("lc-nested-0002")
    assert (inner_ask.parent_trace_id, inner_answer.parent_trace_id) == (outer_ask.trace_id,) * 2
    assert (outer_ask.parent_trace_id, outer_answer.parent_trace_id) == (None, None)


def test_child_session_links_across_sessions(steps_of: StepsOf) -> None:
    """A tool that runs its agent in session.child() with its own handler: the sub-session's
    steps point at the outer step that called the tool."""
    children: list[SessionTracker] = []

    with SessionTracker("lc-parent-0001") as session:

        @tool
        def research(question: str) -> str:
            """Ask the research agent, in a session of its own."""
            with session.child() as child:
                children.append(child)
                handler = SessionCallbackHandler(child)
                result = inner_agent().invoke(
                    {"messages": [("user", question)]}, {"callbacks": [handler]}
                )
            return str(result["messages"][-1].content)

        outer_agent(research).invoke(
            {"messages": [("user", "What should I pack?")]},
            {"callbacks": [SessionCallbackHandler(session)]},
        )
    (child,) = children
    outer_ask, outer_answer = steps_of("lc-parent-0001")
    inner_steps = steps_of(child.session_id)
    assert [s.step_index for s in inner_steps] == [0, 1]
    assert {s.parent_trace_id for s in inner_steps} == {outer_ask.trace_id}
    assert child.parent_session_id == "lc-parent-0001"
    assert [c.name for c in outer_answer.tool_calls] == ["research"]


def test_instrumented_nested_agent_in_a_child_session(steps_of: StepsOf) -> None:
    """With instrument(), an agent run inside ``with session.child()`` records into the child,
    linked to the calling step, while the outer agent stays in its own session."""
    agentsession_langchain.instrument()
    children: list[SessionTracker] = []

    with using_session("lc-parent-0002") as session:

        @tool
        def research(question: str) -> str:
            """Ask the research agent, in a session of its own."""
            with session.child() as child:
                children.append(child)
                result = inner_agent().invoke({"messages": [("user", question)]})
            return str(result["messages"][-1].content)

        outer_agent(research).invoke({"messages": [("user", "What should I pack?")]})
    (child,) = children
    outer_ask, outer_answer = steps_of("lc-parent-0002")
    inner_steps = steps_of(child.session_id)
    assert len(inner_steps) == 2
    assert [c.name for c in outer_answer.tool_calls] == ["research"]
    assert {s.parent_trace_id for s in inner_steps} == {outer_ask.trace_id}
    instrumented = agentsession_langchain._instrumentor.handler
    assert instrumented is not None
    assert instrumented.open_runs == 0


def test_maps_are_empty_after_runs_that_failed() -> None:
    """Runs that raise release their entries too: nothing is kept between invocations."""

    @tool
    def explode(question: str) -> str:
        """Always fails."""
        raise ValueError("boom")

    model = scripted(reply("", tool_calls=[{"name": "explode", "args": {"question": "x"}}]))
    with SessionTracker("lc-parent-0003") as session:
        handler = SessionCallbackHandler(session)
        with pytest.raises(ValueError, match="boom"):
            react_agent(model, [explode]).invoke(
                {"messages": [("user", "go")]}, {"callbacks": [handler]}
            )
    assert handler.open_runs == 0


def test_runs_a_tool_starts_as_its_sibling_link_to_the_calling_step(steps_of: StepsOf) -> None:
    """langchain-core 0.3 hands a tool its parent's config: what the tool runs then looks like
    the tool's sibling. While the tool runs, such runs still link to the step that called it."""
    from uuid import uuid4

    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    def answer(text: str) -> LLMResult:
        return LLMResult(generations=[[ChatGeneration(message=AIMessage(text))]])

    with SessionTracker("lc-parent-0004") as session:
        handler = SessionCallbackHandler(session)
        graph, tools_node, tool_run, inner, inner_model = (uuid4() for _ in range(5))
        first_model, last_model = uuid4(), uuid4()
        handler.on_chain_start({}, {}, run_id=graph)
        handler.on_chat_model_start(
            {}, [[HumanMessage("go")]], run_id=first_model, parent_run_id=graph
        )
        handler.on_llm_end(answer("call research"), run_id=first_model)
        handler.on_chain_start({}, {}, run_id=tools_node, parent_run_id=graph)
        handler.on_tool_start({"name": "research"}, "q", run_id=tool_run, parent_run_id=tools_node)
        # The nested agent, reported under the tools node rather than under the tool:
        handler.on_chain_start({}, {}, run_id=inner, parent_run_id=tools_node)
        handler.on_chat_model_start(
            {}, [[HumanMessage("q")]], run_id=inner_model, parent_run_id=inner
        )
        handler.on_llm_end(answer("inner answer"), run_id=inner_model)
        handler.on_chain_end({}, run_id=inner)
        handler.on_tool_end("inner answer", run_id=tool_run)
        handler.on_chain_end({}, run_id=tools_node)
        handler.on_chat_model_start(
            {}, [[HumanMessage("done?")]], run_id=last_model, parent_run_id=graph
        )
        handler.on_llm_end(answer("done"), run_id=last_model)
        handler.on_chain_end({}, run_id=graph)
    outer_ask, inner_step, outer_answer = steps_of("lc-parent-0004")
    assert inner_step.parent_trace_id == outer_ask.trace_id
    assert outer_answer.parent_trace_id is None
    assert [c.name for c in outer_answer.tool_calls] == ["research"]
    assert handler.open_runs == 0
