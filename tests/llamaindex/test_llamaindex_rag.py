"""Query engines and chat engines over a real VectorStoreIndex: one step per LLM call, with the
retrievals and embeddings before it listed in its tool calls (node ids and scores only)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM

from agentsession import Step, using_session
from agentsession_llamaindex import SessionSpanHandler

DOCUMENTS = [
    Document(text="Paris is the capital of France.", doc_id="paris"),
    Document(text="Rome is the capital of Italy.", doc_id="rome"),
    Document(text="Berlin is the capital of Germany.", doc_id="berlin"),
]


@pytest.fixture
def index() -> VectorStoreIndex:
    """A real in-memory vector index over three documents, built outside any session."""
    return VectorStoreIndex.from_documents(DOCUMENTS, embed_model=MockEmbedding(embed_dim=8))


def tool_names(step: Step) -> list[str]:
    return [call.name for call in step.tool_calls]


def test_query_engine_is_one_step_with_its_retrieval(
    handler: SessionSpanHandler, index: VectorStoreIndex, steps_of: Callable[[str], list[Step]]
) -> None:
    """query(): the synthesizer's LLM call is step 0; the embedding and retrieval before it are
    its tool calls, the retrieval listing node ids and scores but no document text."""
    engine = index.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=2)
    with using_session("rag-query") as session:
        response = engine.query("What is the capital of France?")
    assert str(response) == "text text text text"
    (step,) = steps_of(session.session_id)
    assert (step.step_index, step.status) == (0, "completed")
    assert tool_names(step) == [
        "MockEmbedding.get_query_embedding",
        "VectorIndexRetriever.retrieve",
    ]
    embedding, retrieval = step.tool_calls
    assert embedding.output == {"embeddings": 1, "dimensions": 8}
    assert retrieval.input == "What is the capital of France?"
    assert len(retrieval.output) == 2
    node_ids = {node.node_id for node in index.docstore.docs.values()}
    for node in retrieval.output:
        assert set(node) == {"id", "score"}
        assert node["id"] in node_ids
    assert "capital" not in str(retrieval.output)
    assert retrieval.duration_ms is not None
    assert retrieval.started_at is not None


async def test_async_streaming_query_engine_is_one_step(
    handler: SessionSpanHandler, index: VectorStoreIndex, steps_of: Callable[[str], list[Step]]
) -> None:
    """aquery() with streaming=True: the step ends once the response stream was read."""
    engine = index.as_query_engine(llm=MockLLM(max_tokens=4), streaming=True)
    async with using_session("rag-stream") as session:
        response = await engine.aquery("What is the capital of Italy?")
        text = "".join([token async for token in response.async_response_gen()])
    assert text.split() == ["text"] * 4
    (step,) = steps_of(session.session_id)
    assert (step.name, step.status) == ("MockLLM.astream_complete", "completed")
    assert tool_names(step) == [
        "MockEmbedding.aget_query_embedding",
        "VectorIndexRetriever.aretrieve",
    ]


def test_chat_engine_two_turns_continue_one_session(
    handler: SessionSpanHandler, index: VectorStoreIndex, steps_of: Callable[[str], list[Step]]
) -> None:
    """condense_plus_context over two turns: turn 1 is one LLM call, turn 2 condenses the
    question then answers; the steps of both turns are 0..2 of the same session."""
    engine = index.as_chat_engine(chat_mode="condense_plus_context", llm=MockLLM(max_tokens=3))
    for turn in ("What is the capital of France?", "And of Italy?"):
        with using_session("rag-chat", user_id="user-a"):
            engine.chat(turn)
    steps = steps_of("rag-chat")
    assert [s.step_index for s in steps] == [0, 1, 2]
    # MockLLM is a completion model: a chat engine may call either method.
    assert {s.name for s in steps} <= {"MockLLM.chat", "MockLLM.complete"}
    assert all(s.user_id == "user-a" for s in steps)
    assert "VectorIndexRetriever.retrieve" in tool_names(steps[0])
    assert tool_names(steps[1]) == []  # condensing retrieves nothing
    assert "VectorIndexRetriever.retrieve" in tool_names(steps[2])
    assert "What is the capital of France?" in str(steps[0].input)
    assert "And of Italy?" in str(steps[1].input)
