"""Recording never changes what the application gets: a failing backend, or a fault of ours
(which LlamaIndex would swallow silently) is counted and logged once, and the adapter keeps no
span or call behind."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import ChatMessage, MockLLM
from llamaindex_scripted import Reply, ScriptedLLM

import agentsession
import agentsession_llamaindex
from agentsession import MemoryBackend, SessionTracker, using_session
from agentsession.testing import FailingBackend
from agentsession_llamaindex import _extract, _recorder

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")

MESSAGES = [ChatMessage(role="user", content="hello")]


async def workload() -> list[str]:
    """A query, a streamed chat and an agent run: what the application gets back."""
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is the capital of France.")],
        embed_model=MockEmbedding(embed_dim=8),
    )
    answer = index.as_query_engine(llm=MockLLM(max_tokens=3)).query("capital?")
    streamed = [r.delta for r in MockLLM(max_tokens=3).stream_chat(MESSAGES)]

    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    llm = ScriptedLLM([Reply("", tool_calls=[("shout", {"text": "hi"})]), Reply("HI done")])
    agent = FunctionAgent(name="a", description="a", tools=[shout], llm=llm)
    result = await agent.run(user_msg="shout hi")
    return [str(answer), repr(streamed), str(result)]


def assert_nothing_left(handler: Any) -> None:
    recorder = handler.recorder
    assert (recorder.spans, recorder.calls, recorder.streams) == ({}, {}, {})


async def test_failing_backend_changes_nothing_for_the_user() -> None:
    """With a backend that raises on every write, the results are those without the adapter."""
    expected = await workload()
    agentsession.configure(sync=True)  # failed writes are dropped at once, not retried
    tracker = SessionTracker(backend=FailingBackend())
    assert agentsession_llamaindex.instrument()
    handler = agentsession_llamaindex._instrumentor.span_handler
    try:
        async with using_session(tracker):
            assert await workload() == expected
        assert_nothing_left(handler)
    finally:
        agentsession_llamaindex.uninstrument()
    stats = agentsession.get_stats()
    assert stats["dropped.backend_error"] > 0
    assert tracker.step_index == 4  # query, stream, the agent's two calls: all were recorded
    assert "faults.llamaindex" not in stats


async def test_our_faults_are_counted_logged_once_and_invisible(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, backend: MemoryBackend
) -> None:
    """Our code raising inside LlamaIndex's handlers: same results, faults counted, one log
    line, and the steps still end (without what could not be read)."""
    expected = await workload()

    def broken(*args: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(_extract, "usage_of", broken)
    monkeypatch.setattr(_extract, "tool_result", broken)
    assert agentsession_llamaindex.instrument()
    handler = agentsession_llamaindex._instrumentor.span_handler
    try:
        with caplog.at_level(logging.WARNING, logger="agentsession"):
            async with using_session("faults-session"):
                assert await workload() == expected
        assert_nothing_left(handler)
    finally:
        agentsession_llamaindex.uninstrument()
    assert agentsession.get_stats()["faults.llamaindex"] == 5  # 4 usages, 1 tool output
    logged = [r for r in caplog.records if "internal fault in llamaindex" in r.getMessage()]
    assert len(logged) == 1
    assert agentsession.flush(5.0)
    steps = backend.list_steps("faults-session")
    assert [s.status for s in steps] == ["completed"] * 4
    assert steps[0].output is None


def test_uninstrument_forgets_calls_in_flight() -> None:
    """A stream still open when the handlers are removed leaves nothing behind in the adapter."""
    assert agentsession_llamaindex.instrument()
    handler = agentsession_llamaindex._instrumentor.span_handler
    assert handler is not None
    with using_session("faults-in-flight"):
        stream = MockLLM(max_tokens=2).stream_chat(MESSAGES)
        assert len(handler.recorder.calls) == 1
        agentsession_llamaindex.uninstrument()
        assert list(stream)  # the user's stream still works
    assert_nothing_left(handler)


def test_span_limit_is_counted_and_keeps_one_step_per_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, backend: MemoryBackend
) -> None:
    """Past MAX_OPEN_SPANS new spans are not tracked (counted, warned once): a call whose nested
    span was not tracked is still one step, and nothing is left behind."""
    monkeypatch.setattr(_recorder, "MAX_OPEN_SPANS", 1)  # chat is tracked, its complete is not
    assert agentsession_llamaindex.instrument()
    handler = agentsession_llamaindex._instrumentor.span_handler
    try:
        with caplog.at_level(logging.WARNING, logger="agentsession"), using_session("faults-limit"):
            for _ in range(2):
                MockLLM(max_tokens=1).chat(MESSAGES)
        assert_nothing_left(handler)
    finally:
        agentsession_llamaindex.uninstrument()
    assert agentsession.get_stats()["llamaindex.spans_over_limit"] == 2
    assert sum("spans are open at once" in r.getMessage() for r in caplog.records) == 1
    assert agentsession.flush(5.0)
    assert [s.name for s in backend.list_steps("faults-limit")] == ["MockLLM.chat", "MockLLM.chat"]
