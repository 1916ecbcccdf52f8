"""The capped state snapshot a session carries into each step."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic_core import PydanticSerializationError, from_json, to_json, to_jsonable_python

from ._errors import StateNotSerializableError, StateTooLargeError

logger = logging.getLogger("agentsession")

__all__ = [
    "StateSnapshot",
    "StateStore",
    "TRUNCATED_MARKER_KEY",
    "ascii_json",
    "compact_json",
    "join_object",
    "object_size",
    "shrink_largest",
    "truncation_marker",
]

StateOverflow = Literal["truncate", "error"]
TRUNCATED_MARKER_KEY = "__truncated__"


def truncation_marker(original_bytes: int) -> dict[str, Any]:
    """What replaces a value cut from a snapshot: it records the value's encoded size."""
    return {TRUNCATED_MARKER_KEY: True, "original_bytes": original_bytes}


def _marker_json(original_bytes: int) -> bytes:
    return to_json(truncation_marker(original_bytes))


class StateSnapshot:
    """An immutable state snapshot: its compact UTF-8 JSON, decoded lazily on demand."""

    __slots__ = ("_ascii", "json", "truncated_keys")

    def __init__(self, encoded: bytes, truncated_keys: tuple[str, ...] = ()) -> None:
        self.json = encoded
        self.truncated_keys = truncated_keys
        self._ascii: str | None = None

    @property
    def size(self) -> int:
        """Bytes of the compact UTF-8 JSON: the number the cap applies to."""
        return len(self.json)

    def __bool__(self) -> bool:
        return self.json != b"{}"

    def to_dict(self) -> dict[str, Any]:
        """A fresh, mutable copy of the snapshot."""
        value: dict[str, Any] = from_json(self.json)
        return value

    def ascii_json(self) -> str:
        """The snapshot as ASCII-only JSON (non-ASCII as \\u escapes): safe for an HTTP header."""
        if self._ascii is None:
            self._ascii = ascii_json(self.to_dict())
        return self._ascii


def ascii_json(value: Any) -> str:
    """Compact JSON with non-ASCII as \\u escapes: what a state header carries."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


EMPTY_SNAPSHOT = StateSnapshot(b"{}")


class StateStore:
    """Holds a session's state as encoded values and keeps its capped snapshot current.

    Every mutation is validated and applied whole or not at all: an unserializable value or,
    with ``overflow="error"``, a state over the limit raises and leaves the state unchanged.
    """

    def __init__(self, limit_bytes: int, overflow: StateOverflow, owner: str) -> None:
        if limit_bytes < 2:
            raise ValueError(f"state_limit_bytes must be at least 2, got {limit_bytes}")
        if overflow not in ("truncate", "error"):
            raise ValueError(f"state_overflow must be 'truncate' or 'error', got {overflow!r}")
        self.limit_bytes = limit_bytes
        self.overflow = overflow
        self._owner = owner
        self._encoded: dict[str, bytes] = {}
        self._encoded_keys: dict[str, bytes] = {}
        self.snapshot = EMPTY_SNAPSHOT
        self._warned = False

    def set(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, mapping: Mapping[str, Any]) -> None:
        encoded = dict(self._encoded)
        for key, value in mapping.items():
            encoded[_check_key(key)] = _encode_value(key, value)
        self._commit(encoded, changed=tuple(mapping))

    def delete(self, key: str) -> None:
        encoded = dict(self._encoded)
        encoded.pop(key, None)
        self._commit(encoded, changed=())

    def clear(self) -> None:
        self._commit({}, changed=())

    def _commit(self, encoded: dict[str, bytes], changed: tuple[str, ...]) -> None:
        keys = {key: self._encoded_keys.get(key) or to_json(key) for key in encoded}
        full_size = object_size(keys, encoded)
        truncated: tuple[str, ...] = ()
        if full_size > self.limit_bytes:
            if self.overflow == "error":
                key = changed[-1] if changed else None
                key_size = len(encoded[key]) if key is not None and key in encoded else 0
                raise StateTooLargeError(
                    f"state of session {self._owner!r} would be {full_size} bytes of JSON, over "
                    f"state_limit_bytes={self.limit_bytes}; key {key!r} holds {key_size} bytes",
                    key=key,
                    size=full_size,
                    limit=self.limit_bytes,
                )
            encoded_for_snapshot, truncated = self._truncate(keys, encoded, full_size)
        else:
            encoded_for_snapshot = encoded
        self._encoded = encoded
        self._encoded_keys = keys
        self.snapshot = StateSnapshot(join_object(keys, encoded_for_snapshot), truncated)
        if truncated and not self._warned:
            self._warned = True
            logger.warning(
                "state of session %r is %d bytes of JSON, over state_limit_bytes=%d: "
                "replaced the largest values (%s) with a truncation marker",
                self._owner,
                full_size,
                self.limit_bytes,
                ", ".join(repr(k) for k in truncated),
            )

    def _truncate(
        self, keys: dict[str, bytes], encoded: dict[str, bytes], size: int
    ) -> tuple[dict[str, bytes], tuple[str, ...]]:
        result, truncated, size = shrink_largest(encoded, size, self.limit_bytes)
        if size > self.limit_bytes:
            raise StateTooLargeError(
                f"state of session {self._owner!r} is {size} bytes of JSON even with every large "
                f"value truncated, over state_limit_bytes={self.limit_bytes} "
                f"({len(encoded)} keys; the keys themselves are too many or too long)",
                key=None,
                size=size,
                limit=self.limit_bytes,
            )
        return result, truncated


def shrink_largest(
    encoded: Mapping[str, bytes], size: int, limit: int
) -> tuple[dict[str, bytes], tuple[str, ...], int]:
    """Replace the largest encoded values with a truncation marker until the object fits.

    ``encoded`` holds each value already encoded (UTF-8 JSON for the snapshot, ASCII JSON for
    a header) and ``size`` is the encoded object's size. Returns the values, the keys cut
    (largest first) and the size reached, still over ``limit`` if the keys alone do not fit.
    """
    result = dict(encoded)
    truncated: list[str] = []
    for key in sorted(encoded, key=lambda k: len(encoded[k]), reverse=True):
        if size <= limit:
            break
        marker = _marker_json(len(encoded[key]))
        if len(marker) >= len(encoded[key]):
            break  # every remaining value is already smaller than its marker
        size -= len(encoded[key]) - len(marker)
        result[key] = marker
        truncated.append(key)
    return result, tuple(truncated), size


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise StateNotSerializableError(
            f"state keys must be non-empty strings, got {key!r}", key=repr(key)
        )
    try:
        key.encode()
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 (hence no JSON) for it
        raise StateNotSerializableError(
            f"state key {key!r} is not valid Unicode text", key=key
        ) from None
    return key


# Python's own compact JSON is the encoding the cap is defined on: pydantic_core writes some
# floats differently (0.00001 for 1e-05, 1e-7 for 1e-07), which would skew the measured size.
# Types json does not know (datetimes, models, sets...) go through pydantic's conversion.
# NaN and Infinity are refused: they are not JSON and strict parsers (proxies) reject them.
_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=to_jsonable_python
)


def compact_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, the encoding ``state_limit_bytes`` is measured in."""
    return _ENCODER.encode(value).encode()


def _encode_value(key: str, value: Any) -> bytes:
    try:
        return compact_json(value)
    except (PydanticSerializationError, TypeError, ValueError, RecursionError) as exc:
        raise StateNotSerializableError(
            f"state[{key!r}] is not JSON-serializable ({type(value).__name__}): {exc}", key=key
        ) from None


def object_size(keys: Mapping[str, bytes], encoded: Mapping[str, bytes]) -> int:
    """Bytes of the JSON object ``join_object`` would build, without building it."""
    # {"k":v,"k2":v2}: braces, one colon per entry, commas between entries.
    entries = sum(len(keys[k]) + 1 + len(v) for k, v in encoded.items())
    return 2 + entries + max(len(encoded) - 1, 0)


def join_object(keys: Mapping[str, bytes], encoded: Mapping[str, bytes]) -> bytes:
    """The JSON object of already-encoded keys and values."""
    return b"{" + b",".join(keys[k] + b":" + v for k, v in encoded.items()) + b"}"
