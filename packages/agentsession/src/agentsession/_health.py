"""Counting and logging our own faults, so that they never reach the host application."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter, OrderedDict

logger = logging.getLogger("agentsession")

__all__ = ["get_stats", "record_fault", "count", "warn_once"]

WARNED_KEYS_MAX = 10_000
"""Warning keys remembered (least recently seen out first); some are per session id."""

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_warned: OrderedDict[str, None] = OrderedDict()


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``name`` (``dropped.queue_full``, ``faults.langchain``...)."""
    with _lock:
        _counts[name] += n


def _first_time(key: str) -> bool:
    """True the first time ``key`` is seen; call with ``_lock`` held."""
    if key in _warned:
        _warned.move_to_end(key)
        return False
    _warned[key] = None
    if len(_warned) > WARNED_KEYS_MAX:
        _warned.popitem(last=False)
    return True


def warn_once(
    key: str,
    message: str,
    *args: object,
    exc: BaseException | None = None,
    level: int = logging.WARNING,
) -> None:
    """Log ``message`` at ``level`` (with ``exc``'s traceback) the first time ``key`` is seen.

    Only the latest ``WARNED_KEYS_MAX`` keys are remembered: a key that fell out (one not seen
    for that many other keys) is logged again.
    """
    with _lock:
        if not _first_time(key):
            return
    exc_info = None if exc is None else (type(exc), exc, exc.__traceback__)
    logger.log(level, message, *args, exc_info=exc_info)


def record_fault(where: str, exc: BaseException) -> None:
    """Count a fault of ours at ``where`` and log the first one there with its traceback."""
    name = f"faults.{where}"
    with _lock:
        _counts[name] += 1
        first = _first_time(name)
    if first:
        logger.warning(
            "agentsession: internal fault in %s (recording goes on; further faults there are "
            "only counted, see agentsession.get_stats())",
            where,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    else:
        logger.debug("agentsession: fault in %s: %r", where, exc)


def get_stats() -> dict[str, int]:
    """Counters of what was dropped and what failed since the process started."""
    with _lock:
        return dict(_counts)


def reset_stats() -> None:
    """Zero every counter and forget which warnings were given (for tests)."""
    with _lock:
        _counts.clear()
        _warned.clear()


def _reset_lock_in_child() -> None:
    # A thread of the parent may have held the lock at fork(); it does not exist in the child.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)
