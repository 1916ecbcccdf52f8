"""Session ids: the validity rule, weak-id warnings and UUIDv7 generation."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from agentsession import (
    InvalidSessionIdError,
    SessionTracker,
    _ids,
    new_session_id,
    validate_session_id,
)
from agentsession._ids import new_span_id, new_trace_id


def _restore_generator_state_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests that move the clock must not leave the generator's memory of it in the future.
    monkeypatch.setattr(_ids, "_last_uuid7_ms", _ids._last_uuid7_ms)
    monkeypatch.setattr(_ids, "_uuid7_seq", _ids._uuid7_seq)


@pytest.mark.parametrize(
    "session_id",
    ["a7f3c2e1-user", "x" * 199, "a b", "user_42_conv_9001", "!~ printable ~!", "a" * 1],
)
def test_valid_ids_are_returned_unchanged(session_id: str) -> None:
    """Any printable US-ASCII string of 1 to 199 characters is a valid session id."""
    assert validate_session_id(session_id) == session_id
    assert SessionTracker(session_id).session_id == session_id


@pytest.mark.parametrize(
    ("session_id", "expected_in_message"),
    [
        ("", ["empty", "199", "printable US-ASCII"]),
        ("x" * 200, ["200", "199", "printable US-ASCII"]),
        ("caf\u00e9-session-1234", ["printable US-ASCII", "17-character", "\u00e9"]),
        ("line\nbreak-123456", ["printable US-ASCII", "17-character", "\\n"]),
        ("tab\there-1234567", ["printable US-ASCII", "16-character", "\\t"]),
        ("del\x7f-123456789", ["printable US-ASCII", "14-character"]),
        (" padded-id-1234", ["start or end with a space", "15-character"]),
        ("padded-id-1234 ", ["start or end with a space", "15-character"]),
    ],
)
def test_invalid_ids_raise_naming_rule_and_length(
    session_id: str, expected_in_message: list[str]
) -> None:
    """An explicit invalid id raises InvalidSessionIdError stating the rule and the length."""
    with pytest.raises(InvalidSessionIdError) as excinfo:
        SessionTracker(session_id)
    message = str(excinfo.value)
    for fragment in expected_in_message:
        assert fragment in message


@pytest.mark.parametrize("session_id", [42, 3.5, None, b"bytes-session-id", ["a"]])
def test_non_string_ids_raise(session_id: object) -> None:
    """A session id that is not a str raises InvalidSessionIdError naming the type it got."""
    with pytest.raises(InvalidSessionIdError, match=type(session_id).__name__):
        validate_session_id(session_id)


def test_invalid_session_id_error_is_a_value_error() -> None:
    """InvalidSessionIdError can be caught as ValueError, as callers validating input expect."""
    with pytest.raises(ValueError, match="printable"):
        validate_session_id("\x00bad-id-value")


@pytest.mark.parametrize("session_id", ["test", "session_1", "Session-12", "demo", "ab"])
def test_weak_ids_log_a_warning(caplog: pytest.LogCaptureFixture, session_id: str) -> None:
    """Ids that other runs will reuse (``test``, ``session_1``) are accepted with a warning."""
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        tracker = SessionTracker(session_id)
    assert tracker.session_id == session_id
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert repr(session_id) in warnings[0].getMessage()


def test_weak_id_warns_once_however_often_it_is_used(caplog: pytest.LogCaptureFixture) -> None:
    """A weak id is warned about once, not at every turn that validates it again."""
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        for _ in range(3):
            validate_session_id("session_7")
            SessionTracker("session_7")
        validate_session_id("session_8")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert ["'session_7'" in messages[0], "'session_8'" in messages[1]] == [True, True]


def test_strong_ids_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    """A distinctive id is accepted silently."""
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        SessionTracker("user_8812_conv_7f3a9c")
        SessionTracker(str(uuid.uuid4()))
    assert caplog.records == []


def test_auto_ids_are_uuid7() -> None:
    """A tracker given no id gets a UUID of version 7 with the RFC 4122 variant."""
    parsed = uuid.UUID(SessionTracker().session_id)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_auto_id_embeds_creation_time() -> None:
    """The first 48 bits of a generated id are its creation time in Unix milliseconds."""
    before = time.time_ns() // 1_000_000
    parsed = uuid.UUID(new_session_id())
    after = time.time_ns() // 1_000_000
    assert before <= parsed.int >> 80 <= after


def test_auto_ids_are_unique_and_sort_in_creation_order() -> None:
    """Ids generated in sequence are distinct and sort (as strings) in the order they were made."""
    ids = [new_session_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids


def test_auto_ids_sort_in_order_within_one_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many ids made within the same millisecond (a frozen clock) still sort in creation order."""
    _restore_generator_state_afterwards(monkeypatch)
    frozen_ns = time.time_ns() + 10**9  # a later millisecond than any id made so far
    monkeypatch.setattr(time, "time_ns", lambda: frozen_ns)
    ids = [new_session_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_auto_ids_stay_ordered_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id made after the wall clock went backwards still sorts after the earlier ids."""
    _restore_generator_state_afterwards(monkeypatch)
    now_ns = time.time_ns() + 10**9
    clock = [now_ns]
    monkeypatch.setattr(time, "time_ns", lambda: clock[0])
    first = new_session_id()
    clock[0] = now_ns - 5 * 10**9
    second = new_session_id()
    assert first < second


def test_trace_and_span_ids_are_w3c_shaped() -> None:
    """Trace ids are 32 and span ids 16 lowercase hex digits, fresh on each call."""
    trace_ids = {new_trace_id() for _ in range(100)}
    span_ids = {new_span_id() for _ in range(100)}
    assert len(trace_ids) == 100
    assert len(span_ids) == 100
    for trace_id in trace_ids:
        assert len(trace_id) == 32
        int(trace_id, 16)
        assert trace_id == trace_id.lower()
    for span_id in span_ids:
        assert len(span_id) == 16
        int(span_id, 16)
