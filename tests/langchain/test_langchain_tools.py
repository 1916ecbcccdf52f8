"""Tool and retriever calls between two LLM calls are listed in the next step's tool_calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import StructuredTool, tool
from langchain_fakes import react_agent, reply, scripted

from agentsession import SessionTracker, Step
from agentsession_langchain import SessionCallbackHandler

StepsOf = Callable[[str], list[Step]]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def failing_tool(city: str) -> str:
    """A weather service that is down."""
    raise ConnectionError(f"no weather service for {city}")


def agent_loop(model: Any, tools: dict[str, Any], question: str, config: Any) -> list[Any]:
    """A plain LangChain tool-calling loop: ask, run the tools asked for, ask again."""
    messages: list[BaseMessage] = [HumanMessage(question)]
    while True:
        answer = model.invoke(messages, config)
        messages.append(answer)
        if not answer.tool_calls:
            return messages
        for call in answer.tool_calls:
            messages.append(tools[call["name"]].invoke(call, config))


def test_tool_call_goes_into_the_next_step(steps_of: StepsOf) -> None:
    """model -> tool -> model: step 1 lists the tool's name, input, output and duration."""
    model = scripted(
        reply("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}}]),
        reply("It is sunny in Paris."),
    )
    with SessionTracker("lc-tool-0001") as session:
        handler = SessionCallbackHandler(session)
        config = {"callbacks": [handler]}
        messages = agent_loop(model, {"get_weather": get_weather}, "Weather?", config)
    assert messages[-1].content == "It is sunny in Paris."
    first, second = steps_of("lc-tool-0001")
    assert first.tool_calls == ()
    (call,) = second.tool_calls
    assert (call.name, call.input, call.output, call.error) == (
        "get_weather",
        {"city": "Paris"},
        "sunny in Paris",
        None,
    )
    assert call.duration_ms is not None
    assert call.duration_ms >= 0
    assert call.started_at is not None
    assert first.started_at <= call.started_at
    assert second.input[-1] == {
        "role": "tool",
        "content": "sunny in Paris",
        "tool_call_id": "call_0",
        "name": "get_weather",
    }
    assert handler.open_runs == 0


def test_two_tools_in_one_turn(steps_of: StepsOf) -> None:
    """Two tool calls asked at once are both listed, in the order they ran."""
    model = scripted(
        reply(
            "",
            tool_calls=[
                {"name": "get_weather", "args": {"city": "Paris"}},
                {"name": "get_weather", "args": {"city": "Rome"}},
            ],
        ),
        reply("Sunny in both."),
    )
    with SessionTracker("lc-tool-0002") as session:
        config = {"callbacks": [SessionCallbackHandler(session)]}
        agent_loop(model, {"get_weather": get_weather}, "Weather?", config)
    calls = steps_of("lc-tool-0002")[1].tool_calls
    assert [c.input for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]


def test_tool_error_is_recorded_and_propagates(steps_of: StepsOf) -> None:
    """A tool that raises: the caller gets the same exception, the next step lists the error."""
    broken = StructuredTool.from_function(failing_tool, name="get_weather")
    model = scripted(
        reply("", tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}]),
        reply("Sorry."),
    )
    with SessionTracker("lc-tool-0003") as session:
        handler = SessionCallbackHandler(session)
        config = {"callbacks": [handler]}
        answer = model.invoke("Weather?", config)
        with pytest.raises(ConnectionError, match="no weather service for Oslo"):
            broken.invoke(answer.tool_calls[0], config)
        model.invoke("never mind", config)
    (call,) = steps_of("lc-tool-0003")[1].tool_calls
    assert call.error == "ConnectionError: no weather service for Oslo"
    assert call.output is None
    assert handler.open_runs == 0


def test_tool_message_with_error_status_is_an_error(steps_of: StepsOf) -> None:
    """A ToolNode turning an exception into a ToolMessage(status="error") records the error."""
    pytest.importorskip("langgraph")
    broken = StructuredTool.from_function(failing_tool, name="get_weather")
    model = scripted(
        reply("", tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}]),
        reply("The service is down."),
    )
    with SessionTracker("lc-tool-0004") as session:
        react_agent(model, [broken], tool_errors=True).invoke(
            {"messages": [("user", "Weather?")]}, {"callbacks": [SessionCallbackHandler(session)]}
        )
    (call,) = steps_of("lc-tool-0004")[1].tool_calls
    assert call.error is not None
    assert "no weather service for Oslo" in call.error


def test_langgraph_agent_records_steps_and_tool_calls(steps_of: StepsOf) -> None:
    """A LangGraph tool-calling agent: two steps, the tool call in the second."""
    pytest.importorskip("langgraph")
    model = scripted(
        reply("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}}]),
        reply("It is sunny."),
    )
    with SessionTracker("lc-tool-0005") as session:
        handler = SessionCallbackHandler(session)
        result = react_agent(model, [get_weather]).invoke(
            {"messages": [("user", "Weather in Paris?")]}, {"callbacks": [handler]}
        )
    assert isinstance(result["messages"][-2], ToolMessage)
    steps = steps_of("lc-tool-0005")
    assert [s.step_index for s in steps] == [0, 1]
    assert [c.name for c in steps[1].tool_calls] == ["get_weather"]
    assert handler.open_runs == 0


class KeywordRetriever(BaseRetriever):
    """Finds the documents that contain the query."""

    documents: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [d for d in self.documents if query.lower() in d.page_content.lower()]


def test_retriever_call_is_listed_like_a_tool(steps_of: StepsOf) -> None:
    """A retrieval between two LLM calls is a tool call: the query in, the documents out."""
    retriever = KeywordRetriever(
        documents=[
            Document(page_content="Paris is in France.", metadata={"id": 1}),
            Document(page_content="Rome is in Italy.", metadata={"id": 2}),
        ]
    )
    model = scripted("Let me look that up.", "Paris is in France.")
    with SessionTracker("lc-retriever-0001") as session:
        config = {"callbacks": [SessionCallbackHandler(session)]}
        model.invoke("Where is Paris?", config)
        documents = retriever.invoke("paris", config)
        model.invoke(f"Context: {documents[0].page_content}", config)
    (call,) = steps_of("lc-retriever-0001")[1].tool_calls
    assert (call.name, call.input) == ("KeywordRetriever", "paris")
    assert call.output == [{"content": "Paris is in France.", "metadata": {"id": 1}}]
