"""Errors raised for bad input. Recording faults are never raised: they are counted and logged."""

from __future__ import annotations

__all__ = [
    "AgentSessionError",
    "InvalidHeaderError",
    "InvalidScoreError",
    "InvalidSessionIdError",
    "StateNotSerializableError",
    "StateTooLargeError",
]


class AgentSessionError(Exception):
    """Base class of every error agentsession raises on purpose."""


class InvalidSessionIdError(AgentSessionError, ValueError):
    """A session id breaks the rule: printable US-ASCII, 1 to 199 characters."""


class StateTooLargeError(AgentSessionError, ValueError):
    """A state snapshot does not fit under the tracker's ``state_limit_bytes``."""

    def __init__(self, message: str, *, key: str | None, size: int, limit: int) -> None:
        super().__init__(message)
        self.key = key
        self.size = size
        self.limit = limit


class StateNotSerializableError(AgentSessionError, TypeError):
    """A state value cannot be encoded as JSON."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class InvalidHeaderError(AgentSessionError, ValueError):
    """A session header received by a server is malformed."""

    def __init__(self, message: str, *, header: str) -> None:
        super().__init__(message)
        self.header = header


class InvalidScoreError(AgentSessionError, ValueError):
    """A session score breaks a rule: its name, value, comment or source."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field
