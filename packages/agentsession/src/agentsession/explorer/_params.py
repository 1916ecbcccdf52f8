"""The explorer API's input rules: every query parameter and path segment, checked by hand.

Each check fails with an :class:`ApiError` that names the parameter, the rule and what was
given (cut short), so that any query string, however hostile, gets a 400 and never a 500.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, get_args
from urllib.parse import unquote_to_bytes

from .._ids import session_id_problem
from .._models import SessionFilter, SessionStatus
from .._text import parse_utc
from ..backends._base import decode_cursor

__all__ = [
    "DOT_ID_SEGMENTS",
    "LIST_LIMIT_DEFAULT",
    "LIST_LIMIT_MAX",
    "LIST_PARAMETERS",
    "ApiError",
    "check_no_query",
    "check_session_id",
    "parse_export_format",
    "parse_list_query",
    "split_session_path",
]

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500
_TEXT_MAX = 1000
"""Longest user id, tag or score name a filter takes (longer ones cannot match anything)."""
_CURSOR_MAX = 2000
_STATUSES: tuple[str, ...] = get_args(SessionStatus)
_SHOWN_MAX = 60
"""Characters of a bad value quoted back in an error message."""
DOT_ID_SEGMENTS = {". ": ".", ".. ": ".."}
"""How the ids "." and ".." travel in a path (as ``.%20`` and ``..%20``): URL parsers resolve a
"." or ".." segment, even written ``%2E``, and ids never end with a space, so none is taken."""

LIST_PARAMETERS: dict[str, str] = {
    "user_id": "only sessions with this user id",
    "status": "only sessions with this status: " + ", ".join(_STATUSES),
    "tag": "only sessions with this tag",
    "since": "only sessions started at or after this ISO 8601 time (UTC if no zone)",
    "until": "only sessions started before this ISO 8601 time (UTC if no zone)",
    "q": "only sessions whose id starts with this",
    "limit": f"sessions per page, 1 to {LIST_LIMIT_MAX} (default {LIST_LIMIT_DEFAULT})",
    "cursor": "the next_cursor of the previous page",
    "score_name": "only sessions with a score of this name",
    "min_score": "only sessions with a number or boolean score (named score_name, if given) "
    "of at least this; true counts 1, false 0",
}
"""The query parameters of ``GET /api/sessions`` and what each is for (shown in the OpenAPI)."""


class ApiError(Exception):
    """An answer other than success: its HTTP status, a code, a message and the parameter."""

    def __init__(
        self, status: int, code: str, message: str, *, parameter: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.parameter = parameter

    def document(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.parameter is not None:
            error["parameter"] = self.parameter
        return {"error": error}


def _shown(value: str) -> str:
    if len(value) <= _SHOWN_MAX:
        return repr(value)
    return f"{value[:_SHOWN_MAX]!r}... ({len(value)} characters)"


def _bad(parameter: str, rule: str, value: str) -> ApiError:
    return ApiError(
        400,
        "invalid_parameter",
        f"{parameter} {rule}, got {_shown(value)}",
        parameter=parameter,
    )


def _single(items: Sequence[tuple[str, str]], known: Sequence[str]) -> dict[str, str]:
    """The parameters given, each once and each known; empty values count as not given."""
    values: dict[str, str] = {}
    for name, value in items:
        if name not in known:
            raise ApiError(
                400,
                "invalid_parameter",
                f"unknown parameter {_shown(name)}; known: {', '.join(known)}",
                parameter=name[:_SHOWN_MAX],
            )
        if name in values:
            raise ApiError(
                400,
                "invalid_parameter",
                f"{name} is given more than once; give it once",
                parameter=name,
            )
        values[name] = value
    return {name: value for name, value in values.items() if value != ""}


def _text(values: dict[str, str], name: str, limit: int = _TEXT_MAX) -> str | None:
    value = values.get(name)
    if value is not None and len(value) > limit:
        raise _bad(name, f"must be at most {limit} characters", value)
    return value


def _moment(values: dict[str, str], name: str) -> datetime | None:
    raw = values.get(name)
    if raw is None:
        return None
    try:
        return parse_utc(raw)
    except ValueError:
        raise _bad(
            name, "must be an ISO 8601 date or time such as 2024-05-01T12:00:00Z", raw
        ) from None


def parse_list_query(items: Sequence[tuple[str, str]]) -> tuple[SessionFilter, int, str | None]:
    """The filters, page size and cursor of ``GET /api/sessions`` from its query parameters."""
    values = _single(items, list(LIST_PARAMETERS))
    status = values.get("status")
    if status is not None and status not in _STATUSES:
        raise _bad("status", f"must be one of {', '.join(_STATUSES)}", status)
    since, until = _moment(values, "since"), _moment(values, "until")
    if since is not None and until is not None and since >= until:
        raise ApiError(
            400,
            "invalid_parameter",
            f"until must be later than since, got since={since.isoformat()} "
            f"until={until.isoformat()}",
            parameter="until",
        )
    limit = LIST_LIMIT_DEFAULT
    raw_limit = values.get("limit")
    if raw_limit is not None:
        rule = f"must be a whole number from 1 to {LIST_LIMIT_MAX}"
        if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 6):
            raise _bad("limit", rule, raw_limit)
        limit = int(raw_limit)
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise _bad("limit", rule, raw_limit)
    cursor = _text(values, "cursor", _CURSOR_MAX)
    if cursor is not None:
        try:
            _, after_id = decode_cursor(cursor)
        except ValueError:
            raise _bad("cursor", "must be a next_cursor this server gave", cursor) from None
        if session_id_problem(after_id) is not None:
            # A crafted one: a lone surrogate in it would fail in the backend (a 503, not a 400).
            raise _bad("cursor", "must be a next_cursor this server gave", cursor)
    min_score = None
    raw_min = values.get("min_score")
    if raw_min is not None:
        try:
            min_score = float(raw_min) if len(raw_min) <= 100 else math.nan
        except ValueError:
            min_score = math.nan
        if not math.isfinite(min_score):
            raise _bad("min_score", "must be a finite number such as 0.5", raw_min)
    filters = SessionFilter(
        user_id=_text(values, "user_id"),
        status=status,  # type: ignore[arg-type]  # checked against the statuses above
        tag=_text(values, "tag"),
        since=since,
        until=until,
        q=_text(values, "q"),
        score_name=_text(values, "score_name"),
        min_score=min_score,
    )
    return filters, limit, cursor


def parse_export_format(items: Sequence[tuple[str, str]]) -> str:
    """``json`` (the default) or ``jsonl``, from the query of the export endpoint."""
    values = _single(items, ["format"])
    value = values.get("format", "json")
    if value not in ("json", "jsonl"):
        raise _bad("format", "must be json or jsonl", value)
    return value


def check_no_query(items: Sequence[tuple[str, str]]) -> None:
    """Endpoints that take no query parameters refuse any, rather than ignore a typo."""
    _single(items, [])


def check_session_id(session_id: str) -> str:
    """``session_id`` if it could be a session id; a 400 naming the rule otherwise."""
    problem = session_id_problem(session_id)
    if problem is not None:
        raise ApiError(400, "invalid_parameter", problem, parameter="session_id")
    return session_id


def split_session_path(raw_rest: bytes) -> tuple[str, str | None]:
    """The session id and the sub-resource of ``/api/sessions/<id>[/<sub>]``.

    ``raw_rest`` is the path after ``/api/sessions/`` as the client sent it, still
    percent-encoded: an id holding "/" arrives as "%2F" and is told apart from a sub-resource.
    The ids "." and ".." arrive as ``.%20`` and ``..%20`` (see ``DOT_ID_SEGMENTS``).
    """
    segments = raw_rest.split(b"/")
    if len(segments) > 2:
        raise ApiError(404, "not_found", "no such resource")
    try:
        session_id = unquote_to_bytes(segments[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(
            400,
            "invalid_parameter",
            "session_id must be printable US-ASCII (0x20-0x7E), got bytes that are not UTF-8",
            parameter="session_id",
        ) from None
    session_id = DOT_ID_SEGMENTS.get(session_id, session_id)
    check_session_id(session_id)
    sub = segments[1].decode("latin-1") if len(segments) == 2 else None
    return session_id, sub
