"""Agent workflows (FunctionAgent, ReActAgent): one step per LLM call, tool calls listed in the
next step, and steps inside a tool or a sub-agent linked to the step that called the tool."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool
from llamaindex_scripted import Reply, ScriptedLLM

from agentsession import Step, using_session
from agentsession_llamaindex import SessionSpanHandler

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")


def query_tool() -> FunctionTool:
    """A tool that runs its own query engine (and so its own LLM call)."""
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is the capital of France.")],
        embed_model=MockEmbedding(embed_dim=8),
    )
    engine = index.as_query_engine(llm=MockLLM(max_tokens=2))

    async def lookup(question: str) -> str:
        """Answer a question from the documents."""
        return str(await engine.aquery(question))

    return FunctionTool.from_defaults(async_fn=lookup, name="lookup")


def agent_llm() -> ScriptedLLM:
    return ScriptedLLM(
        [
            Reply("", tool_calls=[("lookup", {"question": "capital of France"})]),
            Reply("The capital of France is Paris."),
        ],
        model="agent-model",
    )


CORE_VERSION = tuple(int(part) for part in version("llama-index-core").split(".")[:3])
HAS_STREAMING_SWITCH = "streaming" in FunctionAgent.model_fields
"""Newer FunctionAgents take streaming=False; older ones (before 0.13.x) always stream."""


def function_agent(llm: ScriptedLLM, tools: list[FunctionTool], streaming: bool) -> FunctionAgent:
    options = {"streaming": streaming} if HAS_STREAMING_SWITCH else {}
    return FunctionAgent(
        name="geo", description="Answers geography questions.", tools=tools, llm=llm, **options
    )


@pytest.mark.parametrize(
    "streaming",
    [
        True,
        pytest.param(
            False,
            marks=pytest.mark.skipif(
                not HAS_STREAMING_SWITCH, reason="this FunctionAgent always streams"
            ),
        ),
    ],
    ids=["streaming", "not-streaming"],
)
async def test_function_agent_with_a_query_engine_tool(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]], streaming: bool
) -> None:
    """Agent call, the tool's query engine call, agent call: steps 0, 1, 2. The tool's step
    links to step 0 (it asked for the tool); the tool call itself is listed in step 2."""
    agent = function_agent(agent_llm(), [query_tool()], streaming)
    async with using_session("agent-geo") as session:
        result = await agent.run(user_msg="What is the capital of France?")
    assert "Paris" in str(result)
    first, inner, last = steps_of(session.session_id)
    assert [first.model, inner.model, last.model] == ["agent-model-2025", None, "agent-model-2025"]
    assert first.name == ("ScriptedLLM.astream_chat" if streaming else "ScriptedLLM.achat")
    assert first.output["tool_calls"][0]["name"] == "lookup"
    assert inner.parent_trace_id == first.trace_id
    assert [c.name for c in inner.tool_calls] == [
        "MockEmbedding.aget_query_embedding",
        "VectorIndexRetriever.aretrieve",
    ]
    assert first.parent_trace_id is None
    assert last.parent_trace_id is None
    (tool_call,) = last.tool_calls
    assert tool_call.name == "lookup"
    assert tool_call.input == {"question": "capital of France"}
    assert tool_call.output == "text text"
    assert tool_call.error is None
    assert tool_call.duration_ms is not None


@pytest.mark.skipif(
    CORE_VERSION < (0, 14, 22),
    reason="before llama-index-core 0.14.22 a sync tool runs in a thread without the context",
)
async def test_sync_tool_with_its_own_llm_call(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A plain (sync) tool that calls an LLM: its step is in the session, linked to step 0."""

    def summarize(text: str) -> str:
        """Summarize the text."""
        return str(MockLLM(max_tokens=2).complete(text))

    llm = ScriptedLLM([Reply("", tool_calls=[("summarize", {"text": "long"})]), Reply("ok")])
    agent = function_agent(llm, [FunctionTool.from_defaults(fn=summarize)], True)
    async with using_session("agent-sync-tool") as session:
        await agent.run(user_msg="Summarize this.")
    first, inner, last = steps_of(session.session_id)
    assert (inner.name, inner.parent_trace_id) == ("MockLLM.complete", first.trace_id)
    assert [c.name for c in last.tool_calls] == ["summarize"]


async def test_failing_tool_is_recorded_with_its_error(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A tool that raises: the agent carries on, the next step lists the call with the error."""

    def lookup(question: str) -> str:
        """Always fails."""
        raise LookupError(f"no answer for {question}")

    agent = function_agent(agent_llm(), [FunctionTool.from_defaults(fn=lookup)], True)
    async with using_session("agent-tool-error") as session:
        await agent.run(user_msg="What is the capital of France?")
    _, last = steps_of(session.session_id)
    (tool_call,) = last.tool_calls
    assert (tool_call.name, tool_call.error) == (
        "lookup",
        "LookupError: no answer for capital of France",
    )


async def test_sub_agent_steps_link_to_the_calling_step(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """A sub-agent run as a tool: its steps carry the trace id of the outer step that called it,
    and the outer agent's next step links to nothing (it is not inside the tool)."""
    researcher = function_agent(ScriptedLLM(["Paris."], model="sub-model"), [], streaming=False)

    async def ask_researcher(question: str) -> str:
        """Ask the research agent."""
        return str(await researcher.run(user_msg=question))

    outer_llm = ScriptedLLM(
        [Reply("", tool_calls=[("ask_researcher", {"question": "capital?"})]), Reply("Paris!")],
        model="outer-model",
    )
    tool = FunctionTool.from_defaults(async_fn=ask_researcher, name="ask_researcher")
    agent = function_agent(outer_llm, [tool], streaming=True)
    async with using_session("agent-sub") as session:
        await agent.run(user_msg="What is the capital of France?")
    outer_first, sub, outer_last = steps_of(session.session_id)
    assert (outer_first.model, sub.model, outer_last.model) == (
        "outer-model-2025",
        "sub-model-2025",
        "outer-model-2025",
    )
    assert sub.parent_trace_id == outer_first.trace_id
    assert outer_last.parent_trace_id is None
    assert [c.name for c in outer_last.tool_calls] == ["ask_researcher"]


async def test_react_agent_is_one_step_per_reasoning_turn(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """ReActAgent (text protocol): thought + action, then the answer: two steps, the tool call
    in the second."""

    def multiply(a: int, b: int) -> int:
        """Multiply two numbers."""
        return a * b

    llm = ScriptedLLM(
        [
            'Thought: I need to use a tool.\nAction: multiply\nAction Input: {"a": 6, "b": 7}',
            "Thought: I can answer without using any more tools.\nAnswer: 42",
        ]
    )
    agent = ReActAgent(name="calc", description="calc", tools=[multiply], llm=llm)
    async with using_session("agent-react") as session:
        result = await agent.run(user_msg="What is 6 times 7?")
    assert "42" in str(result)
    first, second = steps_of(session.session_id)
    assert "Action: multiply" in first.output["content"]
    (tool_call,) = second.tool_calls
    assert (tool_call.name, tool_call.input, tool_call.output) == (
        "multiply",
        {"a": 6, "b": 7},
        "42",
    )
