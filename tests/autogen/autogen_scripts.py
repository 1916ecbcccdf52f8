"""Scripted AutoGen models and tools shared by the AutoGen adapter's tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from agentsession import Step

MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)
API_KEY = "sk-test-not-a-real-key"


def tool_call(name: str, call_id: str, **arguments: Any) -> CreateResult:
    """A model answer that asks for one tool call."""
    return tool_calls((name, call_id, arguments))


def tool_calls(*calls: tuple[str, str, dict[str, Any]]) -> CreateResult:
    """A model answer that asks for several tool calls at once."""
    return CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(id=call_id, name=name, arguments=json.dumps(arguments))
            for name, call_id, arguments in calls
        ],
        usage=RequestUsage(prompt_tokens=20, completion_tokens=5),
        cached=False,
    )


def answer(text: str, prompt_tokens: int = 30, completion_tokens: int = 8) -> CreateResult:
    """A model answer in text, with known token counts."""
    return CreateResult(
        finish_reason="stop",
        content=text,
        usage=RequestUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
        cached=False,
    )


def replay(*responses: str | CreateResult) -> ReplayChatCompletionClient:
    """AutoGen's scripted model, able to call functions, answering ``responses`` in order."""
    return ReplayChatCompletionClient(list(responses), model_info=MODEL_INFO)


def search_flights(destination: str) -> str:
    """Search flights to a destination."""
    return f"AF1481 and KL1243 fly to {destination}"


def book_flight(flight: str) -> str:
    """Book a flight by number."""
    return f"booked {flight}"


def names(steps: Sequence[Step]) -> list[str | None]:
    """The step names (the agent of each call) in step order."""
    return [step.name for step in steps]
