"""How the SQLite backend writes a batch: its steps once each, each touched session once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from agentsession._health import count
from agentsession._models import Score, SessionEnded, SessionEvent, SessionStarted, Step

from ._base import event_time
from ._sqlite_schema import (
    ENDED_AT,
    INSERT_STEP,
    STARTED_AT,
    UPSERT_SCORE,
    json_text,
    micros,
    score_row,
    step_row,
)

__all__ = ["BatchWriter"]

_KNOWN_SESSIONS_MAX = 10_000
"""Sessions whose row key a writer remembers; past this the longest-known is forgotten."""

_LONG_AGO = -(2**62)
"""Earlier than any timestamp: where the max() of a batch's activity starts."""

_NO_START, _LOWER_START, _SET_START = 0, 1, 2
"""What a batch does to ``started_at``: nothing, lower it to a step's, or replace it."""

_CREATE_SESSION = (
    "INSERT INTO sessions (session_id, started_at, last_activity_at) VALUES (?, ?, ?)"
    " ON CONFLICT (session_id) DO NOTHING"
)
_ADD_COUNTS = """
UPDATE sessions SET
    last_activity_at = max(last_activity_at, ?),
    total_steps = total_steps + ?,
    error_count = error_count + ?,
    input_tokens = input_tokens + ?,
    output_tokens = output_tokens + ?,
    total_tokens = total_tokens + ?,
    cost_usd = cost_usd + ?
WHERE session_key = ?
"""
# started_at and status are indexed, and SQLite rewrites the index entry of every column an
# UPDATE sets, changed or not: setting them in _ADD_COUNTS would triple its cost. So they are
# set apart, and only when a batch may change them.
_LOWER_STARTED_AT = "UPDATE sessions SET started_at = ? WHERE session_key = ? AND started_at > ?"
_APPLY_START = """
UPDATE sessions SET
    started_at = ?, timeout_s = ?, environment = ?, parent_session_id = ?, parent_trace_id = ?,
    metadata = ?
WHERE session_key = ?
"""
_APPLY_END = (
    "UPDATE sessions SET status = ?, ended_at = ?, end_reason = ?, dropped_steps = ?"
    " WHERE session_key = ?"
)
_ADD_MODEL_USAGE = """
INSERT INTO session_models
    (session_key, model, steps, input_tokens, output_tokens, total_tokens, cost_usd)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (session_key, model) DO UPDATE SET
    steps = steps + excluded.steps,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    total_tokens = total_tokens + excluded.total_tokens,
    cost_usd = cost_usd + excluded.cost_usd
"""
_ADD_USER = "INSERT INTO session_users (session_key, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
_ADD_TAG = "INSERT INTO session_tags (session_key, tag) VALUES (?, ?) ON CONFLICT DO NOTHING"


class _KnownSession:
    """What a writer remembers of a session row, so later batches need not look it up."""

    __slots__ = ("key", "tags", "user_ids")

    def __init__(self, key: int) -> None:
        self.key = key
        self.user_ids: set[str] = set()  # known to be stored, so not inserted again
        self.tags: set[str] = set()


class _SessionDelta:
    """One batch's effect on one session row: its events folded as SummaryBuilder folds them."""

    __slots__ = (
        "ended",
        "errors",
        "known",
        "last_activity_at",
        "models",
        "scores",
        "start_mode",
        "started",
        "started_at",
        "tags",
        "user_ids",
    )

    def __init__(self, known: _KnownSession) -> None:
        self.known = known
        self.start_mode = _NO_START
        self.started_at = 0
        self.last_activity_at = _LONG_AGO
        self.started: SessionStarted | None = None  # the batch's last, the one that counts
        self.ended: SessionEnded | None = None
        self.errors = 0
        self.models: dict[str, list[Any]] = {}  # model -> [steps, in, out, total tokens, cost]
        self.user_ids: list[str] = []
        self.tags: list[str] = []
        self.scores: list[Score] = []

    def add_step(self, step: Step, started_at: int, ended_at: int) -> None:
        if self.start_mode == _NO_START:
            self.start_mode, self.started_at = _LOWER_START, started_at
        elif started_at < self.started_at:
            self.started_at = started_at
        if ended_at > self.last_activity_at:
            self.last_activity_at = ended_at
        if step.status == "failed":
            self.errors += 1
        model = step.model or "unknown"
        usage = self.models.get(model)
        if usage is None:
            usage = self.models[model] = [0, 0, 0, 0, 0.0]
        usage[0] += 1
        usage[1] += step.input_tokens or 0
        usage[2] += step.output_tokens or 0
        usage[3] += step.total_tokens or 0
        usage[4] += step.cost_usd or 0.0
        user_id = step.user_id
        if user_id is not None and user_id not in self.user_ids:
            self.user_ids.append(user_id)

    def add(self, event: SessionStarted | SessionEnded | Score) -> None:
        if isinstance(event, Score):
            self.scores.append(event)  # no activity: scores are often given long after the end
        elif isinstance(event, SessionStarted):
            self.started = event
            self.start_mode, self.started_at = _SET_START, micros(event.started_at)
            self.last_activity_at = max(self.last_activity_at, self.started_at)
            self.tags.extend(tag for tag in event.tags if tag not in self.tags)
            if event.user_id is not None and event.user_id not in self.user_ids:
                self.user_ids.append(event.user_id)
        else:
            self.ended = event
            self.last_activity_at = max(self.last_activity_at, micros(event.ended_at))


class BatchWriter:
    """Writes event batches through one connection, inside a transaction its caller manages.

    Remembers the key of each session it has written, and which of its users and tags are
    stored. A caller whose transaction rolls back must call :meth:`forget`.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._known: dict[str, _KnownSession] = {}

    def forget(self) -> None:
        """Drop what was remembered: rows it names may have been rolled back."""
        self._known.clear()

    def write(self, events: Sequence[SessionEvent]) -> None:
        deltas: dict[str, _SessionDelta] = {}
        rows: list[tuple[Any, ...]] = []
        for event in events:
            delta = deltas.get(event.session_id)
            if delta is None:
                delta = deltas[event.session_id] = _SessionDelta(self._session(event))
            if isinstance(event, Step):
                row = step_row(delta.known.key, event)
                rows.append(row)
                delta.add_step(event, row[STARTED_AT], row[ENDED_AT])
            else:
                delta.add(event)
        duplicates = 0
        if rows:
            conn = self._conn
            last_rowid = conn.execute("SELECT coalesce(max(rowid), 0) FROM steps").fetchone()[0]
            duplicates = len(rows) - conn.executemany(INSERT_STEP, rows).rowcount
            if duplicates:
                deltas = self._refold_inserted(events, deltas, last_rowid)
        self._apply(deltas.values())
        if duplicates:
            # Counted once the batch went through (only its COMMIT is left), so that a batch
            # rolled back and retried is not counted twice.
            count("dropped.duplicate_step", duplicates)

    def _session(self, first: SessionEvent) -> _KnownSession:
        """The row of ``first``'s session, created as a SummaryBuilder would start it if new."""
        known = self._known.get(first.session_id)
        if known is not None:
            return known
        seen = micros(event_time(first))
        cursor = self._conn.execute(_CREATE_SESSION, (first.session_id, seen, seen))
        if cursor.rowcount == 1:
            key = cursor.lastrowid
        else:
            key = self._conn.execute(
                "SELECT session_key FROM sessions WHERE session_id = ?", (first.session_id,)
            ).fetchone()[0]
        assert key is not None
        if len(self._known) >= _KNOWN_SESSIONS_MAX:
            del self._known[next(iter(self._known))]
        known = self._known[first.session_id] = _KnownSession(key)
        return known

    def _refold_inserted(
        self, events: Sequence[SessionEvent], deltas: dict[str, _SessionDelta], last_rowid: int
    ) -> dict[str, _SessionDelta]:
        """Fold the batch again, skipping the steps that were already stored (duplicates)."""
        inserted = set(
            self._conn.execute(
                "SELECT session_key, step_index FROM steps WHERE rowid > ?", (last_rowid,)
            )
        )
        refolded = {session_id: _SessionDelta(d.known) for session_id, d in deltas.items()}
        for event in events:
            delta = refolded[event.session_id]
            if not isinstance(event, Step):
                delta.add(event)
                continue
            stored = (delta.known.key, event.step_index)
            if stored in inserted:
                inserted.discard(stored)  # a second copy within the batch was skipped too
                delta.add_step(event, micros(event.started_at), micros(event.ended_at))
        return refolded

    def _apply(self, deltas: Iterable[_SessionDelta]) -> None:
        """One update per touched session, plus its model usage, new users and new tags."""
        counts, lowered, starts, ends, usage, users, tags, scores = [], [], [], [], [], [], [], []
        for delta in deltas:
            known = delta.known
            key = known.key
            steps = input_tokens = output_tokens = total_tokens = 0
            cost = 0.0
            for model, (n, inputs, outputs, totals, model_cost) in delta.models.items():
                usage.append((key, model, n, inputs, outputs, totals, model_cost))
                steps += n
                input_tokens += inputs
                output_tokens += outputs
                total_tokens += totals
                cost += model_cost
            counts.append(
                (
                    delta.last_activity_at,
                    steps,
                    delta.errors,
                    input_tokens,
                    output_tokens,
                    total_tokens,
                    cost,
                    key,
                )
            )
            if delta.start_mode == _LOWER_START:
                lowered.append((delta.started_at, key, delta.started_at))
            elif delta.start_mode == _SET_START:
                start = delta.started
                assert start is not None
                starts.append(
                    (
                        delta.started_at,
                        start.timeout_s,
                        start.environment,
                        start.parent_session_id,
                        start.parent_trace_id,
                        json_text(start.metadata) if start.metadata else None,
                        key,
                    )
                )
            end = delta.ended
            if end is not None:
                ends.append((end.status, micros(end.ended_at), end.reason, end.dropped_steps, key))
            users += [
                (known, user_id) for user_id in delta.user_ids if user_id not in known.user_ids
            ]
            tags += [(known, tag) for tag in delta.tags if tag not in known.tags]
            scores += [score_row(key, score) for score in delta.scores]
        conn = self._conn
        if conn.executemany(_ADD_COUNTS, counts).rowcount != len(counts):
            # A remembered row is gone (deleted through another connection). Raising rolls
            # the batch back and makes the backend forget every key; the retry recreates it.
            raise RuntimeError("a session row was deleted while a batch was being written")
        for statement, parameters in (
            (_LOWER_STARTED_AT, lowered),
            (_APPLY_START, starts),
            (_APPLY_END, ends),
            (_ADD_MODEL_USAGE, usage),
            (UPSERT_SCORE, scores),
        ):
            if parameters:
                conn.executemany(statement, parameters)
        if users:
            conn.executemany(_ADD_USER, [(known.key, user_id) for known, user_id in users])
            for known, user_id in users:
                known.user_ids.add(user_id)
        if tags:
            conn.executemany(_ADD_TAG, [(known.key, tag) for known, tag in tags])
            for known, tag in tags:
                known.tags.add(tag)
