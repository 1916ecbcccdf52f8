"""Which session a framework event belongs to: the one rule every adapter shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._config import get_settings
from ._context import current_session, live_sessions
from ._health import warn_once
from ._ids import session_id_problem, user_id_problem
from ._tracker import SessionTracker

__all__ = ["SESSION_ID_KEYS", "USER_ID_KEYS", "resolve_session", "session_id_from_metadata"]

SESSION_ID_KEYS = ("session_id", "thread_id", "conversation_id")
"""Metadata keys read as a session id, in this order (Phoenix, LangGraph and LangSmith use them)."""
USER_ID_KEYS = ("user_id",)


def session_id_from_metadata(metadata: Mapping[str, Any] | None) -> str | None:
    """The first valid session id found in framework metadata; invalid ones are dropped.

    A dropped id is logged once per key with the rule it broke and never raised: it came from
    a framework, not from a call the user made to us.
    """
    if not metadata:
        return None
    for key in SESSION_ID_KEYS:
        value = metadata.get(key)
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        problem = session_id_problem(value)
        if problem is None:
            return str(value)
        warn_once(
            f"metadata_session_id:{key}",
            "agentsession: ignoring metadata %r: %s",
            key,
            problem,
        )
    return None


def _user_id_from_metadata(metadata: Mapping[str, Any] | None) -> str | None:
    if not metadata:
        return None
    for key in USER_ID_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value:
            problem = user_id_problem(value[:256])
            if problem is None:
                return value[:256]
            warn_once(
                f"metadata_user_id:{key}", "agentsession: ignoring metadata %r: %s", key, problem
            )
    return None


def resolve_session(
    explicit: SessionTracker | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    auto: bool | None = None,
) -> SessionTracker | None:
    """The session an event belongs to, in the documented order.

    1. ``explicit``: a tracker handed to the adapter;
    2. a session id in the framework's ``metadata`` (``session_id``, ``thread_id``,
       ``conversation_id``), the same id always giving the same tracker;
    3. the current ``using_session`` / ``with tracker:`` block;
    4. a new session when auto ids are on (``AGENTSESSION_AUTO_SESSION_ID``), else None.
    """
    if explicit is not None:
        return explicit
    session_id = session_id_from_metadata(metadata)
    if session_id is not None:
        return live_sessions.get_or_create(session_id, _user_id_from_metadata(metadata), (), None)
    current = current_session()
    if current is not None:
        return current
    if get_settings().auto_session_id if auto is None else auto:
        return SessionTracker(user_id=_user_id_from_metadata(metadata))
    return None
