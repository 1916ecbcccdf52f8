"""Which session a run records into, in the documented order, and the user id."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import agentsession
from agentsession import MemoryBackend, SessionSummary, SessionTracker, Step, using_session
from agentsession_langchain import SessionCallbackHandler

StepsOf = Callable[[str], list[Step]]
SummaryOf = Callable[[str], SessionSummary]


def chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("user", "{question}")])
    return prompt | FakeListChatModel(responses=["one", "two"]) | StrOutputParser()


def resolving() -> dict[str, Any]:
    """A handler with no session of its own: it resolves one per run."""
    return {"callbacks": [SessionCallbackHandler()]}


def test_explicit_session_wins_over_metadata_and_context(steps_of: StepsOf) -> None:
    """A handler given a session records there, whatever the metadata and the context say."""
    with SessionTracker("lc-explicit-0001") as session, using_session("lc-context-0001"):
        chain().invoke(
            {"question": "q"},
            {"callbacks": [SessionCallbackHandler(session)], "metadata": {"thread_id": "t-1"}},
        )
    assert len(steps_of("lc-explicit-0001")) == 1
    assert steps_of("lc-context-0001") == []
    assert steps_of("t-1") == []


@pytest.mark.parametrize("key", ["session_id", "thread_id", "conversation_id"])
def test_metadata_session_id_keys(key: str, steps_of: StepsOf) -> None:
    """Each metadata key names the session; the same id continues it across invocations."""
    for _ in range(2):
        chain().invoke({"question": "q"}, {**resolving(), "metadata": {key: "lc-meta-0001"}})
    assert [s.step_index for s in steps_of("lc-meta-0001")] == [0, 1]


def test_metadata_keys_are_read_in_order(steps_of: StepsOf) -> None:
    """session_id comes before thread_id, which comes before conversation_id."""
    metadata = {"conversation_id": "lc-conv-0001", "thread_id": "lc-thread-0001"}
    chain().invoke({"question": "q"}, {**resolving(), "metadata": metadata})
    assert len(steps_of("lc-thread-0001")) == 1
    assert steps_of("lc-conv-0001") == []


def test_metadata_wins_over_using_session(steps_of: StepsOf) -> None:
    """Metadata names the session before the current using_session block does."""
    with using_session("lc-context-0002"):
        chain().invoke({"question": "q"}, {**resolving(), "metadata": {"session_id": "lc-m-02"}})
    assert len(steps_of("lc-m-02")) == 1
    assert steps_of("lc-context-0002") == []


def test_using_session_without_metadata(steps_of: StepsOf) -> None:
    """With no id in the metadata, the current using_session block is the session."""
    with using_session("lc-context-0003", user_id="user-a"):
        chain().invoke({"question": "q"}, resolving())
    (step,) = steps_of("lc-context-0003")
    assert step.user_id == "user-a"


def test_invalid_metadata_id_is_dropped_with_one_warning(
    steps_of: StepsOf, caplog: pytest.LogCaptureFixture
) -> None:
    """An id that breaks the session-id rule is ignored (never raised) and warned about once."""
    bad = {"session_id": " padded ", "thread_id": "lc-valid-0001"}
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        for _ in range(3):
            assert chain().invoke({"question": "q"}, {**resolving(), "metadata": bad})
    assert len(steps_of("lc-valid-0001")) == 3
    warnings = [r for r in caplog.records if "ignoring metadata 'session_id'" in r.message]
    assert len(warnings) == 1


def test_user_id_from_metadata(summary_of: SummaryOf) -> None:
    """metadata user_id is the session's user when the session is made from metadata."""
    metadata = {"thread_id": "lc-user-0001", "user_id": "user-42"}
    chain().invoke({"question": "q"}, {**resolving(), "metadata": metadata})
    assert summary_of("lc-user-0001").user_ids == ["user-42"]


def test_auto_session_per_top_level_run(backend: MemoryBackend) -> None:
    """With nothing to go on, each top-level run is a new session, ended when the run ends."""
    runnable = chain()
    runnable.invoke({"question": "a"}, resolving())
    runnable.invoke({"question": "b"}, {**resolving(), "metadata": {"user_id": "user-7"}})
    assert agentsession.flush(5.0)
    sessions = backend.list_sessions().sessions
    assert len(sessions) == 2
    assert {s.status for s in sessions} == {"completed"}
    assert {s.total_steps for s in sessions} == {1}
    assert sorted(s.user_ids for s in sessions) == [[], ["user-7"]]


def test_auto_session_of_a_failed_run_is_failed(backend: MemoryBackend) -> None:
    """An auto session ends failed, with the error, when its top-level run raises."""
    runnable = chain() | (lambda _: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        runnable.invoke({"question": "q"}, resolving())
    assert agentsession.flush(5.0)
    (summary,) = backend.list_sessions().sessions
    assert summary.status == "failed"


def test_batch_under_one_top_level_run_shares_its_auto_session(backend: MemoryBackend) -> None:
    """Runs under one top-level run share its one auto session, also from batch() workers."""
    inner = chain()
    outer = (lambda inputs: [{"question": q} for q in inputs]) | inner.map()
    outer.invoke(["a", "b", "c", "d"], resolving())
    assert agentsession.flush(5.0)
    (summary,) = backend.list_sessions().sessions
    assert summary.total_steps == 4


def test_model_alone_in_an_auto_session(backend: MemoryBackend) -> None:
    """A model called on its own, with no session anywhere, is a one-step session."""
    FakeListChatModel(responses=["x"]).invoke("hi", resolving())
    assert agentsession.flush(5.0)
    (summary,) = backend.list_sessions().sessions
    assert (summary.total_steps, summary.status) == (1, "completed")


def test_nothing_recorded_when_auto_ids_are_off(backend: MemoryBackend) -> None:
    """AGENTSESSION_AUTO_SESSION_ID=false and no session found: nothing is recorded."""
    agentsession.configure(auto_session_id=False)
    handler = SessionCallbackHandler()
    assert chain().invoke({"question": "q"}, {"callbacks": [handler]}) == "one"
    assert agentsession.flush(5.0)
    assert backend.list_sessions().sessions == []
    assert handler.open_runs == 0
