"""Steps recorded from LlamaIndex read back from a real SQLite file, through the background
writer as in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool
from llamaindex_scripted import Reply, ScriptedLLM

import agentsession
from agentsession import SQLiteBackend, using_session
from agentsession_llamaindex import SessionSpanHandler

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")


async def test_rag_and_agent_session_read_back_from_sqlite(
    handler: SessionSpanHandler, tmp_path: Path
) -> None:
    """A query then an agent run in one session: four steps, tool calls and links, in SQLite."""
    database = tmp_path / "sessions.db"
    agentsession.set_default_backend(f"sqlite:///{database}")
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is the capital of France.")],
        embed_model=MockEmbedding(embed_dim=8),
    )
    engine = index.as_query_engine(llm=MockLLM(max_tokens=2))

    async def lookup(question: str) -> str:
        """Answer from the documents."""
        return str(await engine.aquery(question))

    llm = ScriptedLLM(
        [Reply("", tool_calls=[("lookup", {"question": "capital?"})]), Reply("Paris.")],
        model="agent-model",
    )
    tool = FunctionTool.from_defaults(async_fn=lookup, name="lookup")
    agent = FunctionAgent(name="geo", description="geo", tools=[tool], llm=llm)
    async with using_session("sqlite-conv", user_id="user-s"):
        engine.query("What is the capital of France?")
        await agent.run(user_msg="What is the capital of France?")
    assert agentsession.flush(5.0)

    store = SQLiteBackend(database)
    try:
        steps = store.list_steps("sqlite-conv")
        summary = store.get_session("sqlite-conv")
    finally:
        store.close()
    assert [s.step_index for s in steps] == [0, 1, 2, 3]
    assert [s.model for s in steps] == [None, "agent-model-2025", None, "agent-model-2025"]
    assert [len(s.tool_calls) for s in steps] == [2, 0, 2, 1]
    assert steps[0].tool_calls[1].name == "VectorIndexRetriever.retrieve"
    assert steps[2].parent_trace_id == steps[1].trace_id
    assert steps[3].tool_calls[0].output == "text text"
    assert all(s.user_id == "user-s" and s.framework == "llamaindex" for s in steps)
    assert summary is not None
    assert summary.total_steps == 4
    assert summary.total_tokens == 36  # the agent's two calls, 18 tokens each
