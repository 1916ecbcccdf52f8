"""Which session a LlamaIndex call's step goes to: an explicit tracker, instrument_tags, the
using_session context, else one new session per LlamaIndex trace; never another task's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.dispatcher import instrument_tags
from llama_index.core.llms import ChatMessage, MockLLM
from llama_index.core.tools import FunctionTool
from llamaindex_scripted import Reply, ScriptedLLM

import agentsession
import agentsession_llamaindex
from agentsession import MemoryBackend, SessionTracker, Step, using_session
from agentsession_llamaindex import SessionSpanHandler

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")

MESSAGES = [ChatMessage(role="user", content="hello")]


def test_instrument_tags_session_id_routes_the_step(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """instrument_tags({"session_id", "user_id"}) picks the session, even inside another one."""
    with (
        using_session("routing-outer"),
        instrument_tags({"session_id": "routing-tagged", "user_id": "user-t"}),
    ):
        MockLLM(max_tokens=1).chat(MESSAGES)
    (step,) = steps_of("routing-tagged")
    assert step.user_id == "user-t"
    assert steps_of("routing-outer") == []


def test_invalid_tagged_session_id_falls_back_to_the_context(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """An instrument_tags session id that is not a valid id is dropped; the context decides."""
    with using_session("routing-context"), instrument_tags({"session_id": " bad id "}):
        MockLLM(max_tokens=1).chat(MESSAGES)
    assert len(steps_of("routing-context")) == 1


def test_explicit_tracker_takes_every_step(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """instrument(tracker=t): every step goes to t, whatever session is in force."""
    tracker = SessionTracker()
    assert agentsession_llamaindex.instrument(tracker=tracker)
    try:
        with using_session("routing-ignored"):
            MockLLM(max_tokens=1).chat(MESSAGES)
        MockLLM(max_tokens=1).complete("outside")
    finally:
        agentsession_llamaindex.uninstrument()
    assert [s.step_index for s in steps_of(tracker.session_id)] == [0, 1]
    assert steps_of("routing-ignored") == []


def test_span_handler_attached_by_hand_with_its_own_tracker(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """SessionSpanHandler(tracker).attach(root) records like instrument(); detach() stops it."""
    tracker = SessionTracker()
    span_handler = SessionSpanHandler(tracker)
    root = get_dispatcher()
    span_handler.attach(root)
    span_handler.attach(root)  # once only
    try:
        assert sum(h is span_handler for h in root.span_handlers) == 1
        MockLLM(max_tokens=1).chat(MESSAGES)
    finally:
        span_handler.detach(root)
    MockLLM(max_tokens=1).chat(MESSAGES)
    assert len(steps_of(tracker.session_id)) == 1
    assert span_handler.tracker is tracker


async def test_concurrent_sessions_in_asyncio_tasks_never_mix(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """Two agents run at once in two tasks, each in its own session: each session gets exactly
    its own agent's three steps, though their calls interleave."""

    async def run(session_id: str, model: str) -> None:
        async def slow_lookup(question: str) -> str:
            """Look something up, slowly."""
            await asyncio.sleep(0.01)
            return f"{model} found it"

        llm = ScriptedLLM(
            [Reply("", tool_calls=[("slow_lookup", {"question": "q"})]), Reply("answer")],
            model=model,
        )
        tool = FunctionTool.from_defaults(async_fn=slow_lookup, name="slow_lookup")
        agent = FunctionAgent(name=model, description=model, tools=[tool], llm=llm)
        async with using_session(session_id):
            await agent.run(user_msg="go")

    await asyncio.gather(run("routing-a", "model-a"), run("routing-b", "model-b"))
    for session_id, model in (("routing-a", "model-a"), ("routing-b", "model-b")):
        steps = steps_of(session_id)
        assert [s.step_index for s in steps] == [0, 1]
        assert {s.model for s in steps} == {f"{model}-2025"}
        assert steps[1].tool_calls[0].output == f"{model} found it"


async def test_concurrent_plain_calls_route_by_task(
    handler: SessionSpanHandler, steps_of: Callable[[str], list[Step]]
) -> None:
    """Twenty achat calls spread over two sessions in interleaved tasks land where they ran."""

    async def call(session_id: str, i: int) -> None:
        async with using_session(session_id):
            await asyncio.sleep(0.001 * (i % 3))
            await ScriptedLLM([f"{session_id} {i}"]).achat(MESSAGES)

    await asyncio.gather(*(call(f"routing-{i % 2}", i) for i in range(20)))
    for parity in (0, 1):
        steps = steps_of(f"routing-{parity}")
        assert [s.step_index for s in steps] == list(range(10))
        assert all(s.output["content"].startswith(f"routing-{parity} ") for s in steps)


async def test_no_session_in_force_gives_one_new_session_per_agent_run(
    handler: SessionSpanHandler, backend: MemoryBackend
) -> None:
    """Outside any session (auto ids on), each agent run is one new session with all its steps."""
    for _ in range(2):
        llm = ScriptedLLM(
            [Reply("", tool_calls=[("echo", {"text": "x"})]), Reply("done")], model="auto"
        )

        def echo(text: str) -> str:
            """Echo."""
            return text

        agent = FunctionAgent(name="a", description="a", tools=[echo], llm=llm)
        await agent.run(user_msg="go")
    assert agentsession.flush(5.0)
    sessions = backend.list_sessions().sessions
    assert len(sessions) == 2
    assert sorted(s.total_steps for s in sessions) == [2, 2]
    assert [s.status for s in sessions] == ["completed", "completed"]


def test_a_new_session_ends_when_its_stream_does(
    handler: SessionSpanHandler, backend: MemoryBackend
) -> None:
    """Outside any session, a streamed call's new session ends after the stream, not when the
    call's span returned the generator; a failed call fails its session."""
    stream = MockLLM(max_tokens=2).stream_chat(MESSAGES)
    assert agentsession.flush(5.0)
    (session,) = backend.list_sessions().sessions
    assert session.status == "in_progress"
    list(stream)
    assert agentsession.flush(5.0)
    summary = backend.get_session(session.session_id)
    assert summary is not None
    assert (summary.status, summary.total_steps) == ("completed", 1)
    with pytest.raises(RuntimeError, match="model down"):
        ScriptedLLM([Reply(error=RuntimeError("model down"))]).chat(MESSAGES)
    assert agentsession.flush(5.0)
    failed = [s for s in backend.list_sessions().sessions if s.session_id != session.session_id]
    assert [(s.status, s.total_steps) for s in failed] == [("failed", 1)]


def test_no_session_and_auto_ids_off_records_nothing(
    handler: SessionSpanHandler, backend: MemoryBackend
) -> None:
    """AGENTSESSION_AUTO_SESSION_ID off and no session in force: nothing recorded, no fault."""
    agentsession.configure(auto_session_id=False)
    assert MockLLM(max_tokens=1).chat(MESSAGES).message.content == "text"
    assert agentsession.flush(5.0)
    assert backend.list_sessions().sessions == []
