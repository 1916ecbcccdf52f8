"""Counting and logging our own faults, so that they never reach the host application."""

from __future__ import annotations

import logging
import threading
from collections import Counter

logger = logging.getLogger("agentsession")

__all__ = ["get_stats", "record_fault", "count", "warn_once"]

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_warned: set[str] = set()


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``name`` (``dropped.queue_full``, ``faults.langchain``...)."""
    with _lock:
        _counts[name] += n


def warn_once(key: str, message: str, *args: object, exc: BaseException | None = None) -> None:
    """Log ``message`` at WARNING (with ``exc``'s traceback) the first time ``key`` is seen."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    exc_info = None if exc is None else (type(exc), exc, exc.__traceback__)
    logger.warning(message, *args, exc_info=exc_info)


def record_fault(where: str, exc: BaseException) -> None:
    """Count a fault of ours at ``where`` and log the first one there with its traceback."""
    name = f"faults.{where}"
    with _lock:
        _counts[name] += 1
        first = name not in _warned
        _warned.add(name)
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
