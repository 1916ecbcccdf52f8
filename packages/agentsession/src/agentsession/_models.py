"""The records a session is made of: steps, session start/end events and session summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ModelUsage",
    "SessionEnded",
    "SessionEvent",
    "SessionFilter",
    "SessionPage",
    "SessionStarted",
    "SessionStatus",
    "SessionSummary",
    "Step",
    "StepStatus",
    "ToolCall",
]

SessionStatus = Literal["in_progress", "completed", "failed", "cancelled", "timed_out"]
"""``in_progress`` until ended; ``timed_out`` is read for a session idle longer than its timeout."""

StepStatus = Literal["completed", "failed", "cancelled"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ToolCall(BaseModel):
    """A tool, retrieval or embedding call made between two LLM calls; each field is capped."""

    model_config = _FROZEN

    name: str
    input: Any = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    duration_ms: float | None = None


class Step(BaseModel):
    """One LLM call of a session, with the state the session had when the call began."""

    model_config = _FROZEN

    session_id: str
    step_index: int = Field(ge=0)
    step_id: str
    trace_id: str
    parent_trace_id: str | None = None
    kind: str = "llm"
    name: str | None = None
    framework: str | None = None
    provider: str | None = None
    model: str | None = None
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    status: StepStatus = "completed"
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = ()
    input: Any = None
    output: Any = None
    user_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionStarted(BaseModel):
    """Emitted once when a tracker starts; backends create the session row from it."""

    model_config = _FROZEN

    session_id: str
    started_at: datetime
    user_id: str | None = None
    parent_session_id: str | None = None
    parent_trace_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)
    environment: str | None = None
    timeout_s: float | None = None
    max_steps: int | None = None


class SessionEnded(BaseModel):
    """Emitted once when a tracker ends."""

    model_config = _FROZEN

    session_id: str
    ended_at: datetime
    status: SessionStatus
    reason: str | None = None
    dropped_steps: int = 0


SessionEvent = SessionStarted | Step | SessionEnded
"""What a backend's write side receives, in the order it happened."""


class ModelUsage(BaseModel):
    """Steps, tokens and cost of one model within a session."""

    model_config = ConfigDict(extra="forbid")

    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0


class SessionSummary(BaseModel):
    """A session's aggregates, kept up to date by the backend as steps arrive."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    status: SessionStatus
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = None
    last_activity_at: datetime
    total_steps: int = 0
    error_count: int = 0
    dropped_steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    usage: dict[str, ModelUsage] = Field(default_factory=dict)
    user_ids: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    environment: str | None = None
    parent_session_id: str | None = None
    parent_trace_id: str | None = None
    end_reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionFilter(BaseModel):
    """Filters of ``list_sessions``; every field narrows the result, None means any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str | None = None
    status: SessionStatus | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = Field(default=None, description="session id prefix")


class SessionPage(BaseModel):
    """One page of sessions, newest first, and the cursor of the next page (None on the last)."""

    model_config = ConfigDict(extra="forbid")

    sessions: list[SessionSummary]
    total: int
    next_cursor: str | None = None
