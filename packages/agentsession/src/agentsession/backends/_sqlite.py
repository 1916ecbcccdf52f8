"""The default backend: one SQLite file in WAL mode, session aggregates kept current per batch."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic_core import from_json

from agentsession._models import (
    ModelUsage,
    Score,
    SessionEvent,
    SessionFilter,
    SessionPage,
    SessionSummary,
    Step,
)

from ._base import (
    check_step_fields,
    check_step_limit,
    decode_cursor,
    effective_status,
    encode_cursor,
)
from ._sqlite_json import step_json_sql
from ._sqlite_schema import (
    SCORE_COLUMNS,
    STEP_COLUMNS,
    datetime_from_micros,
    micros,
    migrate,
    score_from_row,
    step_from_row,
)
from ._sqlite_write import BatchWriter

__all__ = ["SQLiteBackend"]

_SQL_VARIABLES_MAX = 500
"""Keys bound in one ``IN (...)``: well under the 999 of old SQLite builds."""

_SUMMARY_COLUMNS = (
    "s.session_key, s.session_id, s.status, s.started_at, s.ended_at, s.last_activity_at, "
    "s.timeout_s, s.total_steps, s.error_count, s.dropped_steps, s.input_tokens, "
    "s.output_tokens, s.total_tokens, s.cost_usd, s.environment, s.parent_session_id, "
    "s.parent_trace_id, s.end_reason, s.metadata"
)

# What effective_status reads as timed out, for a session in progress: idle past its timeout.
_EXPIRED = "(s.timeout_s IS NOT NULL AND ? - s.last_activity_at > s.timeout_s * 1000000.0)"

# One statement for every page, so SQLite's statement cache keeps it: the (session_key,
# step_index) key finds the first step of the page and stops after ``limit`` rows.
_STEP_PAGE = " AND step_index > ? ORDER BY step_index LIMIT ?"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _step_page(after: int | None, limit: int | None) -> tuple[int, int]:
    """The parameters of :data:`_STEP_PAGE`; a negative LIMIT is no limit to SQLite."""
    check_step_limit(limit)
    # SQLite integers are 64-bit; a bound past them selects what the nearest one does.
    first = _INT64_MIN if after is None else min(max(after, _INT64_MIN), _INT64_MAX)
    return first, -1 if limit is None else min(limit, _INT64_MAX)


class SQLiteBackend:
    """Stores sessions and steps in one SQLite file; the default backend.

    Each ``write()`` is one transaction that inserts the steps and updates every touched
    session's aggregates once, so listing sessions stays fast however many steps there are. A
    step already stored (same session and step index, e.g. a retried batch) is ignored.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        # One connection per role, each behind its own lock. The worker thread writes through
        # the writer; any thread reads through the reader. In WAL mode the reader sees the last
        # commit while a write transaction is open, so reads never wait for the worker; the
        # locks only keep two threads off one connection at once, which is what lets
        # check_same_thread be off. (A connection per thread would leak one per short-lived
        # reading thread.)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._closed = False
        self._writer: sqlite3.Connection | None = None
        self.schema_version = self._open_writer()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun and ended here, never implicitly.
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process, and flush() makes it
        # survive a crash of the machine.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _open_writer(self) -> int:
        """Open the writer connection, bring the schema up to date; the schema version."""
        conn = self._connect()
        try:
            version = migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._writer = conn
        self._batches = BatchWriter(conn)
        return version

    def _writer_connection(self) -> sqlite3.Connection:
        """The writer connection, opened again if an earlier error left it unusable."""
        if self._writer is None:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            self._open_writer()
        assert self._writer is not None
        return self._writer

    def _drop_writer_after(self, exc: BaseException) -> None:
        """Close the writer if ``exc`` leaves it unusable, so that the next write reopens it.

        A connection that opened the file read-only, whose file was moved or deleted, or that
        hit an I/O error keeps failing even once the cause is gone; a busy or full database,
        or a bad batch, does not call for a new one.
        """
        if self._writer is not None and _leaves_connection_unusable(exc):
            conn, self._writer = self._writer, None
            with suppress(sqlite3.Error):  # it is being dropped because it is broken
                conn.close()

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r})"

    # -- write side --------------------------------------------------------------------------

    def write(self, events: Sequence[SessionEvent]) -> None:
        if not events:
            return
        with self._write_lock:
            conn = self._writer_connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                self._batches.write(events)
                conn.execute("COMMIT")
            except BaseException as exc:
                self._batches.forget()
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                finally:
                    self._drop_writer_after(exc)
                raise

    def flush(self) -> None:
        """Checkpoint: sync the write-ahead log to disk and copy it into the database file.

        Commits already survive a crash of the process; this makes them survive a crash of the
        machine. PASSIVE never waits: what a long-running reader still needs stays in the
        (synced) log until the next checkpoint.
        """
        with self._write_lock:
            if self._writer is None:
                return  # dropped after an error: every commit it made is already in the log
            try:
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except BaseException as exc:
                self._drop_writer_after(exc)
                raise

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            if self._closed:
                return
            self._closed = True
            if self._reader is not None:
                self._reader.close()
            if self._writer is not None:
                self._writer.close()

    # -- read side ---------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The reader connection inside one read transaction: all queries see one snapshot."""
        with self._read_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            if self._reader is None:
                self._reader = self._connect()
                self._reader.execute("PRAGMA query_only = ON")
            conn = self._reader
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def get_session(self, session_id: str) -> SessionSummary | None:
        now = datetime.now(timezone.utc)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM sessions AS s WHERE s.session_id = ?",
                (session_id,),
            ).fetchall()
            summaries = _summaries(conn, rows, now)
        return summaries[0] if summaries else None

    def list_steps(
        self, session_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        page = _step_page(after, limit)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE session_key ="
                f" (SELECT session_key FROM sessions WHERE session_id = ?){_STEP_PAGE}",
                (session_id, *page),
            ).fetchall()
        return [step_from_row(session_id, row) for row in rows]

    def list_steps_json(
        self,
        session_id: str,
        fields: Mapping[str, str] | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """A session's steps as JSON objects built by SQLite (see ``StepJsonReader``)."""
        expression, id_bindings = step_json_sql(check_step_fields(fields))
        page = _step_page(after, limit)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {expression} FROM steps WHERE session_key ="
                f" (SELECT session_key FROM sessions WHERE session_id = ?){_STEP_PAGE}",
                (*[session_id] * id_bindings, session_id, *page),
            ).fetchall()
        return [row[0] for row in rows]

    def list_sessions(
        self,
        filters: SessionFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        now = datetime.now(timezone.utc)
        conditions, parameters = _conditions(filters or SessionFilter(), micros(now))
        page_conditions, page_parameters = list(conditions), list(parameters)
        if cursor is not None:
            after_started, after_id = decode_cursor(cursor)
            page_conditions.append("(s.started_at, s.session_id) < (?, ?)")
            page_parameters += [micros(after_started), after_id]
        with self._reading() as conn:
            total = conn.execute(
                f"SELECT count(*) FROM sessions AS s {_where(conditions)}", parameters
            ).fetchone()[0]
            index = _page_index(conn, bool(conditions), total, limit)
            rows = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM sessions AS s{index} {_where(page_conditions)}"
                " ORDER BY s.started_at DESC, s.session_id DESC LIMIT ?",
                [*page_parameters, limit + 1],
            ).fetchall()
            sessions = _summaries(conn, rows[:limit], now)
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(sessions[-1].started_at, sessions[-1].session_id)
        return SessionPage(sessions=sessions, total=total, next_cursor=next_cursor)


_UNUSABLE_AFTER = frozenset({8, 10, 11, 14, 26})
"""SQLite's primary result codes READONLY, IOERR, CORRUPT, CANTOPEN and NOTADB: after one
the connection is replaced (see ``_drop_writer_after``)."""

_UNUSABLE_MESSAGES = (
    "readonly database",
    "disk I/O error",
    "database disk image is malformed",
    "unable to open database file",
    "file is not a database",
)
"""The same, by message, for Python 3.10, whose sqlite3 errors carry no result code."""


def _leaves_connection_unusable(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.Error) or isinstance(exc, sqlite3.ProgrammingError):
        return False
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _UNUSABLE_AFTER
    return any(message in str(exc) for message in _UNUSABLE_MESSAGES)


_SORT_AT_MOST = 2_000
"""Matches SQLite may sort to cut a page without looking for a cheaper way."""


def _page_index(conn: sqlite3.Connection, filtered: bool, total: int, limit: int) -> str:
    """``INDEXED BY sessions_by_start`` when walking newest first finds the page sooner.

    Left to itself SQLite starts from the most selective-looking condition (a tag's or a
    user's session list) and sorts every match, which costs tens of milliseconds for a tag
    that a third of 100,000 sessions carry. Walking the sessions in page order instead visits
    about ``limit * sessions / total`` of them; it is chosen when that is fewer than the
    ``total`` matches a sort would take.
    """
    if not filtered or total <= _SORT_AT_MOST:
        return ""
    # Keys only grow and sessions are never deleted: the largest is about the number of them.
    sessions = conn.execute("SELECT max(session_key) FROM sessions").fetchone()[0] or 0
    return " INDEXED BY sessions_by_start" if (limit + 1) * sessions < total * total else ""


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def _conditions(filters: SessionFilter, now: int) -> tuple[list[str], list[Any]]:
    """SQL conditions and parameters equal to ``_base.matches`` on the summaries."""
    conditions: list[str] = []
    parameters: list[Any] = []
    if filters.user_id is not None:
        conditions.append(
            "s.session_key IN (SELECT session_key FROM session_users WHERE user_id = ?)"
        )
        parameters.append(filters.user_id)
    if filters.tag is not None:
        conditions.append("s.session_key IN (SELECT session_key FROM session_tags WHERE tag = ?)")
        parameters.append(filters.tag)
    # A few statuses split every session between them: with a user, tag or score to start
    # from, the status index (which SQLite would pick, knowing no better) is the slow way in.
    # The unary + keeps SQLite off it.
    member_of = filters.user_id, filters.tag, filters.score_name, filters.min_score
    status = "+s.status" if any(value is not None for value in member_of) else "s.status"
    if filters.status == "timed_out":
        conditions.append(f"({status} = 'timed_out' OR ({status} = 'in_progress' AND {_EXPIRED}))")
        parameters.append(now)
    elif filters.status == "in_progress":
        conditions.append(f"{status} = 'in_progress' AND NOT {_EXPIRED}")
        parameters.append(now)
    elif filters.status is not None:
        conditions.append(f"{status} = ?")
        parameters.append(filters.status)
    if filters.since is not None:
        conditions.append("s.started_at >= ?")
        parameters.append(micros(filters.since))
    if filters.until is not None:
        conditions.append("s.started_at < ?")
        parameters.append(micros(filters.until))
    if filters.score_name is not None or filters.min_score is not None:
        score_conditions = []
        if filters.score_name is not None:
            score_conditions.append("name = ?")
            parameters.append(filters.score_name)
        if filters.min_score is not None:
            score_conditions.append("number >= ?")
            parameters.append(filters.min_score)
        conditions.append(
            "s.session_key IN (SELECT session_key FROM session_scores"
            f" WHERE {' AND '.join(score_conditions)})"
        )
    if filters.q:
        if filters.q.isascii():
            # A range the session id index can serve: every id starting with q sorts in it.
            conditions.append("s.session_id >= ? AND s.session_id < ?")
            parameters += [filters.q, filters.q[:-1] + chr(ord(filters.q[-1]) + 1)]
        else:
            conditions.append("substr(s.session_id, 1, ?) = ?")
            parameters += [len(filters.q), filters.q]
    return conditions, parameters


def _summaries(conn: sqlite3.Connection, rows: list[Any], now: datetime) -> list[SessionSummary]:
    """Summaries of ``sessions`` rows, with their usage, users, tags and scores."""
    usage: dict[int, dict[str, ModelUsage]] = {}
    user_ids: dict[int, list[str]] = {}
    tags: dict[int, list[str]] = {}
    scores: dict[int, list[Score]] = {}
    ids = {row[0]: row[1] for row in rows}
    keys = [row[0] for row in rows]
    for start in range(0, len(keys), _SQL_VARIABLES_MAX):
        chunk = keys[start : start + _SQL_VARIABLES_MAX]
        marks = ", ".join("?" * len(chunk))
        for key, model, steps, input_tokens, output_tokens, total_tokens, cost in conn.execute(
            "SELECT session_key, model, steps, input_tokens, output_tokens, total_tokens,"
            f" cost_usd FROM session_models WHERE session_key IN ({marks})",
            chunk,
        ):
            usage.setdefault(key, {})[model] = ModelUsage(
                steps=steps,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=total_tokens,
                cost_usd=cost,
            )
        for key, user_id in conn.execute(
            "SELECT session_key, user_id FROM session_users"
            f" WHERE session_key IN ({marks}) ORDER BY rowid",
            chunk,
        ):
            user_ids.setdefault(key, []).append(user_id)
        for key, tag in conn.execute(
            "SELECT session_key, tag FROM session_tags"
            f" WHERE session_key IN ({marks}) ORDER BY rowid",
            chunk,
        ):
            tags.setdefault(key, []).append(tag)
        for key, *score in conn.execute(
            f"SELECT session_key, {', '.join(SCORE_COLUMNS)} FROM session_scores"
            f" WHERE session_key IN ({marks}) ORDER BY session_key, name",
            chunk,
        ):
            scores.setdefault(key, []).append(score_from_row(ids[key], score))
    return [_summary(row, usage, user_ids, tags, scores, now) for row in rows]


def _summary(
    row: Sequence[Any],
    usage: dict[int, dict[str, ModelUsage]],
    user_ids: dict[int, list[str]],
    tags: dict[int, list[str]],
    scores: dict[int, list[Score]],
    now: datetime,
) -> SessionSummary:
    (key, session_id, status, started, ended, last_activity, timeout_s, total_steps, errors,
     dropped, input_tokens, output_tokens, total_tokens, cost, environment, parent_session_id,
     parent_trace_id, end_reason, metadata) = row  # fmt: skip
    started_at = datetime_from_micros(started)
    ended_at = None if ended is None else datetime_from_micros(ended)
    last_activity_at = datetime_from_micros(last_activity)
    return SessionSummary(
        session_id=session_id,
        status=effective_status(status, last_activity_at, timeout_s, now),
        started_at=started_at,
        ended_at=ended_at,
        duration_ms=None if ended_at is None else (ended_at - started_at).total_seconds() * 1000,
        last_activity_at=last_activity_at,
        total_steps=total_steps,
        error_count=errors,
        dropped_steps=dropped,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        cost_usd=cost,
        usage=usage.get(key, {}),
        user_ids=user_ids.get(key, []),
        tags=tags.get(key, []),
        environment=environment,
        parent_session_id=parent_session_id,
        parent_trace_id=parent_trace_id,
        end_reason=end_reason,
        metadata=from_json(metadata) if metadata else {},
        scores=scores.get(key, []),
    )
