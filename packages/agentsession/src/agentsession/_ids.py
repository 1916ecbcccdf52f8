"""Session ids: the validity rule, weak-id warnings and time-ordered generation."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from ._errors import InvalidSessionIdError
from ._health import warn_once

MAX_SESSION_ID_LENGTH = 199
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_WEAK_ID = re.compile(r"(?i)(test|session|sess|debug|demo|default|example|foo|bar|id)[-_ ]?\d{0,3}")

_uuid7_lock = threading.Lock()
_last_uuid7_ms = 0
_uuid7_seq = 0


def new_session_id() -> str:
    """Return a new UUIDv7 string: random, and ordered by creation time so storage stays local."""
    global _last_uuid7_ms, _uuid7_seq
    with _uuid7_lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_uuid7_ms:
            # Same millisecond (or a clock step back): keep ids monotonic with a counter.
            _uuid7_seq += 1
            now_ms = _last_uuid7_ms
            if _uuid7_seq > 0xFFF:
                # The 12-bit counter is spent: borrow the next millisecond rather than wrap.
                now_ms += 1
                _uuid7_seq = 0
        else:
            _uuid7_seq = 0
        _last_uuid7_ms = now_ms
        seq = _uuid7_seq
    value = (now_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= seq << 64
    value |= 0b10 << 62
    value |= int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    return str(uuid.UUID(int=value))


def session_id_problem(session_id: object) -> str | None:
    """Say why ``session_id`` breaks the rule, or return None when it is valid."""
    if not isinstance(session_id, str):
        return f"session_id must be a str, got {type(session_id).__name__}"
    length = len(session_id)
    if length == 0:
        return "session_id must be 1 to 199 printable US-ASCII characters, got an empty string"
    if length > MAX_SESSION_ID_LENGTH:
        return (
            f"session_id must be 1 to {MAX_SESSION_ID_LENGTH} printable US-ASCII characters, "
            f"got {length} characters"
        )
    if session_id != session_id.strip(" "):
        # HTTP strips surrounding spaces from header values: such an id would not survive a proxy.
        return (
            "session_id must not start or end with a space (HTTP headers drop them), "
            f"got a {length}-character id"
        )
    if not _PRINTABLE_ASCII.fullmatch(session_id):
        bad = next(c for c in session_id if not (" " <= c <= "~"))
        shown = repr(bad)
        if "\udc80" <= bad <= "\udcff":  # a byte that was not UTF-8, as surrogateescape keeps it
            shown = f"the byte 0x{ord(bad) - 0xDC00:02X} (not UTF-8)"
        return (
            "session_id must be printable US-ASCII (0x20-0x7E), "
            f"got {shown} in a {length}-character id"
        )
    return None


def validate_session_id(session_id: object) -> str:
    """Return ``session_id`` if valid; else raise :class:`InvalidSessionIdError` naming the rule."""
    problem = session_id_problem(session_id)
    if problem is not None:
        raise InvalidSessionIdError(problem)
    assert isinstance(session_id, str)
    if is_weak_session_id(session_id):
        # Once per id: the same id is validated at every turn of its conversation.
        warn_once(
            f"weak_session_id:{session_id}",
            "session_id %r is easy to collide with; prefer a UUID or 'user_<id>_conv_<id>'",
            session_id,
        )
    return session_id


def user_id_problem(user_id: object) -> str | None:
    """Say why ``user_id`` cannot be stored, or return None when it can."""
    if not isinstance(user_id, str):
        return f"user_id must be a str, got {type(user_id).__name__}"
    try:
        user_id.encode()
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8: no store takes it, and a batch holding it fails whole.
        return (
            f"user_id must be valid Unicode text, got a lone surrogate in {len(user_id)} characters"
        )
    return None


def validate_user_id(user_id: str | None) -> str | None:
    """Return ``user_id`` (None included) if it can be stored; else raise ValueError naming why."""
    problem = None if user_id is None else user_id_problem(user_id)
    if problem is not None:
        raise ValueError(problem)
    return user_id


def is_weak_session_id(session_id: str) -> bool:
    """True for ids such as ``"test"`` or ``"session_1"`` that different runs will reuse."""
    return len(session_id) < 4 or _WEAK_ID.fullmatch(session_id) is not None


def new_trace_id() -> str:
    """A W3C/OpenTelemetry trace id: 32 lowercase hex digits."""
    return os.urandom(16).hex()


def new_span_id() -> str:
    """A W3C/OpenTelemetry span id: 16 lowercase hex digits."""
    return os.urandom(8).hex()


def _reset_lock_in_child() -> None:
    # A thread of the parent may have held the lock at fork(); it does not exist in the child.
    global _uuid7_lock
    _uuid7_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)
