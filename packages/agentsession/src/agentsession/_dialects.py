"""Session headers in the dialects of the proxies that read them.

``traceforge`` (the default) carries everything: session id, step index, parent trace and the
state. ``helicone`` and ``litellm`` carry what those proxies group requests by. W3C ``baggage``
carries the session and user ids and never the state, because baggage travels on to every
service downstream. Every value is printable ASCII without CR/LF, whatever the input.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, get_args
from urllib.parse import quote

from ._headers import build_headers, header_names
from ._health import count, warn_once
from ._state import (
    StateOverflow,
    StateSnapshot,
    ascii_json,
    join_object,
    object_size,
    shrink_largest,
)

__all__ = [
    "BAGGAGE_HEADER",
    "BAGGAGE_LIMIT_BYTES",
    "DEFAULT_HEADER_BUDGET_BYTES",
    "Dialect",
    "KNOWN_DIALECTS",
    "build_session_headers",
    "fit_state_header",
    "merge_baggage",
    "parse_dialects",
    "replaced_header_names",
    "state_truncated_header",
]

Dialect = Literal["traceforge", "helicone", "litellm", "baggage"]
KNOWN_DIALECTS: tuple[Dialect, ...] = get_args(Dialect)
DEFAULT_HEADER_BUDGET_BYTES = 8_192
BAGGAGE_HEADER = "baggage"
BAGGAGE_LIMIT_BYTES = 8_192
"""The W3C Baggage limit on a whole ``baggage`` header, our members and everyone else's."""
HELICONE_HEADERS = ("Helicone-Session-Id", "Helicone-Session-Path", "Helicone-Session-Name")
LITELLM_HEADER = "x-litellm-session-id"
_SESSION_MEMBER = "session.id"
_USER_MEMBER = "user.id"
_NAME_CHARACTERS = 256  # of a Helicone session name, before encoding

_PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))
# What each carrier may hold as is; everything else (and '%' itself) is percent-encoded UTF-8.
_BAGGAGE_SAFE = "".join(c for c in _PRINTABLE if c not in '"%,;\\')  # W3C baggage-octet
_PATH_SEGMENT_SAFE = "".join(c for c in _PRINTABLE if c not in "%/")
_LIST_ITEM_SAFE = "".join(c for c in _PRINTABLE if c not in "%,")
_TEXT_SAFE = " " + _PRINTABLE.replace("%", "")


def parse_dialects(dialects: str | Iterable[str]) -> tuple[Dialect, ...]:
    """Check dialect names (``"traceforge,helicone"`` or a sequence) and drop repeats.

    Raises ValueError naming the known dialects for an unknown name or an empty list.
    """
    names = dialects.split(",") if isinstance(dialects, str) else list(dialects)
    known = ", ".join(KNOWN_DIALECTS)
    result: list[Dialect] = []
    for raw in names:
        name = str(raw).strip().lower()
        if not name and isinstance(dialects, str):
            continue  # "traceforge," or "a,,b" from an environment variable
        dialect = next((d for d in KNOWN_DIALECTS if d == name), None)
        if dialect is None:
            raise ValueError(f"unknown header dialect {raw!r}; the known dialects are {known}")
        if dialect not in result:
            result.append(dialect)
    if not result:
        raise ValueError(f"header_dialects names no dialect; the known dialects are {known}")
    return tuple(result)


def state_truncated_header(prefix: str) -> str:
    """The header listing the state keys cut to fit the header budget."""
    return f"{prefix}-State-Truncated"


def replaced_header_names(prefix: str, dialects: Iterable[Dialect]) -> tuple[str, ...]:
    """The headers an HTTP hook owns and rewrites on every request (``baggage`` is merged).

    The TraceForge names are always included: a stale ``Step-Index: 0`` frozen into a client's
    default headers is the flaw the hook exists to fix.
    """
    names = [*header_names(prefix), state_truncated_header(prefix)]
    dialects = tuple(dialects)
    if "helicone" in dialects:
        names.extend(HELICONE_HEADERS)
    if "litellm" in dialects:
        names.append(LITELLM_HEADER)
    return tuple(names)


def build_session_headers(
    dialects: Iterable[Dialect],
    *,
    prefix: str,
    session_id: str,
    session_path: tuple[str, ...],
    session_name: Any,
    user_id: str | None,
    step_index: int,
    parent_trace_id: str | None,
    state: StateSnapshot,
    budget_bytes: int,
    overflow: StateOverflow,
) -> dict[str, str]:
    """The headers of one request in every dialect asked for; see the module docstring."""
    headers: dict[str, str] = {}
    for dialect in dialects:
        if dialect == "traceforge":
            value, cut = fit_state_header(state, budget_bytes, overflow, session_id)
            headers.update(build_headers(prefix, session_id, step_index, parent_trace_id, value))
            if cut:
                keys = ",".join(_encode(key, _LIST_ITEM_SAFE) for key in cut)
                headers[state_truncated_header(prefix)] = keys
        elif dialect == "helicone":
            path = "".join("/" + _encode(segment, _PATH_SEGMENT_SAFE) for segment in session_path)
            headers["Helicone-Session-Id"] = session_id
            headers["Helicone-Session-Path"] = path
            headers["Helicone-Session-Name"] = _text(session_name) or _text(session_id)
        elif dialect == "litellm":
            headers[LITELLM_HEADER] = session_id
        elif dialect == "baggage":
            members = _baggage_members(session_id, user_id)
            if members is not None:
                headers[BAGGAGE_HEADER] = members
    return headers


def fit_state_header(
    state: StateSnapshot, budget_bytes: int, overflow: StateOverflow, session_id: str
) -> tuple[str | None, tuple[str, ...]]:
    """The state header value within ``budget_bytes`` and the keys cut to get there.

    Over the budget the state's overflow rule applies: ``truncate`` replaces the largest values
    with the truncation marker until it fits; ``error`` (or a state whose keys alone are over
    the budget) leaves the header out. Either is counted and warned about once per session;
    nothing is raised, as this runs inside HTTP hooks.
    """
    if not state:
        return None, ()
    value = state.ascii_json()
    if len(value) <= budget_bytes:
        return value, ()
    if overflow == "truncate":
        fitted = _truncated_state(state, budget_bytes)
        if fitted is not None:
            count("headers.state_truncated")
            warn_once(
                f"header-budget-truncated:{session_id}",
                "agentsession: the state header of session %r is %d bytes, over "
                "header_budget_bytes=%d: the largest values (%s) are sent as a truncation marker",
                session_id,
                len(value),
                budget_bytes,
                ", ".join(repr(key) for key in fitted[1][:10]),
            )
            return fitted
    count("headers.state_left_out")
    warn_once(
        f"header-budget-left-out:{session_id}",
        "agentsession: the state header of session %r is %d bytes, over header_budget_bytes=%d, "
        "and is left out (state_overflow=%r; counted in headers.state_left_out)",
        session_id,
        len(value),
        budget_bytes,
        overflow,
    )
    return None, ()


def _truncated_state(state: StateSnapshot, budget_bytes: int) -> tuple[str, tuple[str, ...]] | None:
    # The same rule as the state's own cap, measured on the ASCII JSON the header carries.
    values = state.to_dict()
    keys = {key: ascii_json(key).encode() for key in values}
    encoded = {key: ascii_json(value).encode() for key, value in values.items()}
    shrunk, cut, size = shrink_largest(encoded, object_size(keys, encoded), budget_bytes)
    if size > budget_bytes:
        return None
    return join_object(keys, shrunk).decode("ascii"), cut


def merge_baggage(existing: str | None, ours: str | None, session_id: str) -> str | None:
    """Our baggage members merged into a request's ``baggage`` header, foreign members kept.

    Members of ours already there (stale copies) are replaced. If the result would be over
    :data:`BAGGAGE_LIMIT_BYTES`, ours are left out instead (counted, warned about once).
    """
    owned = {_SESSION_MEMBER}
    if ours is not None:
        owned.update(_member_key(member) for member in ours.split(","))
    foreign = [member for member in _members(existing) if _member_key(member) not in owned]
    if ours is not None:
        merged = ",".join([*foreign, ours])
        if len(merged.encode()) <= BAGGAGE_LIMIT_BYTES:
            return merged
        _warn_baggage_left_out(session_id, len(merged.encode()))
    return ",".join(foreign) or None


def _baggage_members(session_id: str, user_id: str | None) -> str | None:
    members = f"{_SESSION_MEMBER}={_encode(session_id, _BAGGAGE_SAFE)}"
    if user_id:
        members += f",{_USER_MEMBER}={_encode(user_id, _BAGGAGE_SAFE)}"
    if len(members) > BAGGAGE_LIMIT_BYTES:
        _warn_baggage_left_out(session_id, len(members))
        return None
    return members


def _warn_baggage_left_out(session_id: str, size: int) -> None:
    count("headers.baggage_left_out")
    warn_once(
        f"baggage-left-out:{session_id}",
        "agentsession: the baggage header of session %r would be %d bytes, over the W3C limit "
        "of %d: our members are left out (counted in headers.baggage_left_out)",
        session_id,
        size,
        BAGGAGE_LIMIT_BYTES,
    )


def _members(header: str | None) -> list[str]:
    if not header:
        return []
    return [member.strip(" \t") for member in header.split(",") if member.strip(" \t")]


def _member_key(member: str) -> str:
    return member.split("=", 1)[0].split(";", 1)[0].strip(" \t")


def _encode(text: str, safe: str) -> str:
    # errors="replace": a lone surrogate has no UTF-8 and must not raise from a hook.
    return quote(text, safe=safe, encoding="utf-8", errors="replace")


def _text(value: Any) -> str:
    """Free text (a session name) as a header value: trimmed, capped, percent-encoded."""
    if value is None:
        return ""
    text = str(value).strip()[:_NAME_CHARACTERS].strip()
    return _encode(text, _TEXT_SAFE)
