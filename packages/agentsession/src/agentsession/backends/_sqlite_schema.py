"""The SQLite backend's schema, its migrations, and how steps map to and from table rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic_core import from_json, to_json

from agentsession._models import Score, Step

__all__ = [
    "ENDED_AT",
    "INSERT_STEP",
    "SCORE_COLUMNS",
    "UPSERT_SCORE",
    "json_text",
    "MIGRATIONS",
    "STARTED_AT",
    "STEP_COLUMNS",
    "datetime_from_micros",
    "micros",
    "migrate",
    "score_from_row",
    "score_row",
    "step_from_row",
    "step_row",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Whole microseconds since the Unix epoch; a naive datetime is taken to be UTC."""
    try:
        return (moment - _EPOCH) // _MICROSECOND
    except TypeError:  # naive: the models ask for aware datetimes, but do not enforce it
        return (moment.replace(tzinfo=timezone.utc) - _EPOCH) // _MICROSECOND


def datetime_from_micros(value: int) -> datetime:
    """Inverse of :func:`micros`: an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


MIGRATIONS: list[tuple[str, ...]] = [
    # 1: sessions with their aggregates, per-model usage, users, tags, and steps.
    (
        # session_key is what the other tables store instead of the session id: a small,
        # increasing integer keeps the steps index compact and its inserts local whatever shape
        # the ids have (random ids scatter a text index and cost a third of the write rate).
        # AUTOINCREMENT: a key is never reused, so a writer's cached key can go stale but can
        # never point at another session.
        """CREATE TABLE sessions (
            session_key INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL DEFAULT 'in_progress',
            started_at INTEGER NOT NULL,
            ended_at INTEGER,
            last_activity_at INTEGER NOT NULL,
            timeout_s REAL,
            total_steps INTEGER NOT NULL DEFAULT 0,
            error_count INTEGER NOT NULL DEFAULT 0,
            dropped_steps INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            environment TEXT,
            parent_session_id TEXT,
            parent_trace_id TEXT,
            end_reason TEXT,
            metadata TEXT
        )""",
        "CREATE INDEX sessions_by_start ON sessions (started_at, session_id)",
        "CREATE INDEX sessions_by_status ON sessions (status, started_at, session_id)",
        """CREATE TABLE session_models (
            session_key INTEGER NOT NULL,
            model TEXT NOT NULL,
            steps INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            total_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            PRIMARY KEY (session_key, model)
        ) WITHOUT ROWID""",
        # Users and tags keep their rowid: it orders them as they were first seen.
        """CREATE TABLE session_users (
            session_key INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            UNIQUE (session_key, user_id)
        )""",
        "CREATE INDEX session_users_by_user ON session_users (user_id, session_key)",
        """CREATE TABLE session_tags (
            session_key INTEGER NOT NULL,
            tag TEXT NOT NULL,
            UNIQUE (session_key, tag)
        )""",
        "CREATE INDEX session_tags_by_tag ON session_tags (tag, session_key)",
        # Timestamps are integer microseconds since the epoch (UTC); state, tool_calls, input,
        # output, tags and metadata are JSON text, NULL when empty.
        """CREATE TABLE steps (
            session_key INTEGER NOT NULL,
            step_index INTEGER NOT NULL,
            step_id TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            parent_trace_id TEXT,
            kind TEXT NOT NULL,
            name TEXT,
            framework TEXT,
            provider TEXT,
            model TEXT,
            started_at INTEGER NOT NULL,
            ended_at INTEGER NOT NULL,
            duration_ms REAL NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            total_tokens INTEGER,
            cost_usd REAL,
            user_id TEXT,
            state TEXT,
            tool_calls TEXT,
            input TEXT,
            output TEXT,
            tags TEXT,
            metadata TEXT
        )""",
        # The only index on steps, and it is what makes a retried step a no-op.
        "CREATE UNIQUE INDEX steps_by_session ON steps (session_key, step_index)",
    ),
    # 2: session scores, one per name (the latest created_at wins).
    (
        # kind is "number", "boolean" or "label". number holds a number, or 1/0 for a boolean,
        # so min_score compares one column; label holds a label.
        """CREATE TABLE session_scores (
            session_key INTEGER NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            number REAL,
            label TEXT,
            comment TEXT,
            source TEXT,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (session_key, name)
        ) WITHOUT ROWID""",
        "CREATE INDEX session_scores_by_name ON session_scores (name, number, session_key)",
    ),
]
"""Schema changes in order; ``PRAGMA user_version`` counts those applied. Append, never edit."""


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the :data:`MIGRATIONS` a database has not seen yet, each in its own transaction.

    Returns the schema version. Cheap when the schema is current: no write lock is taken, so
    a reader opening the file never waits on a writer.
    """
    migrations = MIGRATIONS
    latest = len(migrations)
    version = _user_version(conn)
    if version == latest:
        return version
    if version > latest:
        raise RuntimeError(
            f"database schema version {version} is newer than this agentsession supports "
            f"({latest}); upgrade agentsession to read it"
        )
    while version < latest:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while this one waited for the lock.
            version = _user_version(conn)
            if version < latest:
                for statement in migrations[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return version


def _user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


STEP_COLUMNS = (
    "step_index",
    "step_id",
    "trace_id",
    "parent_trace_id",
    "kind",
    "name",
    "framework",
    "provider",
    "model",
    "started_at",
    "ended_at",
    "duration_ms",
    "status",
    "error",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "user_id",
    "state",
    "tool_calls",
    "input",
    "output",
    "tags",
    "metadata",
)
"""The columns :func:`step_row` fills after ``session_key``, in order."""

STARTED_AT = 1 + STEP_COLUMNS.index("started_at")
ENDED_AT = 1 + STEP_COLUMNS.index("ended_at")
"""Where a :func:`step_row` holds the step's timestamps, as integer microseconds."""

INSERT_STEP = (
    f"INSERT INTO steps (session_key, {', '.join(STEP_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(STEP_COLUMNS) + 1))}) "
    "ON CONFLICT (session_key, step_index) DO NOTHING"
)


def json_text(value: Any) -> str:
    """Compact JSON; a value JSON cannot hold is written as its str() rather than failing."""
    # serialize_unknown: one exotic object in captured input must not fail the whole batch.
    return to_json(value, serialize_unknown=True).decode()


def step_row(session_key: int, step: Step) -> tuple[Any, ...]:
    """The ``steps`` row of a step: ``session_key`` then the :data:`STEP_COLUMNS`.

    This is the writer's hot loop: fields are read straight from the instance dict, and empty
    JSON fields skip the encoder.
    """
    f = step.__dict__
    state, tool_calls, input_, output = f["state"], f["tool_calls"], f["input"], f["output"]
    tags, metadata = f["tags"], f["metadata"]
    return (
        session_key,
        f["step_index"],
        f["step_id"],
        f["trace_id"],
        f["parent_trace_id"],
        f["kind"],
        f["name"],
        f["framework"],
        f["provider"],
        f["model"],
        micros(f["started_at"]),
        micros(f["ended_at"]),
        f["duration_ms"],
        f["status"],
        f["error"],
        f["input_tokens"],
        f["output_tokens"],
        f["total_tokens"],
        f["cost_usd"],
        f["user_id"],
        json_text(state) if state else None,
        json_text(tool_calls) if tool_calls else None,
        None if input_ is None else json_text(input_),
        None if output is None else json_text(output),
        json_text(tags) if tags else None,
        json_text(metadata) if metadata else None,
    )


_EMPTY_JSON: dict[str, Any] = {"state": {}, "tool_calls": (), "tags": (), "metadata": {}}


def step_from_row(session_id: str, row: Sequence[Any]) -> Step:
    """Rebuild a step from the :data:`STEP_COLUMNS` of its row."""
    fields = dict(zip(STEP_COLUMNS, row, strict=True))
    fields["session_id"] = session_id
    fields["started_at"] = datetime_from_micros(fields["started_at"])
    fields["ended_at"] = datetime_from_micros(fields["ended_at"])
    for name in ("state", "tool_calls", "input", "output", "tags", "metadata"):
        text = fields[name]
        fields[name] = _EMPTY_JSON.get(name) if text is None else from_json(text)
    return Step.model_validate(fields)


SCORE_COLUMNS = ("name", "kind", "number", "label", "comment", "source", "created_at")
"""The columns :func:`score_row` fills after ``session_key``, in order."""

UPSERT_SCORE = (
    f"INSERT INTO session_scores (session_key, {', '.join(SCORE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(SCORE_COLUMNS) + 1))}) "
    "ON CONFLICT (session_key, name) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in SCORE_COLUMNS[1:])
    # The later score wins whatever order two writers' batches arrive in.
    + " WHERE excluded.created_at >= session_scores.created_at"
)


def score_row(session_key: int, score: Score) -> tuple[Any, ...]:
    """The ``session_scores`` row of a score: ``session_key`` then the :data:`SCORE_COLUMNS`."""
    value = score.value
    if isinstance(value, bool):
        kind, number, label = "boolean", float(value), None
    elif isinstance(value, str):
        kind, number, label = "label", None, value
    else:
        kind, number, label = "number", value, None
    created_at = micros(score.created_at)
    return (session_key, score.name, kind, number, label, score.comment, score.source, created_at)


def score_from_row(session_id: str, row: Sequence[Any]) -> Score:
    """Rebuild a score from the :data:`SCORE_COLUMNS` of its row."""
    name, kind, number, label, comment, source, created_at = row
    value: float | bool | str = (
        label if kind == "label" else bool(number) if kind == "boolean" else float(number)
    )
    return Score(
        session_id=session_id,
        name=name,
        value=value,
        comment=comment,
        source=source,
        created_at=datetime_from_micros(created_at),
    )
