"""Bad input, fuzzed: session headers as a server receives them, the state setter, session ids
and user ids. Whatever comes in ends as a clear error naming the field, the rule and the size
of what was given (or a listed problem, in lenient parsing), or is accepted and reads back
unchanged from a real SQLite file; never another exception, never a half-applied change.

test_headers.py and test_state.py already fuzz well-formed round trips and random header bytes;
this module covers what they do not: step indexes as numbers of any size, white space and
control bytes around values, raw UTF-8 and non-UTF-8 bytes, huge values, JSON that is valid but
not storable, arbitrary Python objects in the state, and ids stored through SQLite."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import agentsession
from agentsession import (
    InvalidHeaderError,
    InvalidSessionIdError,
    SessionTracker,
    SQLiteBackend,
    StateNotSerializableError,
    StateTooLargeError,
    parse_headers,
    using_session,
)
from agentsession._headers import MAX_STEP_INDEX, header_names
from agentsession._ids import new_session_id
from agentsession._resolve import resolve_session
from agentsession._state import compact_json

SESSION, INDEX, PARENT, STATE = header_names("X-TraceForge")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteBackend]:
    """A real SQLite file, shared by the examples of one test (each uses its own sessions)."""
    backend = SQLiteBackend(tmp_path / "fuzz.db")
    yield backend
    backend.close()


def strict_error(headers: Any, **options: Any) -> InvalidHeaderError:
    with pytest.raises(InvalidHeaderError) as excinfo:
        parse_headers(headers, **options)
    return excinfo.value


# -- step indexes -------------------------------------------------------------------------------

index_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 0, MAX_STEP_INDEX, MAX_STEP_INDEX + 1, 2**64, 2**64 + 1, 10**20]),
)


@_FUZZ
@given(number=index_numbers, padding=st.sampled_from(["", " ", "\t", "  \t"]), raw=st.booleans())
def test_a_step_index_of_any_size_is_read_or_refused_with_the_range(
    number: int, padding: str, raw: bool
) -> None:
    """0 to 2**63-1 (with HTTP white space around it) is read back; a negative number or one past
    the range (2**63, 2**64...) is refused in strict mode naming the header, the range and the
    value's length, and in lenient mode left out with one problem."""
    text = f"{padding}{number}{padding}"
    headers: Any = [(INDEX.encode(), text.encode())] if raw else {INDEX: text}
    lenient = parse_headers(headers, strict=False)
    if 0 <= number <= MAX_STEP_INDEX:
        assert lenient.step_index == number
        assert lenient.problems == ()
        assert parse_headers(headers).step_index == number
        return
    assert lenient.step_index is None
    (problem,) = lenient.problems
    error = strict_error(headers)
    assert error.header == INDEX
    assert str(error) == problem
    assert f"from 0 to {MAX_STEP_INDEX}" in problem
    assert f"({len(str(number))} characters)" in problem


@_FUZZ
@example(text="\x855")  # NEL: str.strip() took it for white space and read 5
@example(text="5\r\n")
@example(text="\xa05")
@example(text="\u0665")  # ARABIC-INDIC DIGIT FIVE: a digit to str.isdigit, not to HTTP
@example(text="+5")
@example(text="0x5")
@example(text="5e0")
@given(
    text=st.text(st.sampled_from("0123456789 \t\r\n\x00\x0b\x0c\x85\xa0+-.xe\u0665"), max_size=8)
)
def test_a_step_index_is_only_ascii_digits_within_http_white_space(text: str) -> None:
    """Only ASCII digits, with at most spaces and tabs around them, make a step index: CR, LF,
    NUL, NEL, no-break spaces, signs, exponents and non-ASCII digits are refused."""
    parsed = parse_headers({INDEX: text}, strict=False)
    digits = text.strip(" \t")
    if re.fullmatch(r"[0-9]{1,20}", digits) and int(digits) <= MAX_STEP_INDEX:
        assert parsed.step_index == int(digits)
        assert parsed.problems == ()
    else:
        assert parsed.step_index is None
        (problem,) = parsed.problems
        assert problem.startswith(f"{INDEX}: must be an integer from 0 to {MAX_STEP_INDEX}")


# -- CR/LF, control bytes and non-UTF-8 in every header ------------------------------------------

hostile_text = st.text(
    st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.sampled_from(["\r", "\n", "\x00", "\t", "\x7f", "\x85", "\u2028"]),
    ),
    min_size=1,
    max_size=40,
)
hostile_bytes = st.one_of(
    hostile_text.map(lambda text: text.encode("utf-8")),
    st.binary(min_size=1, max_size=40),
    # Valid UTF-8 with a byte that breaks it spliced in.
    st.tuples(hostile_text, st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80"])).map(
        lambda pair: pair[0].encode() + pair[1]
    ),
)


@_FUZZ
@given(
    session_id=hostile_bytes,
    index=hostile_bytes,
    parent=hostile_bytes,
    state=st.none() | hostile_bytes,
)
def test_no_accepted_value_carries_a_control_byte_or_non_ascii_id(
    session_id: bytes, index: bytes, parent: bytes, state: bytes | None
) -> None:
    """Whatever bytes arrive, an accepted session id or parent trace id is printable ASCII (no
    CR, LF or NUL to smuggle into a header sent on), an accepted index is a plain number, and
    every refusal is a listed problem naming its header; strict mode raises the first."""
    headers = [
        (SESSION.encode(), session_id),
        (INDEX.encode(), index),
        (PARENT.encode(), parent),
    ]
    if state is not None:
        headers.append((STATE.encode(), state))
    parsed = parse_headers(headers, strict=False)
    for value in (parsed.session_id, parsed.parent_trace_id):
        assert value is None or (value and _PRINTABLE.fullmatch(value)), value
    if parsed.step_index is not None:
        assert str(parsed.step_index) == (index.strip(b" \t").lstrip(b"0").decode() or "0")
    if parsed.state is not None:
        assert state is not None
        assert parsed.state == json.loads(state.decode("utf-8"))  # UTF-8, never read as latin-1
    named = {problem.split(":", 1)[0] for problem in parsed.problems}
    assert named <= {SESSION, INDEX, PARENT, STATE}
    if parsed.problems:
        assert strict_error(headers).header in named


state_dicts = st.dictionaries(
    st.text(max_size=10),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=6,
    ),
    max_size=4,
)


@_FUZZ
@example(state={"city": "Z\u00fcrich", "mood": "\U0001f600"})  # was read as "ZÃ¼rich"
@given(state=state_dicts)
def test_a_state_header_in_raw_utf8_reads_back_as_sent(state: dict[str, Any]) -> None:
    """A client that sends its state as UTF-8 JSON (not \\u-escaped) gets that state recorded,
    not its bytes read as latin-1."""
    raw = json.dumps(state, ensure_ascii=False).encode("utf-8")
    parsed = parse_headers([(STATE.encode(), raw)])
    assert parsed.state == state


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_a_state_header_that_is_not_utf8_is_refused_naming_it(bad: bytes) -> None:
    """Undecodable bytes inside a JSON string are a clear error (naming the header and size), not
    text silently made up from them."""
    raw = b'{"note":"caf' + bad + b'"}'
    error = strict_error([(STATE.encode(), raw)])
    assert error.header == STATE
    assert f"({len(raw)} bytes)" in str(error)
    assert parse_headers([(STATE.encode(), raw)], strict=False).state is None


def test_a_session_id_byte_that_is_not_utf8_is_named_as_a_byte() -> None:
    """An undecodable byte in a session-id header is reported as that byte, not as the
    surrogate or latin-1 letter it decodes to."""
    error = strict_error([(SESSION.encode(), b"conv-\xff-1")])
    assert "got the byte 0xFF (not UTF-8) in a 8-character id" in str(error)


# -- huge values ---------------------------------------------------------------------------------

HUGE = 1_000_000


@pytest.mark.parametrize(
    ("header", "value", "words"),
    [
        (SESSION, "s" * HUGE, ["199", f"{HUGE} characters"]),
        (INDEX, "9" * HUGE, [str(MAX_STEP_INDEX), f"({HUGE} characters)"]),
        (PARENT, "p" * HUGE, ["256-character limit", f"{HUGE} characters"]),
        (STATE, '{"a":"' + "x" * HUGE + '"}', ["10240-byte", f"{HUGE + 8} bytes"]),
        (STATE, "[" * HUGE, ["10240-byte", f"{HUGE} bytes"]),
    ],
    ids=["session-id", "step-index", "parent", "state", "state-nesting"],
)
def test_a_megabyte_header_is_refused_naming_the_limit_and_its_size(
    header: str, value: str, words: list[str]
) -> None:
    """A one-megabyte value in any session header gets an error naming the header, its limit and
    the value's size; lenient parsing keeps the other headers."""
    error = strict_error({header: value})
    assert error.header == header
    for word in words:
        assert word in str(error)
    others = {SESSION: "fuzz-user-1-conv-1", INDEX: "3", header: value}
    parsed = parse_headers(others, strict=False)
    assert len(parsed.problems) == 1
    assert (parsed.session_id is None) == (header == SESSION)


# -- state headers: valid JSON that is no state -------------------------------------------------

json_documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()  # NaN and infinities too: json.dumps writes them, no JSON reader takes them
    | st.text(max_size=15),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@_FUZZ
@example(document={"n": 10**4000}, limit=100_000)
@example(document={"n": math.nan}, limit=100)
@example(document={"deep": [[[[[[[[[[1]]]]]]]]]]}, limit=10)
@example(document=[1, 2], limit=100)
@given(
    document=json_documents | st.dictionaries(st.text(max_size=6), json_documents, max_size=5),
    limit=st.integers(min_value=2, max_value=600),
)
def test_any_json_state_header_is_the_state_or_an_error_with_its_size(
    document: Any, limit: int
) -> None:
    """A state header holding any JSON (big integers, NaN, non-objects, nesting) is read as that
    object when it is one that fits the limit and can be stored; otherwise strict mode names the
    header and a size in bytes, and lenient mode leaves the state out."""
    try:
        raw = json.dumps(document, separators=(",", ":"))
    except ValueError:  # an integer too long to write: the header could not be sent either
        return
    lenient = parse_headers({STATE: raw}, state_limit_bytes=limit, strict=False)
    storable = isinstance(document, dict) and not _has_non_finite(document)
    if storable and len(compact_json(document)) <= limit:
        assert lenient.state == document
        assert lenient.problems == ()
        return
    assert lenient.state is None
    error = strict_error({STATE: raw}, state_limit_bytes=limit)
    assert error.header == STATE
    assert re.search(r"\b\d+ bytes\b", str(error)), str(error)
    if storable:
        assert f"{limit}-byte state limit" in str(error)


def test_a_state_number_past_pythons_digit_limit_is_invalid_json_not_a_crash() -> None:
    """A 5,000-digit number (over Python's int-to-text limit) is refused as JSON, with its size."""
    raw = '{"n":' + "9" * 5000 + "}"
    error = strict_error({STATE: raw}, state_limit_bytes=100_000)
    assert f"is not valid JSON ({len(raw)} bytes)" in str(error)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


# -- the state setter -------------------------------------------------------------------------


class Opaque:
    """An object JSON knows nothing of."""


def _cyclic_list() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


def _cyclic_dict() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = {"parent": loop}
    return loop


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


odd_values = st.one_of(
    st.floats(),  # NaN, inf, -inf
    st.integers(min_value=-(2**100), max_value=2**100),
    st.sampled_from(
        [
            2**64,
            -(2**63) - 1,
            b"bytes",
            bytearray(b"ba"),
            {1, 2},
            frozenset({"a"}),
            (1, "two"),
            Decimal("1.10"),
            Decimal("NaN"),
            datetime(2024, 5, 1, tzinfo=timezone.utc),
            Opaque(),
            object(),
            {1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
            {(1, 2): "tuple key"},
            {"1": "a", 1: "b"},  # two keys that are the same JSON key
            "\ud800",
            {"\udfff": 1},
            ["ok", "\x00\r\n\u2028"],
        ]
    ),
    # Built, not sampled: hypothesis cannot repr a 5,000-digit integer or 50,000 nested lists.
    st.builds(pow, st.just(10), st.sampled_from([4000, 5000])),  # 5000: past int-to-text limit
    st.builds(str.__mul__, st.just("x"), st.just(20_000)),
    st.builds(_deep, st.just(50_000)),
    st.builds(_cyclic_list),
    st.builds(_cyclic_dict),
)
state_values = st.recursive(
    st.none() | st.booleans() | st.text(max_size=30) | odd_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
state_keys = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["", "\ud800", 5, None, b"k", ("t",), 1.5]),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    updates=st.lists(st.tuples(state_keys, state_values), min_size=1, max_size=4),
    limit=st.sampled_from([2, 64, 600, 10_240]),
    overflow=st.sampled_from(["truncate", "error"]),
)
def test_the_state_setter_applies_a_value_whole_or_refuses_it_clearly(
    sqlite: SQLiteBackend, updates: list[tuple[Any, Any]], limit: int, overflow: Any
) -> None:
    """set_state with any key and value (unserializable objects, cycles, huge integers, NaN,
    non-string keys, lone surrogates, 20 KB strings, 50,000 levels of nesting) either raises
    StateNotSerializableError (a TypeError naming the key) or StateTooLargeError (a ValueError
    naming the limit and the size) and leaves the state as it was, or is taken: the snapshot
    then fits the limit, its header is printable ASCII, and the step stored in SQLite holds it."""
    tracker = SessionTracker(
        new_session_id(),
        backend=sqlite,
        state_limit_bytes=limit,
        state_overflow=overflow,
        header_budget_bytes=100_000,
    )
    for key, value in updates:
        before = dict(tracker.state)
        refused: StateNotSerializableError | StateTooLargeError | None = None
        try:
            tracker.set_state(key, value)
        except (StateNotSerializableError, StateTooLargeError) as exc:
            refused = exc
        if isinstance(refused, StateNotSerializableError):
            assert isinstance(refused, TypeError)
            assert repr(key) in str(refused)
        if isinstance(refused, StateTooLargeError):
            assert isinstance(refused, ValueError)
            assert f"state_limit_bytes={limit}" in str(refused)
            assert f"{refused.size} bytes" in str(refused)
            assert refused.size > limit
        if refused is not None:
            assert dict(tracker.state) == before
            continue
        state = dict(tracker.state)
        assert len(compact_json(state)) <= limit
        headers = tracker.get_headers()
        assert all(_PRINTABLE.fullmatch(value) for value in headers.values())
        assert parse_headers(headers, state_limit_bytes=limit).state == (state or None)
    expected = dict(tracker.state)
    tracker.begin_step().end("done")
    assert agentsession.flush(10.0)
    (stored,) = sqlite.list_steps(tracker.session_id)
    assert stored.state == expected


def test_update_state_with_a_bad_key_among_good_ones_changes_nothing() -> None:
    """One non-string key in update_state refuses the whole update, naming that key."""
    tracker = SessionTracker(new_session_id())
    tracker.set_state("kept", 1)
    with pytest.raises(StateNotSerializableError, match="non-empty strings, got 7"):
        tracker.update_state({"a": 1, 7: "seven", "b": 2})  # type: ignore[dict-item]
    assert dict(tracker.state) == {"kept": 1}


# -- session ids and user ids, through a real SQLite file ---------------------------------------

any_text = st.text(
    st.one_of(
        st.characters(),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.sampled_from(["\r", "\n", "\x00", "\x7f", "\ud800", "\udfff", " ", "/", "%"]),
    ),
    max_size=260,
)
not_text = st.sampled_from([0, 12345, -1, 1.5, b"bytes", ["list"], Opaque()])


@_FUZZ
@example(session_id="x" * 200)
@example(session_id=" padded")
@example(session_id="caf\u00e9-conv-1")
@example(session_id="\ud800-conv-1")
@example(session_id="")
@example(session_id=12345)
@given(session_id=any_text | not_text)
def test_a_session_id_is_refused_with_its_rule_and_size_or_stored_unchanged(
    sqlite: SQLiteBackend, session_id: Any
) -> None:
    """Any session id either raises InvalidSessionIdError (a ValueError) naming session_id, the
    rule's limit and the id's size, or is stored and read back from SQLite exactly as given,
    and a proxy reading it from a header agrees on which."""
    refused: InvalidSessionIdError | None = None
    try:
        tracker = SessionTracker(session_id, backend=sqlite)
    except InvalidSessionIdError as exc:
        refused = exc
    if refused is not None:
        assert isinstance(refused, ValueError)
        message = str(refused)
        assert message.startswith("session_id must ")
        if isinstance(session_id, str):
            assert any(limit in message for limit in ("1 to 199", "0x20-0x7E", "space"))
            assert f"{len(session_id)}" in message or "empty string" in message
            if session_id.isascii():
                assert parse_headers({SESSION: session_id}, strict=False).session_id is None
        return
    assert isinstance(session_id, str)
    tracker.begin_step().end("done")
    assert agentsession.flush(10.0)
    (stored,) = sqlite.list_steps(session_id)
    assert stored.session_id == session_id
    summary = sqlite.get_session(session_id)
    assert summary is not None
    assert summary.session_id == session_id
    assert parse_headers(tracker.get_headers()).session_id == session_id


@_FUZZ
@example(user_id="\ud800")  # the whole write batch, other sessions' steps too, was dropped
@example(user_id="a\x00b\r\nc")
@example(user_id="u" * 100_000)
@example(user_id="")
@example(user_id=5)
@given(user_id=any_text | not_text)
def test_a_user_id_is_refused_naming_it_or_stored_unchanged(
    sqlite: SQLiteBackend, user_id: Any
) -> None:
    """Any user id either raises a ValueError naming user_id (and the id's size) when the tracker
    is made, or is stored and read back from SQLite exactly as given, in the step and the
    session summary; a session recorded beside it is never lost."""
    neighbour = SessionTracker(new_session_id(), user_id="neighbour", backend=sqlite)
    neighbour.begin_step().end("done")
    tracker: SessionTracker | None = None
    message = ""
    try:
        tracker = SessionTracker(new_session_id(), user_id=user_id, backend=sqlite)
    except ValueError as exc:
        message = str(exc)
    if tracker is None:
        assert message.startswith("user_id must ")
        if isinstance(user_id, str):
            assert f"{len(user_id)} characters" in message
    else:
        assert isinstance(user_id, str)
        tracker.begin_step().end("done")
    assert agentsession.flush(10.0)
    assert [s.user_id for s in sqlite.list_steps(neighbour.session_id)] == ["neighbour"]
    assert agentsession.get_stats().get("dropped.backend_error", 0) == 0
    if tracker is not None:
        (stored,) = sqlite.list_steps(tracker.session_id)
        assert stored.user_id == user_id
        summary = sqlite.get_session(tracker.session_id)
        assert summary is not None
        assert summary.user_ids == [user_id]


def test_using_session_refuses_a_user_id_no_store_can_take() -> None:
    """using_session(user_id=...) applies the tracker's rule when the block is made."""
    with pytest.raises(ValueError, match="user_id must be valid Unicode text"):
        using_session("fuzz-user-2-conv-1", user_id="bad\udc80")


def test_a_metadata_user_id_no_store_can_take_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A framework's metadata cannot make a tracker raise: the bad user id is left out, logged."""
    tracker = resolve_session(None, {"session_id": "fuzz-user-3-conv-1", "user_id": "\ud800x"})
    assert tracker is not None
    assert tracker.session_id == "fuzz-user-3-conv-1"
    assert tracker.user_id is None
    assert any("user_id must be valid Unicode text" in r.getMessage() for r in caplog.records)
