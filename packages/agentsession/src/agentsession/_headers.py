"""Session headers for OpenAI-compatible proxies (TraceForge's names), built and parsed safely."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import InvalidHeaderError
from ._ids import session_id_problem
from ._state import StateSnapshot, compact_json

__all__ = [
    "DEFAULT_HEADER_PREFIX",
    "MAX_STEP_INDEX",
    "SessionHeaders",
    "build_headers",
    "check_header_value",
    "parse_headers",
    "response_header_names",
]

DEFAULT_HEADER_PREFIX = "X-TraceForge"
MAX_STEP_INDEX = 2**63 - 1
MAX_TRACE_ID_LENGTH = 256
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_SAFE_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")
_DIGITS = re.compile(r"[0-9]{1,20}")
_OWS = " \t"
"""The only white space HTTP trims around a value (RFC 9110 5.6.3): not CR, LF or NEL."""


def header_names(prefix: str) -> tuple[str, str, str, str]:
    """The session-id, step-index, parent-trace-id and state header names for ``prefix``."""
    if not _TOKEN.fullmatch(prefix):
        raise ValueError(f"header prefix must be letters, digits and '-', got {prefix!r}")
    return (
        f"{prefix}-Session-ID",
        f"{prefix}-Step-Index",
        f"{prefix}-Parent-Trace-ID",
        f"{prefix}-State",
    )


def check_header_value(field_name: str, value: str, max_length: int = MAX_TRACE_ID_LENGTH) -> str:
    """Return ``value`` if it can travel in a header as is; raise InvalidHeaderError otherwise.

    Printable US-ASCII with no leading or trailing space: no CR, LF or other control byte.
    """
    if not isinstance(value, str):
        raise InvalidHeaderError(
            f"{field_name} must be a str, got {type(value).__name__}", header=field_name
        )
    if len(value) > max_length:
        raise InvalidHeaderError(
            f"{field_name} is {len(value)} characters, over the {max_length}-character limit",
            header=field_name,
        )
    if not _SAFE_VALUE.fullmatch(value):
        raise InvalidHeaderError(
            f"{field_name} must be printable US-ASCII without surrounding spaces, "
            f"got {value[:60]!r} ({len(value)} characters)",
            header=field_name,
        )
    return value


def response_header_names(prefix: str) -> tuple[str, str, str]:
    """The session-id, trace-id and next-step headers a proxy answers with, for ``prefix``."""
    header_names(prefix)  # validates the prefix
    return f"{prefix}-Session-ID", f"{prefix}-Trace-ID", f"{prefix}-Next-Step"


def build_headers(
    prefix: str,
    session_id: str,
    step_index: int,
    parent_trace_id: str | None,
    state: StateSnapshot | str | None,
) -> dict[str, str]:
    """The headers of one request; every value is ASCII with no CR/LF whatever the input.

    ``state`` is the snapshot, or the header value already made to fit a budget, or None.
    """
    session_name, index_name, parent_name, state_name = header_names(prefix)
    headers = {session_name: session_id, index_name: str(step_index)}
    if parent_trace_id is not None:
        headers[parent_name] = parent_trace_id
    if isinstance(state, StateSnapshot):
        state = state.ascii_json() if state else None
    if state is not None:
        headers[state_name] = state
    return headers


@dataclass(frozen=True)
class SessionHeaders:
    """The session context a receiving server read from a request's headers.

    Fields that were absent are None; with ``strict=False`` fields that were malformed are None
    too and each problem is described in ``problems``.
    """

    session_id: str | None = None
    step_index: int | None = None
    parent_trace_id: str | None = None
    state: dict[str, Any] | None = None
    problems: tuple[str, ...] = field(default=())


HeaderInput = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[Any, Any]]


def _lowered(headers: HeaderInput) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for name, value in items:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            # UTF-8 (a state header may hold raw UTF-8 JSON); an undecodable byte becomes a lone
            # surrogate, which every check below refuses, rather than latin-1 text read as valid.
            value = value.decode("utf-8", "surrogateescape")
        result[str(name).lower()] = str(value)
    return result


def parse_headers(
    headers: HeaderInput,
    *,
    prefix: str = DEFAULT_HEADER_PREFIX,
    state_limit_bytes: int = 10_240,
    strict: bool = True,
) -> SessionHeaders:
    """Read and validate the session headers of a request (names are case-insensitive).

    ``strict=True`` raises InvalidHeaderError for the first malformed header, naming it, its
    limit and the value's size. ``strict=False`` keeps the valid parts and lists the problems.
    """
    names = header_names(prefix)
    values = _lowered(headers)
    problems: list[str] = []

    def fail(header: str, message: str) -> None:
        if strict:
            raise InvalidHeaderError(f"{header}: {message}", header=header)
        problems.append(f"{header}: {message}")

    session_id = values.get(names[0].lower())
    if session_id is not None:
        problem = session_id_problem(session_id)
        if problem is not None:
            fail(names[0], problem)
            session_id = None

    step_index = None
    raw_index = values.get(names[1].lower())
    if raw_index is not None:
        raw_index = raw_index.strip(_OWS)
        if not _DIGITS.fullmatch(raw_index) or int(raw_index) > MAX_STEP_INDEX:
            fail(
                names[1],
                f"must be an integer from 0 to {MAX_STEP_INDEX}, "
                f"got {raw_index[:40]!r} ({len(raw_index)} characters)",
            )
        else:
            step_index = int(raw_index)

    parent = values.get(names[2].lower())
    if parent is not None:
        try:
            parent = check_header_value(names[2], parent.strip(_OWS))
        except InvalidHeaderError as exc:
            fail(names[2], str(exc).split(" ", 1)[-1])
            parent = None

    state = None
    raw_state = values.get(names[3].lower())
    if raw_state is not None:
        state = _parse_state(names[3], raw_state, state_limit_bytes, fail)

    return SessionHeaders(session_id, step_index, parent, state, tuple(problems))


def _parse_state(header: str, raw: str, limit: int, fail: Any) -> dict[str, Any] | None:
    # Compare the raw length first so a hostile header is never decoded in full.
    if len(raw) > 6 * limit + 2:
        fail(header, f"is {len(raw)} bytes, over the {limit}-byte state limit")
        return None
    try:
        state = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        fail(header, f"is not valid JSON ({len(raw)} bytes): {exc}")
        return None
    if not isinstance(state, dict):
        fail(header, f"must be a JSON object, got {type(state).__name__} ({len(raw)} bytes)")
        return None
    try:
        size = len(compact_json(state))
    except (ValueError, RecursionError) as exc:
        # Valid to json.loads yet not storable: a lone surrogate ("\ud800"), or 1e999 (infinite).
        fail(header, f"holds JSON that cannot be stored ({len(raw)} bytes): {exc}")
        return None
    if size > limit:
        fail(header, f"is {size} bytes of JSON, over the {limit}-byte state limit")
        return None
    return state


def _refuse_constant(name: str) -> Any:
    # json.loads takes NaN and Infinity, which are not JSON: no strict reader could use them.
    raise ValueError(f"{name} is not a JSON number")
