"""Header dialects: TraceForge, Helicone, LiteLLM and W3C baggage; the state header budget."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentsession
from agentsession import SessionTracker, configure, parse_headers
from agentsession._config import reset_settings
from agentsession._dialects import (
    BAGGAGE_LIMIT_BYTES,
    KNOWN_DIALECTS,
    merge_baggage,
    parse_dialects,
)

ALL_DIALECTS = ("traceforge", "helicone", "litellm", "baggage")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_HEADER_VALUE = re.compile(r"([\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?)?")
_BAGGAGE_MEMBER = re.compile(r"[A-Za-z0-9.]+=[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")


def _baggage(headers: dict[str, str]) -> dict[str, str]:
    members = (member.split("=", 1) for member in headers["baggage"].split(","))
    return {key: unquote(value) for key, value in members}


def test_traceforge_is_the_default_dialect() -> None:
    """With no dialect chosen, get_headers writes the TraceForge headers and nothing else."""
    tracker = SessionTracker("dialect-default-1", user_id="u-1")
    tracker.set_state("k", "v")
    assert tracker.header_dialects == ("traceforge",)
    assert sorted(tracker.get_headers()) == [
        "X-TraceForge-Session-ID",
        "X-TraceForge-State",
        "X-TraceForge-Step-Index",
    ]


def test_helicone_headers_encode_the_chain_of_parent_sessions() -> None:
    """Helicone-Session-Path is /<root>/.../<own id> along child(); the name defaults to the id."""
    root = SessionTracker("dialect-root-1", header_dialects=("helicone",))
    child = root.child(session_id="dialect-child-1", metadata={"session_name": "Flight search"})
    grandchild = child.child(session_id="dialect-grandchild-1")
    assert root.get_headers() == {
        "Helicone-Session-Id": "dialect-root-1",
        "Helicone-Session-Path": "/dialect-root-1",
        "Helicone-Session-Name": "dialect-root-1",
    }
    assert child.get_headers()["Helicone-Session-Path"] == "/dialect-root-1/dialect-child-1"
    assert child.get_headers()["Helicone-Session-Name"] == "Flight search"
    assert grandchild.session_path == ("dialect-root-1", "dialect-child-1", "dialect-grandchild-1")
    assert grandchild.get_headers()["Helicone-Session-Path"] == (
        "/dialect-root-1/dialect-child-1/dialect-grandchild-1"
    )


def test_helicone_path_segments_and_names_are_percent_encoded() -> None:
    """A '/' inside an id cannot split the path, and a name with CR/LF or accents stays ASCII."""
    tracker = SessionTracker(
        "team/a 1%",
        header_dialects="helicone",
        metadata={"session_name": "  Réservation\r\nX-Evil: 1  "},
    )
    headers = tracker.get_headers()
    assert headers["Helicone-Session-Path"] == "/team%2Fa%201%25"
    assert unquote(headers["Helicone-Session-Path"][1:]) == "team/a 1%"
    assert headers["Helicone-Session-Name"] == "R%C3%A9servation%0D%0AX-Evil: 1"
    assert unquote(headers["Helicone-Session-Name"]) == "Réservation\r\nX-Evil: 1"


def test_litellm_dialect_sends_the_session_id() -> None:
    """The litellm dialect is x-litellm-session-id, the header LiteLLM groups a session by."""
    tracker = SessionTracker("dialect-litellm-1", header_dialects=["litellm"])
    assert tracker.get_headers() == {"x-litellm-session-id": "dialect-litellm-1"}


def test_baggage_carries_session_and_user_ids_never_the_state() -> None:
    """baggage has session.id (and user.id when set), percent-encoded, and no state at all."""
    tracker = SessionTracker("dialect-baggage 1", user_id='a,b;c "é"%', header_dialects="baggage")
    tracker.set_state("secret_plan", "do not leak")
    headers = tracker.get_headers()
    assert list(headers) == ["baggage"]
    assert headers["baggage"] == (
        "session.id=dialect-baggage%201,user.id=a%2Cb%3Bc%20%22%C3%A9%22%25"
    )
    assert _baggage(headers) == {"session.id": "dialect-baggage 1", "user.id": 'a,b;c "é"%'}
    assert "secret" not in headers["baggage"]
    anonymous = SessionTracker("dialect-baggage-2", header_dialects="baggage")
    assert anonymous.get_headers() == {"baggage": "session.id=dialect-baggage-2"}


def test_several_dialects_at_once() -> None:
    """Every dialect asked for is written, each with the same session id."""
    tracker = SessionTracker("dialect-all-1", header_dialects=ALL_DIALECTS)
    headers = tracker.get_headers()
    assert headers["X-TraceForge-Session-ID"] == "dialect-all-1"
    assert headers["Helicone-Session-Id"] == "dialect-all-1"
    assert headers["x-litellm-session-id"] == "dialect-all-1"
    assert _baggage(headers)["session.id"] == "dialect-all-1"


@pytest.mark.parametrize("dialects", ["zipkin", ("traceforge", "helicon"), (), ""])
def test_unknown_dialect_is_a_clear_error(dialects: Any) -> None:
    """An unknown or empty dialect list raises ValueError naming every known dialect."""
    with pytest.raises(ValueError, match="traceforge, helicone, litellm, baggage"):
        parse_dialects(dialects)
    with pytest.raises(ValueError, match="known dialects"):
        SessionTracker("dialect-bad-1", header_dialects=dialects)


def test_dialect_names_are_trimmed_lowered_and_deduplicated() -> None:
    """'Traceforge, helicone,traceforge' reads as (traceforge, helicone)."""
    assert parse_dialects("Traceforge, helicone,traceforge,") == ("traceforge", "helicone")
    assert KNOWN_DIALECTS == ALL_DIALECTS


def test_dialects_and_budget_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENTSESSION_HEADER_DIALECTS and AGENTSESSION_HEADER_BUDGET_BYTES set the defaults."""
    monkeypatch.setenv("AGENTSESSION_HEADER_DIALECTS", "traceforge,helicone")
    monkeypatch.setenv("AGENTSESSION_HEADER_BUDGET_BYTES", "512")
    reset_settings()
    tracker = SessionTracker("dialect-env-1")
    assert tracker.header_dialects == ("traceforge", "helicone")
    assert tracker.header_budget_bytes == 512
    assert "Helicone-Session-Id" in tracker.get_headers()
    configure(header_dialects=("litellm",))
    assert SessionTracker("dialect-env-2").get_headers() == {
        "x-litellm-session-id": "dialect-env-2"
    }


def test_child_inherits_dialects_and_budget() -> None:
    """A child session writes the same dialects within the same budget as its parent."""
    parent = SessionTracker("dialect-parent-1", header_dialects="litellm", header_budget_bytes=99)
    child = parent.child()
    assert child.header_dialects == ("litellm",)
    assert child.header_budget_bytes == 99


@pytest.mark.parametrize("budget", [0, -1])
def test_budget_must_be_positive(budget: int) -> None:
    """header_budget_bytes below 1 is refused with the value named."""
    with pytest.raises(ValueError, match=f"header_budget_bytes must be positive, got {budget}"):
        SessionTracker("dialect-budget-bad", header_budget_bytes=budget)


def test_state_over_budget_is_truncated_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """Over the budget, the largest values become the marker until it fits; a header names them."""
    tracker = SessionTracker("dialect-budget-1", header_budget_bytes=200)
    tracker.update_state({"small": 1, "big": "x" * 300, "medium": "é" * 40, "tiny": True})
    caplog.set_level(logging.WARNING, logger="agentsession")
    headers = tracker.get_headers()
    tracker.get_headers()
    state_header = headers["X-TraceForge-State"]
    assert len(state_header) <= 200
    state = json.loads(state_header)
    assert state == {
        "small": 1,
        "big": {"__truncated__": True, "original_bytes": 302},
        "medium": {"__truncated__": True, "original_bytes": 242},  # 40 x \u00e9, quoted
        "tiny": True,
    }
    assert headers["X-TraceForge-State-Truncated"] == "big,medium"
    assert parse_headers(headers).state == state
    assert dict(tracker.state)["big"] == "x" * 300  # only the header is cut, not the state
    warnings = [r for r in caplog.records if "header_budget_bytes=200" in r.getMessage()]
    assert len(warnings) == 1
    assert agentsession.get_stats()["headers.state_truncated"] == 2


def test_non_ascii_state_is_measured_as_sent() -> None:
    """The budget applies to the ASCII JSON on the wire, where é takes 6 bytes, not 2."""
    tracker = SessionTracker("dialect-budget-2", header_budget_bytes=100)
    tracker.update_state({"name": "é" * 20, "n": 1})  # 57 bytes as UTF-8, 137 as ASCII JSON
    headers = tracker.get_headers()
    assert json.loads(headers["X-TraceForge-State"]) == {
        "name": {"__truncated__": True, "original_bytes": 122},
        "n": 1,
    }
    assert headers["X-TraceForge-State-Truncated"] == "name"


def test_truncated_keys_header_is_safe_for_any_key() -> None:
    """Keys listed in State-Truncated are percent-encoded: commas, spaces, CR/LF, accents."""
    tracker = SessionTracker("dialect-budget-3", header_budget_bytes=120)
    key = "a,b c\r\né"
    tracker.update_state({key: "y" * 200})
    value = tracker.get_headers()["X-TraceForge-State-Truncated"]
    assert value == "a%2Cb%20c%0D%0A%C3%A9"
    assert unquote(value) == key


def test_state_over_budget_with_error_overflow_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """state_overflow="error": the state header is left out, counted, warned once, never raised."""
    tracker = SessionTracker(
        "dialect-budget-4", header_budget_bytes=50, state_overflow="error", parent_trace_id="p1"
    )
    tracker.set_state("big", "z" * 100)
    caplog.set_level(logging.WARNING, logger="agentsession")
    for _ in range(3):
        headers = tracker.get_headers()
        assert "X-TraceForge-State" not in headers
        assert headers["X-TraceForge-Parent-Trace-ID"] == "p1"
    assert len([r for r in caplog.records if "left out" in r.getMessage()]) == 1
    assert agentsession.get_stats()["headers.state_left_out"] == 3


def test_state_whose_keys_alone_exceed_the_budget_is_left_out() -> None:
    """When even every value truncated does not fit, the state header is left out."""
    tracker = SessionTracker("dialect-budget-5", header_budget_bytes=40)
    tracker.update_state({f"key-number-{i}": i for i in range(10)})
    headers = tracker.get_headers()
    assert "X-TraceForge-State" not in headers
    assert "X-TraceForge-State-Truncated" not in headers
    assert agentsession.get_stats()["headers.state_left_out"] == 1


def test_baggage_merge_keeps_foreign_members_and_replaces_stale_ones() -> None:
    """Foreign members stay in order; our stale session.id/user.id are replaced by ours."""
    existing = "tenant=acme, session.id=stale;ttl=5 ,user.id=old,, region=eu"
    merged = merge_baggage(existing, "session.id=new,user.id=u", "s")
    assert merged == "tenant=acme,region=eu,session.id=new,user.id=u"
    assert merge_baggage(None, "session.id=new", "s") == "session.id=new"
    # Without a user id of ours, the application's own user.id is not ours to remove.
    assert merge_baggage("user.id=app", "session.id=new", "s") == "user.id=app,session.id=new"


def test_baggage_over_the_limit_leaves_ours_out(caplog: pytest.LogCaptureFixture) -> None:
    """If ours would push baggage past 8,192 bytes, ours are left out, counted and warned once."""
    caplog.set_level(logging.WARNING, logger="agentsession")
    foreign = "big=" + "v" * (BAGGAGE_LIMIT_BYTES - 20)
    assert merge_baggage(foreign, "session.id=abcdefghijklmnop", "s-1") == foreign
    assert merge_baggage(foreign, "session.id=abcdefghijklmnop", "s-1") == foreign
    fits = "big=" + "v" * (BAGGAGE_LIMIT_BYTES - 40)
    merged = merge_baggage(fits, "session.id=abcdefghijklmnop", "s-1")
    assert merged is not None
    assert len(merged) <= BAGGAGE_LIMIT_BYTES
    assert merged.endswith(",session.id=abcdefghijklmnop")
    assert agentsession.get_stats()["headers.baggage_left_out"] == 2
    assert len([r for r in caplog.records if "W3C limit" in r.getMessage()]) == 1


def test_own_baggage_over_the_limit_is_left_out() -> None:
    """A user id so long that our members alone exceed 8,192 bytes gives no baggage header."""
    tracker = SessionTracker("dialect-baggage-3", user_id="é" * 2000, header_dialects="baggage")
    assert tracker.get_headers() == {}
    assert agentsession.get_stats()["headers.baggage_left_out"] == 1


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


session_ids = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=199
).filter(lambda s: s == s.strip(" "))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    session_id=session_ids,
    parent_id=st.none() | session_ids,
    user_id=st.none() | st.text(),
    session_name=st.none() | st.text() | st.integers(),
    state=st.dictionaries(st.text(min_size=1), json_values, max_size=5),
    dialects=st.lists(st.sampled_from(ALL_DIALECTS), min_size=1, unique=True),
    budget=st.integers(min_value=1, max_value=400),
)
def test_any_input_gives_ascii_headers_without_cr_lf_in_every_dialect(
    session_id: str,
    parent_id: str | None,
    user_id: str | None,
    session_name: Any,
    state: dict[str, Any],
    dialects: list[str],
    budget: int,
) -> None:
    """Whatever the ids, name, user and state: names are tokens, values printable ASCII, baggage
    members W3C-valid and decoding to the ids, and the state header within the budget."""
    parent = None
    if parent_id is not None:
        parent = SessionTracker(parent_id[:199])
    tracker_kwargs: dict[str, Any] = {
        "user_id": user_id,
        "metadata": {"session_name": session_name},
        "header_dialects": dialects,
        "header_budget_bytes": budget,
    }
    session_id = session_id[:199]
    if parent is None:
        tracker = SessionTracker(session_id, **tracker_kwargs)
    else:
        tracker = parent.child(session_id=session_id, **tracker_kwargs)
    tracker.update_state(state)
    headers = tracker.get_headers()
    for name, value in headers.items():
        assert _TOKEN.fullmatch(name), name
        assert "\r" not in value
        assert "\n" not in value
        assert value.isascii()
        assert _HEADER_VALUE.fullmatch(value.strip(" ")), (name, value)
    if "X-TraceForge-State" in headers:
        assert len(headers["X-TraceForge-State"]) <= budget
    if "baggage" in headers:
        for member in headers["baggage"].split(","):
            assert _BAGGAGE_MEMBER.fullmatch(member), member
        assert _baggage(headers)["session.id"] == session_id
    if "Helicone-Session-Path" in headers:
        segments = headers["Helicone-Session-Path"].split("/")[1:]
        assert [unquote(s) for s in segments] == list(tracker.session_path)
