"""Session headers for OpenAI-compatible proxies: building them safely and parsing them strictly."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentsession import InvalidHeaderError, SessionHeaders, SessionTracker, parse_headers
from agentsession._headers import check_header_value, header_names

# RFC 9110 field values: visible US-ASCII and spaces only (no CR, LF, DEL or other controls).
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_TOKEN = re.compile(r"[A-Za-z0-9-]+")


def test_default_header_names_and_values() -> None:
    """get_headers uses the X-TraceForge names: session id and step index always present."""
    tracker = SessionTracker("hdr-user-7-conv-3")
    headers = tracker.get_headers()
    assert headers == {
        "X-TraceForge-Session-ID": "hdr-user-7-conv-3",
        "X-TraceForge-Step-Index": "0",
    }


def test_custom_prefix_changes_every_name() -> None:
    """A custom header_prefix names all four headers."""
    tracker = SessionTracker("hdr-prefix-conv-1", header_prefix="X-Acme", parent_trace_id="p-1")
    tracker.set_state("k", "v")
    assert sorted(tracker.get_headers()) == [
        "X-Acme-Parent-Trace-ID",
        "X-Acme-Session-ID",
        "X-Acme-State",
        "X-Acme-Step-Index",
    ]
    parsed = parse_headers(tracker.get_headers(), prefix="X-Acme")
    assert parsed.session_id == "hdr-prefix-conv-1"
    assert parsed.state == {"k": "v"}


def test_prefix_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENTSESSION_HEADER_PREFIX sets the default prefix of new trackers."""
    from agentsession._config import reset_settings

    monkeypatch.setenv("AGENTSESSION_HEADER_PREFIX", "X-Env-Prefix")
    reset_settings()
    assert "X-Env-Prefix-Session-ID" in SessionTracker("hdr-env-prefix-1").get_headers()


@pytest.mark.parametrize("prefix", ["", "X Bad", "X-\u00e9", "X\r\nInjected", "-X"])
def test_bad_prefix_is_refused(prefix: str) -> None:
    """A prefix that is not an HTTP token cannot produce header names."""
    with pytest.raises(ValueError, match="prefix"):
        header_names(prefix)


def test_parent_header_only_when_set() -> None:
    """The parent-trace header appears once a parent trace id is set, and not before."""
    tracker = SessionTracker("hdr-parent-conv-1")
    assert "X-TraceForge-Parent-Trace-ID" not in tracker.get_headers()
    tracker.set_parent_trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
    assert (
        tracker.get_headers()["X-TraceForge-Parent-Trace-ID"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    tracker.set_parent_trace_id(None)
    assert "X-TraceForge-Parent-Trace-ID" not in tracker.get_headers()


def test_state_header_only_when_state_is_non_empty() -> None:
    """The state header is sent only while the state has keys."""
    tracker = SessionTracker("hdr-state-conv-1")
    assert "X-TraceForge-State" not in tracker.get_headers()
    tracker.set_state("step", "plan")
    assert json.loads(tracker.get_headers()["X-TraceForge-State"]) == {"step": "plan"}
    tracker.clear_state()
    assert "X-TraceForge-State" not in tracker.get_headers()


def test_state_header_is_ascii_json() -> None:
    """Non-ASCII, CR, LF and DEL in the state are escaped; the header decodes to the same state."""
    tracker = SessionTracker("hdr-ascii-conv-1")
    state = {"city": "Z\u00fcrich", "mood": "\U0001f600", "text": "a\r\nb\x7fc", "k\u00e9y": 1}
    tracker.update_state(state)
    value = tracker.get_headers()["X-TraceForge-State"]
    assert _HEADER_VALUE.fullmatch(value)
    assert json.loads(value) == state


def test_headers_follow_step_index() -> None:
    """The step-index header names the next step; next_step moves it on."""
    tracker = SessionTracker("hdr-index-conv-1")
    assert tracker.get_headers()["X-TraceForge-Step-Index"] == "0"
    tracker.next_step()
    tracker.next_step()
    assert tracker.get_headers()["X-TraceForge-Step-Index"] == "2"


def test_headers_of_a_step_use_that_steps_index_and_state() -> None:
    """get_headers(step) describes that step even after the session moved on."""
    tracker = SessionTracker("hdr-step-conv-1")
    tracker.set_state("phase", "one")
    step = tracker.begin_step()
    tracker.set_state("phase", "two")
    tracker.begin_step().end()
    parsed = parse_headers(tracker.get_headers(step))
    assert parsed.step_index == 0
    assert parsed.state == {"phase": "one"}
    step.end()


@pytest.mark.parametrize(
    "bad", ["abc\r\nX-Evil: 1", "abc\ndef", "abc\rdef", "caf\u00e9", " padded"]
)
def test_parent_trace_id_with_unsafe_characters_is_refused(bad: str) -> None:
    """A parent trace id that could split or corrupt a header raises InvalidHeaderError."""
    tracker = SessionTracker("hdr-unsafe-conv-1")
    with pytest.raises(InvalidHeaderError, match="parent_trace_id") as excinfo:
        tracker.set_parent_trace_id(bad)
    assert excinfo.value.header == "parent_trace_id"
    assert tracker.parent_trace_id is None
    with pytest.raises(InvalidHeaderError, match="parent_trace_id"):
        SessionTracker("hdr-unsafe-conv-2", parent_trace_id=bad)


def test_check_header_value_limits_length() -> None:
    """A header value over its length limit is refused with the limit in the message."""
    assert check_header_value("field", "a" * 256) == "a" * 256
    with pytest.raises(InvalidHeaderError, match="256"):
        check_header_value("field", "a" * 257)


def test_parse_headers_reads_every_field() -> None:
    """parse_headers returns session id, step index, parent trace id and state."""
    parsed = parse_headers(
        {
            "X-TraceForge-Session-ID": "user-1-conv-2",
            "X-TraceForge-Step-Index": "7",
            "X-TraceForge-Parent-Trace-ID": "trace-abc",
            "X-TraceForge-State": '{"a":[1,2]}',
            "Content-Type": "application/json",
        }
    )
    assert parsed == SessionHeaders("user-1-conv-2", 7, "trace-abc", {"a": [1, 2]})


def test_parse_headers_is_case_insensitive_and_takes_bytes() -> None:
    """Header names match in any case, and raw (bytes, bytes) pairs as ASGI gives them work."""
    parsed = parse_headers(
        [(b"x-traceforge-session-id", b"user-1-conv-2"), (b"X-TRACEFORGE-STEP-INDEX", b"3")]
    )
    assert parsed.session_id == "user-1-conv-2"
    assert parsed.step_index == 3
    assert parsed.parent_trace_id is None
    assert parsed.state is None


def test_parse_headers_without_session_headers_is_empty() -> None:
    """A request without session headers parses to all-None fields and no problems."""
    assert parse_headers({"Accept": "*/*"}) == SessionHeaders()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-TraceForge-Session-ID", "x" * 200),
        ("X-TraceForge-Session-ID", ""),
        ("X-TraceForge-Step-Index", "-1"),
        ("X-TraceForge-Step-Index", "1.5"),
        ("X-TraceForge-Step-Index", str(2**63)),
        ("X-TraceForge-Parent-Trace-ID", "a\x01b"),
        ("X-TraceForge-State", "{not json"),
        ("X-TraceForge-State", "[1,2]"),
    ],
)
def test_strict_parse_raises_naming_the_header(name: str, value: str) -> None:
    """strict=True raises InvalidHeaderError for a malformed header, naming it."""
    with pytest.raises(InvalidHeaderError, match=name) as excinfo:
        parse_headers({name: value})
    assert excinfo.value.header == name


def test_lenient_parse_keeps_valid_parts_and_lists_problems() -> None:
    """strict=False keeps the valid fields and describes each malformed one."""
    parsed = parse_headers(
        {
            "X-TraceForge-Session-ID": "user-1-conv-2",
            "X-TraceForge-Step-Index": "nope",
            "X-TraceForge-State": "{oops",
        },
        strict=False,
    )
    assert parsed.session_id == "user-1-conv-2"
    assert parsed.step_index is None
    assert parsed.state is None
    assert len(parsed.problems) == 2
    assert any("Step-Index" in p for p in parsed.problems)
    assert any("State" in p for p in parsed.problems)


def test_oversized_state_header_is_refused_with_sizes() -> None:
    """A state header over the limit is refused, the message giving its size and the limit."""
    raw = json.dumps({"blob": "x" * 300}, separators=(",", ":"))
    with pytest.raises(InvalidHeaderError, match="100-byte") as excinfo:
        parse_headers({"X-TraceForge-State": raw}, state_limit_bytes=100)
    assert str(len(raw)) in str(excinfo.value)
    assert parse_headers({"X-TraceForge-State": raw}, state_limit_bytes=400).state == {
        "blob": "x" * 300
    }


def test_huge_state_header_is_refused_before_decoding() -> None:
    """A hostile multi-megabyte state header is refused on its length alone."""
    raw = "[" * 2_000_000
    with pytest.raises(InvalidHeaderError, match="over the"):
        parse_headers({"X-TraceForge-State": raw})


UNSTORABLE_STATES = [
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":[-Infinity]}',
    '{"a":1e999}',
    '{"a":"\\ud800"}',
    '{"\\udfff":1}',
]
"""State headers json.loads would take but no strict JSON reader or UTF-8 store can."""


@pytest.mark.parametrize("raw", UNSTORABLE_STATES)
def test_strict_parse_refuses_unstorable_state_naming_the_header(raw: str) -> None:
    """NaN, Infinity, 1e999 and lone surrogates raise InvalidHeaderError naming header and size."""
    with pytest.raises(InvalidHeaderError, match="X-TraceForge-State") as excinfo:
        parse_headers({"X-TraceForge-State": raw})
    assert excinfo.value.header == "X-TraceForge-State"
    assert f"({len(raw)} bytes)" in str(excinfo.value)


@pytest.mark.parametrize("raw", UNSTORABLE_STATES)
def test_lenient_parse_drops_unstorable_state_and_keeps_the_rest(raw: str) -> None:
    """strict=False keeps session id and index, leaves the state out and lists the problem."""
    parsed = parse_headers(
        {
            "X-TraceForge-Session-ID": "user-1-conv-2",
            "X-TraceForge-Step-Index": "5",
            "X-TraceForge-State": raw,
        },
        strict=False,
    )
    assert (parsed.session_id, parsed.step_index, parsed.state) == ("user-1-conv-2", 5, None)
    (problem,) = parsed.problems
    assert problem.startswith("X-TraceForge-State: ")


# -- property: any input yields safe header values that round-trip ------------------------------

session_ids = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=199
).filter(lambda s: s == s.strip(" "))


def _passes_header_check(value: str) -> bool:
    try:
        check_header_value("parent_trace_id", value)
    except InvalidHeaderError:
        return False
    return True


parent_trace_ids = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=256
).filter(_passes_header_check)
unsafe_text = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\r", "\n", "\x00", "\x7f", "\u2028", "\u00e9", "\U0001f600"]),
    ),
    max_size=30,
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | unsafe_text
)
state_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(unsafe_text, children, max_size=4)
    ),
    max_leaves=10,
)
states = st.dictionaries(unsafe_text.filter(bool), state_values, max_size=6)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    session_id=session_ids,
    state=states,
    parent=st.none() | parent_trace_ids,
    steps=st.integers(min_value=0, max_value=30),
    prefix=st.sampled_from(["X-TraceForge", "X-Acme", "Agent"]),
)
def test_any_input_gives_safe_headers_that_round_trip(
    session_id: str, state: dict[str, Any], parent: str | None, steps: int, prefix: str
) -> None:
    """Header values never carry CR, LF, DEL or non-ASCII, and parse_headers reads back exactly
    the session id, step index, parent trace id and state that were sent."""
    tracker = SessionTracker(session_id, parent_trace_id=parent, header_prefix=prefix)
    tracker.update_state(state)
    for _ in range(steps):
        tracker.next_step()
    headers = tracker.get_headers()
    for name, value in headers.items():
        assert _TOKEN.fullmatch(name)
        assert _HEADER_VALUE.fullmatch(value), (name, value)
    parsed = parse_headers(headers, prefix=prefix)
    assert parsed.session_id == session_id
    assert parsed.step_index == steps
    assert parsed.parent_trace_id == parent
    expected_state = dict(tracker.state)
    assert parsed.state == (expected_state or None)
    assert parsed.problems == ()


# -- property: no header value, however hostile, escapes as anything but InvalidHeaderError ------

_SESSION_HEADER_NAMES = header_names("X-TraceForge")
hostile_values = st.one_of(
    st.binary(max_size=64),
    st.text(st.characters(max_codepoint=0xFF), max_size=64).map(lambda t: t.encode("latin-1")),
    st.sampled_from([b"NaN", b'{"a":NaN}', b'{"a":-Infinity}', b'{"a":1e999}', b'{"a":"\\ud800"}']),
    # JSON-ish text, so the fuzz also gets past json.loads into the object and size checks.
    st.lists(
        st.sampled_from(['{"', '"', ":", ",", "}", "[", "]", "\\u", "d800", "1e9", "NaN", "a"]),
        max_size=20,
    ).map(lambda parts: "".join(parts).encode("latin-1")),
)


@settings(max_examples=300, deadline=None)
@given(values=st.tuples(*[st.none() | hostile_values for _ in _SESSION_HEADER_NAMES]))
def test_hostile_header_values_fail_only_with_invalid_header_error(
    values: tuple[bytes | None, ...],
) -> None:
    """Random bytes in any session header: strict mode raises only InvalidHeaderError (naming
    a session header) and lenient mode never raises."""
    headers = [
        (name.encode(), value)
        for name, value in zip(_SESSION_HEADER_NAMES, values, strict=True)
        if value is not None
    ]
    lenient = parse_headers(headers, strict=False)
    assert all(problem.split(":", 1)[0] in _SESSION_HEADER_NAMES for problem in lenient.problems)
    if lenient.problems:
        with pytest.raises(InvalidHeaderError) as excinfo:
            parse_headers(headers)
        assert excinfo.value.header in _SESSION_HEADER_NAMES
    else:
        assert parse_headers(headers) == lenient
