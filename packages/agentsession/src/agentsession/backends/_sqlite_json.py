"""Steps as JSON text built by SQLite itself, for servers that pass steps on without models.

Building a ``Step`` costs microseconds and a dozen objects per step; for a session of ten
thousand steps that is most of a read (and a garbage collector's worth of work). SQLite can
splice the stored JSON columns and quote the rest as it reads the rows instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = ["step_json_sql"]

# How each Step field is read from a ``steps`` row as JSON text; {c} stands for the column.
_INTEGER = "coalesce({c}, 'null')"
_TEXT = "json_quote({c})"
# 17 significant digits read back as the same double; larger than the largest is infinity,
# which JSON cannot hold (pydantic writes it as null too).
_REAL = (
    "CASE WHEN {c} IS NULL OR abs({c}) > 1.7976931348623157e308 THEN 'null'"
    " ELSE printf('%!.17g', {c}) END"
)
# Integer microseconds as pydantic writes an aware UTC datetime: 2024-05-01T12:00:00.500000Z,
# without the fraction when it is zero. The modulo is made non-negative for times before 1970.
_MOD = "(({c} % 1000000 + 1000000) % 1000000)"
_TIME = (
    f"'\"' || strftime('%Y-%m-%dT%H:%M:%S', ({{c}} - {_MOD}) / 1000000, 'unixepoch')"
    f" || CASE WHEN {_MOD} = 0 THEN '' ELSE printf('.%06d', {_MOD}) END || 'Z\"'"
)


def _stored_json(empty: str) -> str:
    # Stored JSON is spliced in as it is: it was written by pydantic, and NULL means empty.
    return "coalesce({c}, '" + empty + "')"


_FIELD_SQL: Mapping[str, str] = {
    "session_id": "json_quote(?)",
    "step_index": _INTEGER,
    "step_id": _TEXT,
    "trace_id": _TEXT,
    "parent_trace_id": _TEXT,
    "kind": _TEXT,
    "name": _TEXT,
    "framework": _TEXT,
    "provider": _TEXT,
    "model": _TEXT,
    "started_at": _TIME,
    "ended_at": _TIME,
    "duration_ms": _REAL,
    "status": _TEXT,
    "error": _TEXT,
    "input_tokens": _INTEGER,
    "output_tokens": _INTEGER,
    "total_tokens": _INTEGER,
    "cost_usd": _REAL,
    "user_id": _TEXT,
    "state": _stored_json("{}"),
    "tool_calls": _stored_json("[]"),
    "input": _stored_json("null"),
    "output": _stored_json("null"),
    "tags": _stored_json("[]"),
    "metadata": _stored_json("{}"),
}


def step_json_sql(fields: Mapping[str, str]) -> tuple[str, int]:
    """A SQL expression over a ``steps`` row giving its JSON object with ``fields``.

    ``fields`` maps output keys to Step field names (already checked). Returns the expression
    and how many times the session id must be bound into it (once per ``session_id`` key).
    """
    if not fields:
        return "'{}'", 0
    template = []
    values = []
    for position, (key, name) in enumerate(fields.items()):
        # One printf builds the object in one allocation, where a chain of || would copy the
        # growing text once per field. json.dumps quotes the key; % and ' are then escaped
        # for printf and for the SQL literal, so any key is safe.
        opening = ("{" if position == 0 else ",") + json.dumps(key) + ":"
        template.append(opening.replace("%", "%%") + "%s")
        values.append(_FIELD_SQL[name].replace("{c}", name))
    literal = ("".join(template) + "}").replace("'", "''")
    expression = f"printf('{literal}', {', '.join(values)})"
    return expression, sum(1 for name in fields.values() if name == "session_id")
