"""Capturing inputs and outputs: the on/off switch, the byte cap and the mask hook."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from agentsession import CapturePolicy, SessionTracker, Step, configure
from agentsession._capture import cap_value
from agentsession._state import TRUNCATED_MARKER_KEY

StepsOf = Callable[[str], list[Step]]


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def test_values_under_the_cap_are_kept() -> None:
    """A value whose JSON fits the cap is stored unchanged."""
    value = {"messages": [{"role": "user", "content": "hi"}], "n": 2}
    assert cap_value(value, 1000) == value
    assert cap_value("short", 1000) == "short"


def test_values_over_the_cap_become_a_marker() -> None:
    """A value over the cap becomes a marker with its original size and a short preview."""
    value = {"text": "x" * 5000}
    capped = cap_value(value, 1000)
    assert capped[TRUNCATED_MARKER_KEY] is True
    assert capped["original_bytes"] == _size(value)
    assert capped["preview"].startswith('{"text":"xxx')
    assert 0 < len(capped["preview"]) <= 1000
    assert _size(capped) <= 1000


def test_preview_never_splits_a_character() -> None:
    """The preview of multi-byte text is valid text, not half a character."""
    capped = cap_value("\U0001f600" * 1000, 101)
    assert "\ufffd" not in capped["preview"]
    assert set(capped["preview"]) <= {'"', "\U0001f600"}


def test_unknown_types_are_captured_as_text() -> None:
    """Objects JSON does not know are stored as their str(), not refused."""

    class Thing:
        def __str__(self) -> str:
            return "<thing 7>"

    assert cap_value({"obj": Thing()}, 1000) == {"obj": "<thing 7>"}
    when = datetime(2025, 1, 2, tzinfo=timezone.utc)
    assert cap_value(when, 1000) == when.isoformat().replace("+00:00", "Z")


def test_policy_off_keeps_nothing() -> None:
    """With capture disabled every value is stored as None, and the mask is not even called."""
    calls: list[Any] = []

    def spy(value: Any) -> Any:
        calls.append(value)
        return value

    policy = CapturePolicy(enabled=False, mask=spy)
    assert policy.apply("secret") is None
    assert calls == []


def test_policy_masks_then_caps() -> None:
    """The mask sees the raw value and its result is what gets capped and stored."""
    policy = CapturePolicy(limit_bytes=50, mask=lambda v: v.replace("secret", "***"))
    assert policy.apply("my secret") == "my ***"
    capped = policy.apply("secret " * 100)
    assert capped["original_bytes"] == _size("*** " * 100)


def test_capture_off_records_no_content(steps_of: StepsOf) -> None:
    """capture_content=False stores no input, output or tool-call content, but keeps metadata."""
    tracker = SessionTracker("cap-off-conv", capture_content=False)
    tracker.record_tool_call("lookup", "tool in", "tool out")
    tracker.begin_step(model="m", input="prompt").end("answer", input_tokens=5)
    [step] = steps_of("cap-off-conv")
    assert (step.input, step.output) == (None, None)
    assert [(c.name, c.input, c.output) for c in step.tool_calls] == [("lookup", None, None)]
    assert (step.model, step.input_tokens) == ("m", 5)


def test_capture_off_from_settings(steps_of: StepsOf) -> None:
    """configure(capture_content=False) applies to trackers created afterwards."""
    configure(capture_content=False)
    tracker = SessionTracker("cap-off-settings")
    tracker.begin_step(input="prompt").end("answer")
    [step] = steps_of("cap-off-settings")
    assert (step.input, step.output) == (None, None)


def test_content_limit_caps_step_fields(steps_of: StepsOf) -> None:
    """content_limit_bytes caps each step input, output and tool-call field separately."""
    configure(content_limit_bytes=100)
    tracker = SessionTracker("cap-limit-conv")
    long_text = "y" * 1000
    tracker.record_tool_call("fetch", "small", long_text)
    tracker.begin_step(input=long_text).end("short answer")
    [step] = steps_of("cap-limit-conv")
    assert step.input[TRUNCATED_MARKER_KEY] is True
    assert step.input["original_bytes"] == _size(long_text)
    assert step.output == "short answer"
    assert step.tool_calls[0].input == "small"
    assert step.tool_calls[0].output["original_bytes"] == _size(long_text)


def test_mask_applies_to_input_output_and_tool_calls(steps_of: StepsOf) -> None:
    """The mask hook runs on every captured field before it is stored."""

    def redact(value: Any) -> Any:
        return json.loads(json.dumps(value).replace("4111-1111", "[card]"))

    tracker = SessionTracker("cap-mask-conv", mask=redact)
    tracker.record_tool_call("charge", {"card": "4111-1111"}, "charged 4111-1111")
    tracker.begin_step(input="pay with 4111-1111").end({"echo": "4111-1111"})
    [step] = steps_of("cap-mask-conv")
    assert step.input == "pay with [card]"
    assert step.output == {"echo": "[card]"}
    assert step.tool_calls[0].input == {"card": "[card]"}
    assert step.tool_calls[0].output == "charged [card]"
    assert "4111" not in step.model_dump_json()


@pytest.mark.parametrize("limit", [1, 10, 64])
def test_tiny_limits_still_produce_a_marker(limit: int) -> None:
    """Even a tiny cap yields a well-formed marker rather than an error."""
    capped = cap_value("z" * 500, limit)
    assert capped[TRUNCATED_MARKER_KEY] is True
    assert capped["original_bytes"] == _size("z" * 500)
