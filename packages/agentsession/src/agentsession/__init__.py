"""agentsession: every LLM call an agent makes becomes a numbered step of a session.

Start with :class:`SessionTracker` or :func:`using_session`. Framework adapters are separate
distributions built on this core; :func:`instrument_http_client` and ``agentsession proxy``
record any OpenAI-compatible client without one.
"""

from __future__ import annotations

from ._capture import CapturePolicy, Mask
from ._config import Settings, configure, get_settings
from ._context import (
    ContextThreadPoolExecutor,
    current_session,
    current_step,
    propagate_context,
    using_session,
)
from ._errors import (
    AgentSessionError,
    InvalidHeaderError,
    InvalidScoreError,
    InvalidSessionIdError,
    StateNotSerializableError,
    StateTooLargeError,
)
from ._headers import SessionHeaders, parse_headers
from ._health import get_stats
from ._http import (
    instrument_http_client,
    session_event_hooks,
    session_http_client,
    uninstrument_http_client,
)
from ._ids import new_session_id, validate_session_id
from ._models import (
    ModelUsage,
    Score,
    SessionEnded,
    SessionEvent,
    SessionFilter,
    SessionPage,
    SessionStarted,
    SessionStatus,
    SessionSummary,
    Step,
    StepStatus,
    ToolCall,
)
from ._pricing import ModelPrice, PriceTable, get_price_table, set_price_table
from ._scores import score_session
from ._step import StepHandle
from ._timeline import render_session, render_session_list, render_timeline
from ._tracker import SessionTracker
from ._worker import flush_all as flush
from ._worker import set_default_backend
from ._worker import shutdown_all as shutdown
from .backends import (
    Backend,
    JsonlBackend,
    MemoryBackend,
    SessionReader,
    SessionWriter,
    SQLiteBackend,
    backend_from_url,
)

__version__ = "0.1.0"

__all__ = [
    "AgentSessionError",
    "Backend",
    "CapturePolicy",
    "ContextThreadPoolExecutor",
    "InvalidHeaderError",
    "InvalidScoreError",
    "InvalidSessionIdError",
    "JsonlBackend",
    "Mask",
    "MemoryBackend",
    "ModelPrice",
    "ModelUsage",
    "PriceTable",
    "SQLiteBackend",
    "Score",
    "SessionEnded",
    "SessionEvent",
    "SessionFilter",
    "SessionHeaders",
    "SessionPage",
    "SessionReader",
    "SessionStarted",
    "SessionStatus",
    "SessionSummary",
    "SessionTracker",
    "SessionWriter",
    "Settings",
    "StateNotSerializableError",
    "StateTooLargeError",
    "Step",
    "StepHandle",
    "StepStatus",
    "ToolCall",
    "backend_from_url",
    "configure",
    "current_session",
    "current_step",
    "flush",
    "get_price_table",
    "get_settings",
    "get_stats",
    "instrument_http_client",
    "new_session_id",
    "parse_headers",
    "propagate_context",
    "render_session",
    "render_session_list",
    "render_timeline",
    "score_session",
    "session_event_hooks",
    "session_http_client",
    "set_default_backend",
    "set_price_table",
    "shutdown",
    "uninstrument_http_client",
    "using_session",
    "validate_session_id",
]
