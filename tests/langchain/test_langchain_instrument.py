"""instrument(): every run recorded with no callbacks passed, through LangChain's own hook."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tracers import context as langchain_context

import agentsession_langchain
from agentsession import SessionTracker, Step, using_session
from agentsession_langchain import LangChainInstrumentor, SessionCallbackHandler

StepsOf = Callable[[str], list[Step]]


def chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("user", "{question}")])
    return prompt | FakeListChatModel(responses=["ok"]) | StrOutputParser()


def our_hooks() -> list[Any]:
    return [
        hook
        for hook in langchain_context._configure_hooks
        if isinstance(hook[0].get(), SessionCallbackHandler)
    ]


def test_instrument_records_without_callbacks(steps_of: StepsOf) -> None:
    """After instrument(), runs inside using_session are steps of that session."""
    assert agentsession_langchain.instrument() is True
    with using_session("lc-instr-0001", user_id="user-a"):
        chain().invoke({"question": "q1"})
        chain().invoke({"question": "q2"})
    steps = steps_of("lc-instr-0001")
    assert [s.step_index for s in steps] == [0, 1]
    assert {s.user_id for s in steps} == {"user-a"}


def test_instrument_and_uninstrument_are_idempotent_and_reversible(steps_of: StepsOf) -> None:
    """Twice on is one hook; off removes it and stops recording; on again records again."""
    assert agentsession_langchain.instrument() is True
    assert agentsession_langchain.instrument() is False
    assert len(our_hooks()) == 1
    assert agentsession_langchain.uninstrument() is True
    assert agentsession_langchain.uninstrument() is False
    assert our_hooks() == []
    with using_session("lc-instr-0002"):
        chain().invoke({"question": "not recorded"})
    assert steps_of("lc-instr-0002") == []
    assert agentsession_langchain.instrument() is True
    with using_session("lc-instr-0002"):
        chain().invoke({"question": "recorded"})
    (step,) = steps_of("lc-instr-0002")
    assert step.input == [{"role": "user", "content": "recorded"}]


def test_threads_started_before_instrument_are_recorded(steps_of: StepsOf) -> None:
    """The hook is the variable's default, so a thread that already runs sees it too."""
    ready, go, done = threading.Event(), threading.Event(), threading.Event()

    def worker() -> None:
        ready.set()
        go.wait(5)
        with using_session("lc-instr-0003"):
            chain().invoke({"question": "from a thread"})
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait(5)
    agentsession_langchain.instrument()
    go.set()
    assert done.wait(5)
    thread.join(5)
    assert len(steps_of("lc-instr-0003")) == 1


async def test_instrumented_async_runs(steps_of: StepsOf) -> None:
    """ainvoke in concurrent tasks under one using_session: gap-free steps."""
    agentsession_langchain.instrument()
    async with using_session("lc-instr-0004"):
        await asyncio.gather(*(chain().ainvoke({"question": f"q{n}"}) for n in range(8)))
    assert sorted(s.step_index for s in steps_of("lc-instr-0004")) == list(range(8))


def test_explicit_handler_is_not_doubled_by_instrument(steps_of: StepsOf) -> None:
    """A run given a SessionCallbackHandler is recorded once, in the handler's session."""
    agentsession_langchain.instrument()
    with SessionTracker("lc-instr-0005") as session, using_session("lc-instr-0006"):
        chain().invoke({"question": "q"}, {"callbacks": [SessionCallbackHandler(session)]})
        FakeListChatModel(responses=["x"], callbacks=[SessionCallbackHandler(session)]).invoke(
            "constructor callbacks"
        )
    assert [s.step_index for s in steps_of("lc-instr-0005")] == [0, 1]
    assert steps_of("lc-instr-0006") == []


def test_same_session_twice_is_one_step(steps_of: StepsOf) -> None:
    """Two handlers of one session on one run (a nested call given the handler again)."""
    with SessionTracker("lc-instr-0007") as session:
        handlers = [SessionCallbackHandler(session), SessionCallbackHandler(session)]
        chain().invoke({"question": "q"}, {"callbacks": handlers})
    assert len(steps_of("lc-instr-0007")) == 1


def test_uninstrument_when_langchain_changed_its_hook_list(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, steps_of: StepsOf
) -> None:
    """A hook registry of an unknown shape: uninstrument() warns, never raises, and no thread
    records new runs, although the hook could not be removed."""
    instrumentor = LangChainInstrumentor()
    assert instrumentor.instrument() is True
    registered = langchain_context._configure_hooks
    ours = our_hooks()
    monkeypatch.setattr(langchain_context, "_configure_hooks", tuple(registered))
    try:
        with caplog.at_level(logging.WARNING, logger="agentsession"):
            assert instrumentor.uninstrument() is True
        assert "could not unregister the LangChain configure hook" in caplog.text

        def worker() -> None:  # a new thread's context: the hook's default, our handler
            with using_session("lc-instr-0008"):
                chain().invoke({"question": "after uninstrument"})

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(5)
        assert steps_of("lc-instr-0008") == []
    finally:
        for hook in ours:
            registered.remove(hook)


def test_framework_missing_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """An instrumentor for an absent distribution warns and returns False."""

    class Elsewhere(LangChainInstrumentor):
        instruments = ("langchain-core-not-installed >= 1",)

    with caplog.at_level(logging.WARNING, logger="agentsession"):
        assert Elsewhere().instrument() is False
    assert "langchain-core-not-installed is not installed" in caplog.text


def test_unknown_options_are_refused() -> None:
    """instrument() takes no options: a typo is an error at the call, not silently ignored."""
    with pytest.raises(TypeError, match="unexpected options"):
        LangChainInstrumentor().instrument(capture=False)


def test_handler_property_follows_instrumentation() -> None:
    """The instrumentor exposes the handler it attached, and None once uninstrumented."""
    instrumentor = LangChainInstrumentor()
    assert instrumentor.handler is None
    instrumentor.instrument()
    assert isinstance(instrumentor.handler, SessionCallbackHandler)
    instrumentor.uninstrument()
    assert instrumentor.handler is None
