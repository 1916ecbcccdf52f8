"""What a step keeps of the content: capture on by default, capped, maskable, switchable off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.tools import tool
from langchain_fakes import reply, scripted

from agentsession import SessionTracker, Step
from agentsession._config import reset_settings
from agentsession_langchain import SessionCallbackHandler

StepsOf = Callable[[str], list[Step]]


@tool
def read_profile(user: str) -> str:
    """A user's profile, with their e-mail address."""
    return f"{user} <{user}@example.com>"


def agent_turn(session: SessionTracker) -> None:
    model = scripted(
        reply("", tool_calls=[{"name": "read_profile", "args": {"user": "ann"}}]),
        reply("Ann's address is ann@example.com", input_tokens=40, output_tokens=8),
    )
    config: dict[str, Any] = {"callbacks": [SessionCallbackHandler(session)]}
    first = model.invoke("What is Ann's address?", config)
    read_profile.invoke(first.tool_calls[0], config)
    model.invoke("Answer with the profile.", config)


def test_capture_off_keeps_everything_but_the_content(steps_of: StepsOf) -> None:
    """capture_content=False: no input, output or tool content; tokens, model, names stay."""
    with SessionTracker("lc-capture-0001", capture_content=False) as session:
        agent_turn(session)
    first, second = steps_of("lc-capture-0001")
    assert (first.input, first.output, second.input, second.output) == (None,) * 4
    (call,) = second.tool_calls
    assert (call.name, call.input, call.output) == ("read_profile", None, None)
    assert (second.input_tokens, second.output_tokens) == (40, 8)
    assert second.model == "gpt-4o-mini-2024-07-18"


def test_capture_off_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, steps_of: StepsOf
) -> None:
    """AGENTSESSION_CAPTURE_CONTENT=false turns capture off for every session."""
    monkeypatch.setenv("AGENTSESSION_CAPTURE_CONTENT", "false")
    reset_settings()  # read the environment again
    with SessionTracker("lc-capture-0002") as session:
        FakeListChatModel(responses=["secret"]).invoke(
            "secret", {"callbacks": [SessionCallbackHandler(session)]}
        )
    (step,) = steps_of("lc-capture-0002")
    assert (step.input, step.output) == (None, None)


def redact(value: Any) -> Any:
    """Replace e-mail addresses anywhere in a captured value."""
    if isinstance(value, str):
        return "[redacted]" if "@" in value else value
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def test_mask_runs_on_every_captured_value(steps_of: StepsOf) -> None:
    """The session's mask sees inputs, outputs and tool fields as plain data."""
    with SessionTracker("lc-capture-0003", mask=redact) as session:
        agent_turn(session)
    _, second = steps_of("lc-capture-0003")
    assert second.output == {"role": "assistant", "content": "[redacted]"}
    assert second.tool_calls[0].output == "[redacted]"
    assert second.tool_calls[0].input == {"user": "ann"}


def test_each_value_is_capped(monkeypatch: pytest.MonkeyPatch, steps_of: StepsOf) -> None:
    """Content over AGENTSESSION_CONTENT_LIMIT_BYTES is stored as a truncation marker."""
    monkeypatch.setenv("AGENTSESSION_CONTENT_LIMIT_BYTES", "1024")
    reset_settings()
    with SessionTracker("lc-capture-0004") as session:
        FakeListChatModel(responses=["short"]).invoke(
            "x" * 5000, {"callbacks": [SessionCallbackHandler(session)]}
        )
    (step,) = steps_of("lc-capture-0004")
    assert step.input["__truncated__"] is True
    assert step.input["original_bytes"] > 5000
    assert step.output == {"role": "assistant", "content": "short"}
