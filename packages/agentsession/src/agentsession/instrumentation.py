"""What a framework adapter builds on: the contract, session resolution and fault accounting.

agentsession's own adapters (LangChain, LlamaIndex, AutoGen) use exactly this module, and so can
an adapter written outside this repository. An adapter translates its framework's events into
:meth:`SessionTracker.begin_step` / :meth:`StepHandle.end` / :meth:`SessionTracker.record_tool_call`
calls, finds the session with :func:`resolve_session`, and reports its own faults with
:func:`record_fault` instead of raising them into the application.
"""

from __future__ import annotations

from ._health import count, record_fault, warn_once
from ._instrumentor import Instrumentor, UnmetRequirement, check_requirements
from ._resolve import SESSION_ID_KEYS, USER_ID_KEYS, resolve_session, session_id_from_metadata
from ._step import describe_error

__all__ = [
    "Instrumentor",
    "SESSION_ID_KEYS",
    "USER_ID_KEYS",
    "UnmetRequirement",
    "check_requirements",
    "count",
    "describe_error",
    "record_fault",
    "resolve_session",
    "session_id_from_metadata",
    "warn_once",
]
