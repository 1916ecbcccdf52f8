"""Recording never changes what the chain does: our faults are counted, never raised."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

import agentsession
import agentsession_langchain
from agentsession import SessionTracker, StateNotSerializableError, Step, using_session
from agentsession.testing import FailingBackend
from agentsession_langchain import SessionCallbackHandler, _handler

StepsOf = Callable[[str], list[Step]]


def chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("user", "{question}")])
    return prompt | FakeListChatModel(responses=["fine"]) | StrOutputParser()


def no_langchain_handler_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """LangChain logs "Error in <handler>.<event> callback" for a handler that raised."""
    assert not [r for r in caplog.records if "SessionCallbackHandler" in r.getMessage()]


def test_backend_that_raises_in_sync_mode(caplog: pytest.LogCaptureFixture) -> None:
    """Every write fails: the chain's answers are unchanged, the drops are counted."""
    agentsession.configure(sync=True)
    backend = FailingBackend()
    with caplog.at_level(logging.WARNING), SessionTracker("lc-fail-0001", backend=backend) as s:
        answers = [chain().invoke({"question": "q"}, {"callbacks": [SessionCallbackHandler(s)]})]
    assert answers == ["fine"]
    assert backend.attempts >= 2
    assert agentsession.get_stats()["dropped.backend_error"] >= 2
    no_langchain_handler_warnings(caplog)


def test_backend_that_recovers_with_the_background_writer(steps_of: StepsOf) -> None:
    """A write that fails once is retried by the writer: the step arrives, the chain never knew."""
    backend = FailingBackend(failures=1)
    with SessionTracker("lc-fail-0002", backend=backend) as session:
        handler = SessionCallbackHandler(session)
        assert chain().invoke({"question": "q"}, {"callbacks": [handler]}) == "fine"
    assert agentsession.flush(5.0)
    assert [s.step_index for s in backend.list_steps("lc-fail-0002")] == [0]
    assert agentsession.get_stats()["retries.backend_write"] >= 1


def test_tracker_already_ended(caplog: pytest.LogCaptureFixture, steps_of: StepsOf) -> None:
    """A handler whose session has ended: the chain runs, the steps are counted as dropped."""
    session = SessionTracker("lc-fail-0003")
    session.end()
    handler = SessionCallbackHandler(session)
    with caplog.at_level(logging.WARNING):
        assert chain().invoke({"question": "q"}, {"callbacks": [handler]}) == "fine"
    assert steps_of("lc-fail-0003") == []
    assert agentsession.get_stats()["dropped.after_end"] == 1
    assert handler.open_runs == 0
    no_langchain_handler_warnings(caplog)


def test_state_that_cannot_be_serialized(steps_of: StepsOf) -> None:
    """An unserializable state value is refused at set_state; the chain and its steps go on
    with the state as it was."""
    with SessionTracker("lc-fail-0004") as session:
        session.set_state("plan", "search")
        with pytest.raises(StateNotSerializableError):
            session.set_state("socket", object())
        answer = chain().invoke({"question": "q"}, {"callbacks": [SessionCallbackHandler(session)]})
    assert answer == "fine"
    (step,) = steps_of("lc-fail-0004")
    assert step.state == {"plan": "search"}


def test_content_that_cannot_be_serialized(steps_of: StepsOf) -> None:
    """A tool whose input and output are objects with no JSON form, whose repr raises."""

    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        __str__ = __repr__

    @tool
    def make_opaque(name: str) -> Any:
        """Returns an object nothing can print."""
        return Opaque()

    with SessionTracker("lc-fail-0005") as session:
        config = {"callbacks": [SessionCallbackHandler(session)]}
        result = make_opaque.invoke({"name": "x"}, config)
        FakeListChatModel(responses=["ok"]).invoke("after", config)
    assert isinstance(result, Opaque)
    (step,) = steps_of("lc-fail-0005")
    (call,) = step.tool_calls
    assert call.output == "<Opaque>"


def test_a_fault_of_ours_is_counted_and_swallowed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the handler (here: reading the response raises) never reaches the chain."""

    def broken(response: Any) -> Any:
        raise KeyError("a bug of ours")

    monkeypatch.setattr(_handler, "read_response", broken)
    with caplog.at_level(logging.WARNING), SessionTracker("lc-fail-0006") as session:
        handler = SessionCallbackHandler(session)
        for _ in range(3):
            assert chain().invoke({"question": "q"}, {"callbacks": [handler]}) == "fine"
    assert agentsession.get_stats()["faults.langchain"] == 3
    internal = [r for r in caplog.records if "internal fault in langchain" in r.getMessage()]
    assert len(internal) == 1  # logged once, then only counted
    no_langchain_handler_warnings(caplog)


def test_a_mask_that_raises_drops_the_content_not_the_step(steps_of: StepsOf) -> None:
    """The core runs the mask in the writer: a raising mask loses the content, not the call."""

    def mask(value: Any) -> Any:
        raise ValueError("mask bug")

    with SessionTracker("lc-fail-0007", mask=mask) as session:
        assert chain().invoke({"question": "q"}, {"callbacks": [SessionCallbackHandler(session)]})
    (step,) = steps_of("lc-fail-0007")
    assert (step.input, step.output, step.status) == (None, None, "completed")


def test_instrumented_run_with_a_failing_default_backend(caplog: pytest.LogCaptureFixture) -> None:
    """instrument() with a default backend that raises: answers unchanged."""
    agentsession.configure(sync=True)
    agentsession.set_default_backend(FailingBackend())
    agentsession_langchain.instrument()
    with caplog.at_level(logging.WARNING), using_session("lc-fail-0008"):
        assert chain().invoke({"question": "q"}) == "fine"
    assert agentsession.get_stats()["dropped.backend_error"] >= 1
    no_langchain_handler_warnings(caplog)


async def test_open_steps_and_their_task_watches_are_bounded(
    steps_of: StepsOf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_OPEN_RUNS model runs that never end, the oldest step fails as never ended and
    its task watch goes with it; the others still end as cancelled with their task."""
    import asyncio
    from uuid import uuid4

    from langchain_core.messages import HumanMessage

    monkeypatch.setattr(_handler, "MAX_OPEN_RUNS", 2)
    runs = [uuid4() for _ in range(3)]
    with SessionTracker("lc-bounded-0001") as session:
        handler = SessionCallbackHandler(session)

        async def start_and_hang() -> None:
            for run in runs:
                handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=run)
            await asyncio.Event().wait()

        task = asyncio.create_task(start_and_hang())
        await asyncio.sleep(0)
        assert handler.open_runs == 2
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert handler.open_runs == 0
    assert [(s.status, s.error) for s in steps_of("lc-bounded-0001")] == [
        ("failed", "the LangChain run never ended"),
        ("cancelled", "CancelledError: the task was cancelled"),
        ("cancelled", "CancelledError: the task was cancelled"),
    ]
    assert agentsession.get_stats()["dropped.langchain_runs"] == 1
