"""The records a session is made of: steps, session start/end events, scores and summaries."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "SCORE_COMMENT_MAX",
    "SCORE_LABEL_MAX",
    "SCORE_NAME_MAX",
    "ModelUsage",
    "Score",
    "ScoreValue",
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


SCORE_NAME_MAX = 100
SCORE_LABEL_MAX = 100
SCORE_COMMENT_MAX = 2000
_SCORE_SOURCE_MAX = 100

ScoreValue = float | bool | str
"""A number, a boolean (pass/fail) or a short label (at most 100 characters)."""


class Score(BaseModel):
    """A judgement of a whole session, by a person, an evaluator or the application itself.

    A session holds one score per name: a later score with the same name replaces the earlier
    one (the later ``created_at`` wins, so the order writes arrive in does not matter).
    """

    model_config = _FROZEN

    session_id: str
    name: str
    value: ScoreValue
    comment: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    source: str | None = None
    """Who gave the score, e.g. ``"explorer"`` for the web page; free text."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not 1 <= len(name) <= SCORE_NAME_MAX or not name.strip():
            raise ValueError(
                f"must be 1 to {SCORE_NAME_MAX} characters and not blank, "
                f"got {len(name)} characters"
            )
        return name

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: ScoreValue) -> ScoreValue:
        if isinstance(value, str) and not 1 <= len(value) <= SCORE_LABEL_MAX:
            raise ValueError(
                f"must be a number, a boolean or a label of 1 to {SCORE_LABEL_MAX} characters, "
                f"got {len(value)} characters"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        return value

    @field_validator("comment")
    @classmethod
    def _check_comment(cls, comment: str | None) -> str | None:
        if comment is not None and len(comment) > SCORE_COMMENT_MAX:
            raise ValueError(
                f"must be at most {SCORE_COMMENT_MAX} characters, got {len(comment)} characters"
            )
        return comment

    @field_validator("source")
    @classmethod
    def _check_source(cls, source: str | None) -> str | None:
        if source is not None and len(source) > _SCORE_SOURCE_MAX:
            raise ValueError(
                f"must be at most {_SCORE_SOURCE_MAX} characters, got {len(source)} characters"
            )
        return source

    @property
    def number(self) -> float | None:
        """The value as a number (a boolean counts 1 or 0), or None for a label."""
        return None if isinstance(self.value, str) else float(self.value)


SessionEvent = SessionStarted | Step | SessionEnded | Score
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
    scores: list[Score] = Field(default_factory=list)
    """The latest score of each name, sorted by name."""


class SessionFilter(BaseModel):
    """Filters of ``list_sessions``; every field narrows the result, None means any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str | None = None
    status: SessionStatus | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = Field(default=None, description="session id prefix")
    score_name: str | None = Field(default=None, description="has a score with this name")
    min_score: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="has a number or boolean score (named score_name, if given) of at least this;"
        " a boolean counts 1 or 0",
    )


class SessionPage(BaseModel):
    """One page of sessions, newest first, and the cursor of the next page (None on the last)."""

    model_config = ConfigDict(extra="forbid")

    sessions: list[SessionSummary]
    total: int
    next_cursor: str | None = None
