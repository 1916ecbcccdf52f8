"""resolve_session: the order in which adapters find the session an event belongs to."""

from __future__ import annotations

import logging

import pytest

import agentsession
from agentsession import SessionTracker, using_session
from agentsession._resolve import resolve_session, session_id_from_metadata


def test_an_explicit_tracker_wins_over_metadata_and_context() -> None:
    """A tracker handed to the adapter is used whatever the metadata and context say."""
    explicit = SessionTracker("rsv-explicit-conv")
    with using_session("rsv-context-conv"):
        found = resolve_session(explicit, {"session_id": "rsv-metadata-conv"})
    assert found is explicit


@pytest.mark.parametrize("key", ["session_id", "thread_id", "conversation_id"])
def test_metadata_ids_win_over_the_context(key: str) -> None:
    """A session id in framework metadata beats using_session, under each known key."""
    with using_session("rsv-context-conv"):
        found = resolve_session(None, {key: "rsv-from-metadata"})
    assert found is not None
    assert found.session_id == "rsv-from-metadata"


def test_metadata_keys_are_read_in_order() -> None:
    """session_id comes before thread_id, which comes before conversation_id."""
    metadata = {"conversation_id": "rsv-c-conv", "thread_id": "rsv-t-conv", "session_id": "rsv-s"}
    assert session_id_from_metadata(metadata) == "rsv-s"
    del metadata["session_id"]
    assert session_id_from_metadata(metadata) == "rsv-t-conv"


def test_the_same_metadata_id_gives_the_same_tracker_across_turns() -> None:
    """Turn 2 of a thread continues turn 1's steps: one tracker per id."""
    first = resolve_session(None, {"thread_id": "rsv-thread-42"})
    assert first is not None
    first.begin_step().end()
    second = resolve_session(None, {"thread_id": "rsv-thread-42"})
    assert second is first
    assert second.step_index == 1


def test_user_id_comes_from_metadata() -> None:
    """metadata user_id becomes the new session's user."""
    found = resolve_session(None, {"session_id": "rsv-user-conv", "user_id": "user-a"})
    assert found is not None
    assert found.user_id == "user-a"


def test_an_invalid_metadata_id_is_dropped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A metadata id that breaks the rule falls through to the context, warned about once."""
    caplog.set_level(logging.WARNING, logger="agentsession")
    with using_session("rsv-fallback-conv") as current:
        for _ in range(3):
            assert resolve_session(None, {"thread_id": "x" * 300}) is current
    warnings = [r for r in caplog.records if "thread_id" in r.getMessage()]
    assert len(warnings) == 1
    assert "300 characters" in warnings[0].getMessage()


def test_integer_thread_ids_are_accepted() -> None:
    """LangGraph users often pass numbers: 42 is read as the id "42"."""
    assert session_id_from_metadata({"thread_id": 4242}) == "4242"
    assert session_id_from_metadata({"thread_id": True}) is None


def test_the_context_is_used_when_nothing_else_names_a_session() -> None:
    """Without a tracker or metadata id, the current using_session block decides."""
    with using_session("rsv-only-context") as current:
        assert resolve_session(None, {"other": 1}) is current


def test_a_new_session_when_auto_ids_are_on_and_none_otherwise() -> None:
    """Outside any session: a fresh UUIDv7 session if auto ids are on, else None."""
    first, second = resolve_session(), resolve_session()
    assert first is not None
    assert second is not None
    assert first.session_id != second.session_id
    agentsession.configure(auto_session_id=False)
    assert resolve_session() is None
    assert resolve_session(auto=True) is not None
