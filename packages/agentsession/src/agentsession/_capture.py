"""Capturing inputs and outputs: the switch, the cap and the mask hook shared by every adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json, to_json

from ._state import TRUNCATED_MARKER_KEY

__all__ = ["CapturePolicy", "Mask"]

Mask = Callable[[Any], Any]
"""Called with each captured value before it leaves the process; returns the value to keep."""

_PREVIEW_CHARS = 512


@dataclass(frozen=True)
class CapturePolicy:
    """Whether inputs/outputs are kept, each value's byte cap, and an optional mask."""

    enabled: bool = True
    limit_bytes: int = 16_384
    mask: Mask | None = None

    def apply(self, value: Any) -> Any:
        """The value as stored: None when capture is off, masked, then capped."""
        if not self.enabled or value is None:
            return None
        if self.mask is not None:
            value = self.mask(value)
        return cap_value(value, self.limit_bytes)


def cap_value(value: Any, limit_bytes: int) -> Any:
    """Return ``value`` as JSON-compatible data no larger than ``limit_bytes`` once encoded.

    Values that do not fit become a marker with their size and a short text preview.
    Unknown types are encoded with ``str()`` rather than refused: capture must not fail.
    """
    encoded = to_json(value, fallback=_fallback)
    if len(encoded) <= limit_bytes:
        return value if _is_plain(value) else from_json(encoded)
    preview = encoded[: min(_PREVIEW_CHARS, max(limit_bytes // 2, 0))].decode("utf-8", "ignore")
    return {TRUNCATED_MARKER_KEY: True, "original_bytes": len(encoded), "preview": preview}


def _fallback(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
