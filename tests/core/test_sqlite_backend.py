"""SQLiteBackend: durable storage, incremental aggregates, and the memory backend's semantics."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentsession import get_stats
from agentsession._models import (
    Score,
    SessionEnded,
    SessionEvent,
    SessionFilter,
    SessionStarted,
    Step,
    ToolCall,
)
from agentsession.backends._memory import MemoryBackend
from agentsession.backends._sqlite import SQLiteBackend
from agentsession.backends._sqlite_schema import MIGRATIONS

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(session_id: str, index: int, *, start: float | None = None, **fields: Any) -> Step:
    """A step starting ``start`` seconds after T0 (default: its index) and lasting 0.5 s."""
    began = at(index if start is None else start)
    defaults: dict[str, Any] = {
        "step_id": f"span-{index}",
        "trace_id": "0" * 32,
        "started_at": began,
        "ended_at": began + timedelta(milliseconds=500),
        "duration_ms": 500.0,
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "cost_usd": 0.25,
    }
    return Step(session_id=session_id, step_index=index, **{**defaults, **fields})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "sessions.db"


@pytest.fixture
def backend(db_path: Path) -> Iterator[SQLiteBackend]:
    """A SQLiteBackend on a fresh file, closed after the test."""
    opened = SQLiteBackend(db_path)
    yield opened
    opened.close()


def test_data_survives_reopening_the_file(db_path: Path) -> None:
    """Everything written is read back unchanged by a backend opened later on the same file."""
    state_step = step(
        "s-1",
        0,
        state={"plan": ["look", "book"], "n": 3},
        input=[{"role": "user", "content": "hi"}],
        output={"role": "assistant", "content": "hello"},
        tool_calls=(ToolCall(name="search", input={"q": "x"}, started_at=at(0.1)),),
        tags=("a",),
        metadata={"k": 1},
        user_id="u1",
    )
    events: list[SessionEvent] = [
        SessionStarted(session_id="s-1", started_at=at(0), user_id="u1", tags=("prod",)),
        state_step,
        step("s-1", 1, status="failed", error="boom"),
        SessionEnded(session_id="s-1", ended_at=at(5), status="completed", reason="done"),
    ]
    first = SQLiteBackend(db_path)
    first.write(events)
    expected = first.get_session("s-1")
    first.close()

    reopened = SQLiteBackend(db_path)
    try:
        assert reopened.list_steps("s-1") == [state_step, events[2]]
        assert reopened.get_session("s-1") == expected
        assert expected is not None
        assert expected.total_steps == 2
        assert expected.status == "completed"
        assert expected.tags == ["prod"]
    finally:
        reopened.close()


def test_file_is_in_wal_mode_with_the_latest_schema_version(backend: SQLiteBackend) -> None:
    """Opening creates the parent directories, switches to WAL and applies every migration."""
    with sqlite3.connect(backend.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert backend.schema_version == len(MIGRATIONS)


def test_an_appended_migration_is_applied_once_on_open(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration added later runs when an older file is opened, keeps its data, and only once."""
    old = SQLiteBackend(db_path)
    old.write([step("s-1", 0)])
    old.close()
    extra = ("CREATE TABLE scores (session_key INTEGER NOT NULL, score REAL)",)
    monkeypatch.setattr("agentsession.backends._sqlite_schema.MIGRATIONS", [*MIGRATIONS, extra])

    upgraded = SQLiteBackend(db_path)
    upgraded.close()
    again = SQLiteBackend(db_path)  # would fail on "table scores already exists" if re-run
    try:
        assert again.schema_version == len(MIGRATIONS) + 1
        assert again.get_session("s-1") is not None
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 0
    finally:
        again.close()


def test_a_file_from_a_newer_version_is_refused(db_path: Path) -> None:
    """A schema version above the known migrations raises instead of misreading the file."""
    SQLiteBackend(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this agentsession"):
        SQLiteBackend(db_path)


def test_aggregates_are_stored_per_batch(backend: SQLiteBackend) -> None:
    """The sessions and session_models rows hold running totals after every batch."""
    backend.write([step("s-1", 0), step("s-1", 1, model="claude", status="failed")])
    backend.write([step("s-1", 2, input_tokens=None, cost_usd=None)])
    with sqlite3.connect(backend.path) as conn:
        row = conn.execute(
            "SELECT total_steps, error_count, input_tokens, output_tokens, cost_usd"
            " FROM sessions WHERE session_id = 's-1'"
        ).fetchone()
        models = dict(
            conn.execute("SELECT model, steps FROM session_models ORDER BY model").fetchall()
        )
    assert row == (3, 1, 200, 60, 0.5)
    assert models == {"claude": 1, "gpt-4o": 2}
    summary = backend.get_session("s-1")
    assert summary is not None
    assert summary.usage["gpt-4o"].input_tokens == 100
    assert summary.usage["claude"].cost_usd == 0.25


def test_a_step_without_session_started_creates_the_session(backend: SQLiteBackend) -> None:
    """A session first seen through a step starts when that step started, in progress."""
    backend.write([step("proxy-1", 4, start=30, user_id="u9")])
    summary = backend.get_session("proxy-1")
    assert summary is not None
    assert summary.started_at == at(30)
    assert summary.last_activity_at == at(30.5)
    assert summary.status == "in_progress"
    assert summary.user_ids == ["u9"]


def test_session_started_after_steps_keeps_their_counts(backend: SQLiteBackend) -> None:
    """A late SessionStarted sets the session's start and metadata but loses no step."""
    backend.write([step("s-1", 0, start=10), step("s-1", 1, start=11)])
    backend.write([SessionStarted(session_id="s-1", started_at=at(9), metadata={"v": 2})])
    summary = backend.get_session("s-1")
    assert summary is not None
    assert (summary.total_steps, summary.input_tokens) == (2, 200)
    assert summary.started_at == at(9)
    assert summary.metadata == {"v": 2}


def test_duplicate_steps_are_stored_and_counted_once(backend: SQLiteBackend) -> None:
    """A retried batch, or a step repeated within a batch, changes nothing the second time."""
    batch: list[SessionEvent] = [
        SessionStarted(session_id="s-1", started_at=at(0)),
        step("s-1", 0),
        step("s-1", 1),
    ]
    backend.write(batch)
    backend.write(batch)
    backend.write([step("s-1", 1, model="other"), step("s-1", 2), step("s-1", 2, model="other")])
    summary = backend.get_session("s-1")
    assert summary is not None
    assert summary.total_steps == 3
    assert set(summary.usage) == {"gpt-4o"}
    assert summary.usage["gpt-4o"].steps == 3
    assert [s.model for s in backend.list_steps("s-1")] == ["gpt-4o"] * 3


def test_ignored_duplicate_steps_are_counted(backend: SQLiteBackend) -> None:
    """Each step ignored because its index was already stored adds one to
    dropped.duplicate_step, so that an index reused by mistake does not vanish unseen."""
    backend.write([step("s-1", 0), step("s-1", 1)])
    assert "dropped.duplicate_step" not in get_stats()
    backend.write([step("s-1", 1, model="other"), step("s-1", 2), step("s-1", 2, model="other")])
    assert get_stats()["dropped.duplicate_step"] == 2
    assert [s.model for s in backend.list_steps("s-1")] == ["gpt-4o"] * 3


@pytest.mark.parametrize(
    "bad_event",
    [
        # Fails while the steps are inserted, after a good one went in.
        step("s-2", 1, input_tokens=2**64),
        # Fails while the sessions are updated, after every step went in.
        SessionEnded(session_id="s-2", ended_at=at(9), status="completed", dropped_steps=2**64),
    ],
    ids=["step-insert", "session-update"],
)
def test_a_failing_batch_leaves_nothing_behind(
    backend: SQLiteBackend, bad_event: SessionEvent
) -> None:
    """A batch that raises half-way is rolled back whole, and the fixed batch then writes once."""
    backend.write([step("s-1", 0)])
    good: list[SessionEvent] = [
        SessionStarted(session_id="s-2", started_at=at(0), user_id="u2", tags=("t",)),
        step("s-1", 1),
        step("s-2", 0),
    ]
    with pytest.raises(OverflowError):
        backend.write([*good, bad_event])
    assert backend.get_session("s-2") is None
    assert backend.list_steps("s-2") == []
    before = backend.get_session("s-1")
    assert before is not None
    assert before.total_steps == 1

    backend.write([*good, step("s-2", 1)])
    after_1, after_2 = backend.get_session("s-1"), backend.get_session("s-2")
    assert after_1 is not None
    assert after_1.total_steps == 2
    assert after_2 is not None
    assert after_2.total_steps == 2
    assert (after_2.user_ids, after_2.tags) == (["u2"], ["t"])


def test_a_session_row_deleted_elsewhere_is_recreated_by_the_retry(
    backend: SQLiteBackend,
) -> None:
    """If another connection deletes a session the writer knows, the batch fails, then heals."""
    backend.write([step("s-1", 0)])
    with sqlite3.connect(backend.path) as conn:
        conn.execute("DELETE FROM sessions WHERE session_id = 's-1'")
    with pytest.raises(RuntimeError, match="deleted"):
        backend.write([step("s-1", 1)])
    backend.write([step("s-1", 1)])
    summary = backend.get_session("s-1")
    assert summary is not None
    assert summary.total_steps == 1


def test_reads_do_not_wait_for_an_open_write_transaction(backend: SQLiteBackend) -> None:
    """While another connection holds the write lock, a reader sees the last commit at once."""
    backend.write([step("s-1", 0)])
    blocker = sqlite3.connect(backend.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("UPDATE sessions SET total_steps = 99")
        reader = SQLiteBackend(backend.path, busy_timeout_s=0.05)
        try:
            summary = reader.get_session("s-1")
            assert summary is not None
            assert summary.total_steps == 1
            assert len(reader.list_steps("s-1")) == 1
        finally:
            reader.close()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_another_process_reads_while_the_writer_is_open(backend: SQLiteBackend) -> None:
    """A second process opening the file sees what an open backend has committed."""
    backend.write([step("s-1", 0), step("s-1", 1)])
    script = (
        "import sys; from agentsession.backends._sqlite import SQLiteBackend\n"
        "b = SQLiteBackend(sys.argv[1]); s = b.get_session('s-1')\n"
        "print(s.model_dump_json()); b.close()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(backend.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout)["total_steps"] == 2
    backend.write([step("s-1", 2)])  # the writer is unaffected by the reader having come and gone
    summary = backend.get_session("s-1")
    assert summary is not None
    assert summary.total_steps == 3


def test_reads_on_one_thread_while_another_thread_writes(backend: SQLiteBackend) -> None:
    """Reads from the main thread see consistent snapshots while a worker thread writes."""
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(60):
                backend.write([step(f"s-{n % 3}", n // 3), step(f"s-{n % 3}", n // 3 + 100)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        for summary in backend.list_sessions().sessions:
            assert summary.total_steps == sum(u.steps for u in summary.usage.values())
            assert summary.input_tokens == 100 * summary.total_steps
    thread.join()
    assert errors == []
    assert sum(s.total_steps for s in backend.list_sessions().sessions) == 120


def test_timed_out_is_derived_when_reading(backend: SQLiteBackend) -> None:
    """A session idle past its timeout reads and filters as timed_out; others as in_progress."""
    backend.write(
        [
            SessionStarted(session_id="idle", started_at=at(0), timeout_s=60),
            SessionStarted(
                session_id="fresh", started_at=datetime.now(timezone.utc), timeout_s=3600
            ),
            SessionStarted(session_id="forever", started_at=at(1)),
        ]
    )
    summary = backend.get_session("idle")
    assert summary is not None
    assert summary.status == "timed_out"
    timed_out = backend.list_sessions(SessionFilter(status="timed_out"))
    in_progress = backend.list_sessions(SessionFilter(status="in_progress"))
    assert [s.session_id for s in timed_out.sessions] == ["idle"]
    assert [s.session_id for s in in_progress.sessions] == ["fresh", "forever"]
    assert (timed_out.total, in_progress.total) == (1, 2)


def test_input_of_unknown_type_is_stored_as_text(backend: SQLiteBackend) -> None:
    """A value JSON cannot encode is written as its str() rather than failing the batch."""

    class Opaque:
        def __str__(self) -> str:
            return "<opaque>"

    backend.write([step("s-1", 0, input={"obj": Opaque()})])
    assert backend.list_steps("s-1")[0].input == {"obj": "<opaque>"}


def test_flush_moves_commits_into_the_database_file(backend: SQLiteBackend, tmp_path: Path) -> None:
    """After flush the database file alone, without its write-ahead log, holds every commit."""
    backend.write([step("s-1", 0), step("s-1", 1)])
    backend.flush()
    copy = tmp_path / "copy.db"
    shutil.copyfile(backend.path, copy)
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT session_id, total_steps FROM sessions").fetchall() == [
            ("s-1", 2)
        ]


def test_bad_arguments_and_closing(backend: SQLiteBackend) -> None:
    """A bad limit or cursor raises ValueError; close is idempotent and reads then fail."""
    with pytest.raises(ValueError, match="limit"):
        backend.list_sessions(limit=0)
    with pytest.raises(ValueError, match="cursor"):
        backend.list_sessions(cursor="not-a-cursor")
    backend.close()
    backend.close()
    with pytest.raises(sqlite3.ProgrammingError):
        backend.get_session("s-1")


# -- the same answers as MemoryBackend, for any sequence of events ------------------------------

SESSION_IDS = ("alpha-1", "alpha-2", "beta-1", "beta-22", "gamma")
USERS = (None, "u1", "u2")
JSON_VALUES = (None, "text", [{"role": "user", "content": "hi"}], {"a": [1, 2.5, None, True]})


@st.composite
def event_batches(draw: st.DrawFn) -> list[list[SessionEvent]]:
    """Events of a few sessions in some order, cut into batches; no step is repeated."""
    next_index: dict[str, int] = {}
    events: list[SessionEvent] = []
    for _ in range(draw(st.integers(1, 30))):
        session_id = draw(st.sampled_from(SESSION_IDS))
        moment = at(draw(st.integers(0, 5000)) + draw(st.integers(0, 999_999)) / 1e6)
        kind = draw(st.sampled_from(("step", "step", "step", "start", "end", "score")))
        if kind == "score":
            events.append(
                Score(
                    session_id=session_id,
                    name=draw(st.sampled_from(("quality", "helpful", "é"))),
                    value=draw(st.sampled_from((0.25, -1.0, 3.0, True, False, "good"))),
                    comment=draw(st.sampled_from((None, "checked"))),
                    source=draw(st.sampled_from((None, "explorer"))),
                    # Few distinct times, so that equal times (the later write wins) occur.
                    created_at=at(draw(st.integers(0, 3))),
                )
            )
        elif kind == "start":
            events.append(
                SessionStarted(
                    session_id=session_id,
                    started_at=moment,
                    user_id=draw(st.sampled_from(USERS)),
                    tags=tuple(draw(st.lists(st.sampled_from(("prod", "eval", "x")), max_size=2))),
                    timeout_s=draw(st.sampled_from((None, 60.0, 1e10))),
                    environment=draw(st.sampled_from((None, "prod"))),
                    parent_session_id=draw(st.sampled_from((None, "alpha-1"))),
                    metadata=draw(st.sampled_from(({}, {"k": "v", "n": 1}))),
                )
            )
        elif kind == "end":
            events.append(
                SessionEnded(
                    session_id=session_id,
                    ended_at=moment,
                    status=draw(st.sampled_from(("completed", "failed", "cancelled", "timed_out"))),
                    reason=draw(st.sampled_from((None, "done"))),
                    dropped_steps=draw(st.integers(0, 3)),
                )
            )
        else:
            index = next_index.get(session_id, 0)
            next_index[session_id] = index + 1
            tokens = draw(st.sampled_from((None, 7, 1000)))
            events.append(
                Step(
                    session_id=session_id,
                    step_index=index,
                    step_id=f"span-{index}",
                    trace_id="1" * 32,
                    started_at=moment,
                    ended_at=moment + timedelta(milliseconds=draw(st.integers(0, 90_000))),
                    duration_ms=1.0,
                    status=draw(st.sampled_from(("completed", "failed", "cancelled"))),
                    model=draw(st.sampled_from((None, "gpt-4o", "claude"))),
                    input_tokens=tokens,
                    output_tokens=draw(st.sampled_from((None, 3))),
                    total_tokens=None if tokens is None else tokens + 3,
                    # Multiples of 2**-10 add up exactly in any order, as sums in SQL do not
                    # run in the order the memory backend adds.
                    cost_usd=draw(st.sampled_from((None, 0.5, 3 / 1024))),
                    user_id=draw(st.sampled_from(USERS)),
                    state=draw(st.sampled_from(({}, {"plan": ["a", "b"], "n": 3}))),
                    input=draw(st.sampled_from(JSON_VALUES)),
                    output=draw(st.sampled_from(JSON_VALUES)),
                    tool_calls=draw(
                        st.sampled_from(
                            ((), (ToolCall(name="t", input={"q": 1}, started_at=moment),))
                        )
                    ),
                    tags=draw(st.sampled_from(((), ("s",)))),
                )
            )
    cuts = sorted(set(draw(st.lists(st.integers(1, len(events)), max_size=4))) | {len(events)})
    return [events[start:end] for start, end in zip([0, *cuts], cuts, strict=False) if end > start]


FILTERS = [
    None,
    SessionFilter(user_id="u1"),
    SessionFilter(user_id="nobody"),
    *(
        SessionFilter(status=status)
        for status in ("in_progress", "completed", "failed", "cancelled", "timed_out")
    ),
    SessionFilter(tag="prod"),
    SessionFilter(since=at(1000)),
    SessionFilter(until=at(2500)),
    SessionFilter(since=at(100), until=at(4000), user_id="u2"),
    *(SessionFilter(q=q) for q in ("alpha", "beta-2", "a", "zz", "")),
    SessionFilter(score_name="quality"),
    SessionFilter(score_name="nothing"),
    SessionFilter(min_score=0.25),
    SessionFilter(min_score=1),
    SessionFilter(score_name="helpful", min_score=1),
    SessionFilter(score_name="quality", min_score=-1, user_id="u1"),
]


def pages(reader: Any, filters: SessionFilter | None) -> list[Any]:
    """Every page of a listing, two sessions at a time."""
    result = [reader.list_sessions(filters, limit=2)]
    while result[-1].next_cursor is not None:
        result.append(reader.list_sessions(filters, limit=2, cursor=result[-1].next_cursor))
    return result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=event_batches())
def test_answers_equal_the_memory_backends(batches: Sequence[Sequence[SessionEvent]]) -> None:
    """For any events, summaries, steps and every filtered, paged listing equal MemoryBackend's."""
    memory = MemoryBackend()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteBackend(Path(tmp) / "sessions.db")
        try:
            for batch in batches:
                memory.write(batch)
                sqlite.write(batch)
            for session_id in (*SESSION_IDS, "unknown"):
                assert sqlite.get_session(session_id) == memory.get_session(session_id)
                assert sqlite.list_steps(session_id) == memory.list_steps(session_id)
                # The JSON SQLite builds itself holds what the models hold.
                assert [json.loads(text) for text in sqlite.list_steps_json(session_id)] == [
                    step.model_dump(mode="json") for step in memory.list_steps(session_id)
                ]
            # Bounds equal to a start time pin that since is inclusive and until exclusive.
            boundaries = [s.started_at for s in memory.list_sessions(limit=2).sessions]
            for filters in [
                *FILTERS,
                *(SessionFilter(since=moment) for moment in boundaries),
                *(SessionFilter(until=moment) for moment in boundaries),
            ]:
                assert pages(sqlite, filters) == pages(memory, filters), filters
        finally:
            sqlite.close()


def tagged_sessions(count: int) -> list[SessionEvent]:
    """``count`` sessions a second apart: two in three tagged "common", one in 50 by user "u-7",
    every fourth failed."""
    events: list[SessionEvent] = []
    for n in range(count):
        session_id = f"many-{n:05d}"
        events.append(
            SessionStarted(
                session_id=session_id,
                started_at=at(n),
                user_id="u-7" if n % 50 == 0 else f"u-{n % 40 + 8}",
                tags=("common",) if n % 3 else ("rare",),
            )
        )
        events.append(
            SessionEnded(
                session_id=session_id,
                ended_at=at(n + 0.5),
                status="failed" if n % 4 == 0 else "completed",
            )
        )
    return events


def page_statements(backend: SQLiteBackend, filters: SessionFilter) -> tuple[str, str]:
    """The count and the page query of one ``list_sessions`` call, parameters filled in."""
    backend.get_session("any")  # opens the reader connection
    reader = backend._reader
    assert reader is not None
    statements: list[str] = []
    reader.set_trace_callback(statements.append)
    try:
        backend.list_sessions(filters, limit=50)
    finally:
        reader.set_trace_callback(None)
    count = next(s for s in statements if s.startswith("SELECT count(*) FROM sessions"))
    page = next(s for s in statements if "ORDER BY s.started_at DESC" in s)
    return count, page


def query_plan(db_path: Path, statement: str) -> str:
    conn = sqlite3.connect(db_path)
    try:
        return "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
    finally:
        conn.close()


def test_a_tag_most_sessions_carry_is_paged_in_start_order_without_sorting(
    backend: SQLiteBackend, db_path: Path
) -> None:
    """A page of a common tag walks the sessions newest first instead of sorting every match
    (tens of milliseconds at 100,000 sessions); its pages equal MemoryBackend's."""
    events = tagged_sessions(4_000)
    memory = MemoryBackend()
    memory.write(events)
    backend.write(events)
    for filters in (
        SessionFilter(tag="common"),
        SessionFilter(tag="common", status="completed"),
        SessionFilter(tag="rare"),
        SessionFilter(user_id="u-7", status="failed"),
    ):
        first, later = backend.list_sessions(filters, limit=50), []
        cursor = first.next_cursor
        while cursor is not None:
            page = backend.list_sessions(filters, limit=50, cursor=cursor)
            later.append(page)
            cursor = page.next_cursor
        expected = memory.list_sessions(filters, limit=50)
        assert first == expected, filters
        assert sum(len(p.sessions) for p in (first, *later)) == expected.total
    page_query = page_statements(backend, SessionFilter(tag="common"))[1]
    assert "INDEXED BY" not in page_statements(backend, SessionFilter(tag="rare"))[1]
    plan = query_plan(db_path, page_query)
    assert "sessions_by_start" in plan
    assert "TEMP B-TREE" not in plan


def test_a_users_sessions_of_one_status_are_found_from_the_users_list(
    backend: SQLiteBackend, db_path: Path
) -> None:
    """With a user filter, a status filter is checked per session, not used as the way in:
    every status holds a large share of all sessions, a user few of them."""
    backend.write(tagged_sessions(1_000))
    count_query, page_query = page_statements(
        backend, SessionFilter(user_id="u-7", status="completed")
    )
    for statement in (count_query, page_query):
        plan = query_plan(db_path, statement)
        assert "session_users_by_user" in plan
        assert "sessions_by_status" not in plan
    page = backend.list_sessions(SessionFilter(user_id="u-7", status="completed"))
    assert page.total == 10  # n % 50 == 0 and n % 4 != 0, for n < 1,000
    assert all(s.user_ids == ["u-7"] and s.status == "completed" for s in page.sessions)


def test_finished_trackers_and_steps_are_released_once_written(db_path: Path) -> None:
    """Nothing keeps an ended session's tracker or its step handles alive after the writer
    stored them: a process recording millions of steps holds only what is in flight."""
    import gc
    import weakref

    import agentsession
    from agentsession import SessionTracker
    from agentsession._step import StepHandle

    backend = SQLiteBackend(db_path)
    tracker = SessionTracker("released-0001", backend=backend)
    tracker.update_state({"goal": "x" * 100})
    steps = []
    for _ in range(3):
        handle = tracker.begin_step(model="gpt-4o-mini", input=[{"role": "user", "content": "hi"}])
        handle.end({"content": "ok"}, input_tokens=3, output_tokens=1)
        steps.append(handle.step_id)  # a handle has slots and no weak reference
    tracker.record_tool_call("search", {"q": "x"}, {"hits": 1})
    tracker.begin_step().fail(RuntimeError("boom"))
    tracker.end()
    tracker_ref = weakref.ref(tracker)
    del tracker, handle
    assert agentsession.flush(5.0)
    gc.collect()
    assert tracker_ref() is None
    alive = [o for o in gc.get_objects() if isinstance(o, StepHandle) and o.step_id in steps]
    assert alive == []
    summary = backend.get_session("released-0001")
    assert summary is not None
    assert summary.total_steps == 4
