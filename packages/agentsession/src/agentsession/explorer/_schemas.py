"""The explorer API's request and response shapes, as pydantic models for its OpenAPI document.

Responses are assembled from JSON text (see ``_documents``), not from these models; the API
tests check that what is served validates against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .._models import SCORE_COMMENT_MAX, Score, SessionSummary, Step, StepStatus, ToolCall

__all__ = [
    "ErrorDocument",
    "ScoreCreated",
    "ScoreInput",
    "ScoresDocument",
    "SessionDocument",
    "SessionList",
    "StateDiff",
    "TimelineDocument",
    "TimelineEntry",
]

_STRICT = ConfigDict(extra="forbid")


class ScoreInput(BaseModel):
    """The body of ``POST /api/sessions/{id}/scores``."""

    model_config = _STRICT

    name: str = Field(description="1 to 100 characters; a score with this name is replaced")
    value: float | bool | str = Field(
        description="a number, a boolean or a label of 1 to 100 characters"
    )
    comment: str | None = Field(default=None, description=f"at most {SCORE_COMMENT_MAX} chars")


class ScoreCreated(BaseModel):
    score: Score


class ScoresDocument(BaseModel):
    scores: list[Score]


class SessionList(BaseModel):
    """One page of sessions, newest first."""

    sessions: list[SessionSummary]
    total: int = Field(description="sessions matching the filters, on every page together")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: last")


class SessionDocument(BaseModel):
    session: SessionSummary
    steps: list[Step]
    scores: list[Score]


class StateDiff(BaseModel):
    """State keys added, changed or removed since the step before (the first: since {})."""

    added: list[str]
    changed: list[str]
    removed: list[str]


class TimelineEntry(BaseModel):
    """One step on the timeline: TraceForge's fields, then the rest of the step."""

    step: int = Field(description="the step index, from 0")
    step_id: str
    trace_id: str
    parent_trace_id: str | None
    timestamp: datetime = Field(description="when the step started")
    ended_at: datetime
    kind: str
    name: str | None
    framework: str | None
    provider: str | None
    model: str | None
    duration_ms: float
    tokens: int | None = Field(description="total tokens")
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    status: StepStatus
    error: str | None
    user_id: str | None
    state_snapshot: dict[str, Any]
    tool_calls: list[ToolCall]
    input: Any
    output: Any
    tags: list[str]
    metadata: dict[str, Any]
    state_diff: StateDiff
    parent_step: int | None = Field(description="index of the step this one is nested under")
    depth: int = Field(description="how deep it is nested, 0 for a step with no parent step")


class TimelineDocument(BaseModel):
    session: SessionSummary
    timeline: list[TimelineEntry] = Field(description="in step order")
    tree_order: list[int] = Field(description="step indexes top to bottom, children under parents")


class ErrorBody(BaseModel):
    code: str = Field(description="e.g. invalid_parameter, unknown_session, unauthorized")
    message: str
    parameter: str | None = Field(default=None, description="the parameter or field at fault")


class ErrorDocument(BaseModel):
    error: ErrorBody
