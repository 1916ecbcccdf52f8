"""Scale: 1,000,000 steps recorded into SQLite, queried at that size, in bounded memory.

Run ``python benchmarks/bench_scale.py`` (``--quick``: 50,000 steps in 5,000 sessions, for
smoke runs). One process, three parts, all on one temporary SQLite file deleted at the end:

1. *Write*: 100,000 sessions of 10 steps (varied users, tags, models, ~2% failed steps, a
   score on every tenth) and one session of 10,000 steps, recorded as an application records
   them: ``SessionTracker`` + ``begin_step``/``end``, the background writer, ``SQLiteBackend``;
   every session ended. The recording loop only waits when the writer's queue is half full
   (an application's LLM calls take seconds; this one has none), so that nothing is dropped.
   Baseline, in the same run: the very step rows the backend stored, read back and inserted
   with a bare ``executemany`` into a table without index, same pragmas and batch size.
2. *Read*: ``list_sessions`` pages (first, filtered, later by cursor), ``get_session`` and
   ``list_steps`` of the 10,000-step session, whole and a page of 500 steps (the first and one
   in the middle, ``after=``/``limit=``); median and max over repeats against the 50 ms
   goal. The same through the explorer's HTTP API (uvicorn on 127.0.0.1) as extra lines.
3. *Memory*: resident memory (VmRSS) after a warm-up and at the end, while part 1 runs.
   Goal: growth under 50 MB.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _scale_data import BIG_SESSION, STEPS_PER_SESSION, BigSession, Traffic, record_session

import agentsession
from agentsession import SessionFilter, SQLiteBackend
from agentsession._worker import emitter_for
from agentsession.backends._sqlite_schema import STEP_COLUMNS

GOAL_MS = 50.0
STEP_PAGE = 500  # steps per page of the 10,000-step session
GOAL_GROWTH_MB = 50.0
BATCH_SIZE = 500  # the writer's default batch, used by the baseline too
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


def rss_mb() -> float:
    """This process's resident memory, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class TimedSQLiteBackend(SQLiteBackend):
    """The product backend, also adding up the time its writer thread spends in ``write``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.write_s = 0.0
        self.writer_cpu_s = 0.0

    def write(self, events: Sequence[Any]) -> None:
        began = time.perf_counter()
        super().write(events)
        self.write_s += time.perf_counter() - began
        # The writer thread's CPU time so far: building Step models from handles included.
        self.writer_cpu_s = time.thread_time()


class Recording:
    """What part 1 measured."""

    def __init__(self) -> None:
        self.sessions = 0
        self.steps = 0
        self.failed_steps = 0
        self.elapsed_s = 0.0
        self.write_s = 0.0
        self.writer_cpu_s = 0.0
        self.rss_warm_mb = 0.0
        self.rss_peak_mb = 0.0
        self.rss_end_mb = 0.0
        self.queue_peak = 0
        self.queue_size = 0
        self.waits = 0
        self.window: tuple[datetime, datetime] = (datetime.now(timezone.utc),) * 2
        self.dropped: dict[str, int] = {}


def record(path: Path, sessions: int, big_steps: int, warm_steps: int) -> Recording:
    """Part 1 and 3: record the traffic through the product path, sampling memory as it goes."""
    result = Recording()
    traffic = Traffic()
    backend = TimedSQLiteBackend(path)
    emitter = emitter_for(backend)
    # The queue is private; reading its length is how this bench sees the writer's backlog.
    queue = emitter._queue
    result.queue_size = high_water = emitter.queue_size
    high_water //= 2
    big = BigSession(traffic, backend)
    window_from, window_to = sessions * 45 // 100, sessions * 55 // 100
    total_steps = sessions * STEPS_PER_SESSION + big_steps
    warm_at = min(warm_steps, total_steps // 2)
    began = time.perf_counter()
    for number in range(sessions):
        if number == window_from:
            since = datetime.now(timezone.utc)
        elif number == window_to:
            until = datetime.now(timezone.utc)
        result.failed_steps += record_session(traffic, number, backend)
        big.record(big_steps * (number + 1) // sessions)
        steps = (number + 1) * STEPS_PER_SESSION + big.steps
        backlog = len(queue)
        result.queue_peak = max(result.queue_peak, backlog)
        while len(queue) > high_water:
            result.waits += 1
            time.sleep(0.002)
        if steps >= warm_at and not result.rss_warm_mb:
            result.rss_warm_mb = rss_mb()
        if number % 1_000 == 0:
            result.rss_peak_mb = max(result.rss_peak_mb, rss_mb())
    big.end()
    if not agentsession.flush(timeout=600):
        raise RuntimeError("the writer did not catch up within 10 minutes")
    result.elapsed_s = time.perf_counter() - began
    gc.collect()
    result.rss_end_mb = rss_mb()
    result.rss_peak_mb = max(result.rss_peak_mb, result.rss_end_mb)
    result.sessions = sessions + 1
    result.steps = sessions * STEPS_PER_SESSION + big.steps
    result.write_s, result.writer_cpu_s = backend.write_s, backend.writer_cpu_s
    result.window = (since, until)
    result.dropped = {k: v for k, v in agentsession.get_stats().items() if k.startswith("dropped")}
    emitter.close()
    return result


def stored_rows(path: Path) -> Iterator[list[tuple[Any, ...]]]:
    """The step rows the backend stored, in insertion order, a writer batch at a time."""
    conn = sqlite3.connect(path)
    try:
        cursor = conn.execute(f"SELECT session_key, {', '.join(STEP_COLUMNS)} FROM steps")
        while batch := cursor.fetchmany(BATCH_SIZE):
            yield batch
    finally:
        conn.close()


def bare_insert(source: Path, target: Path) -> tuple[int, float]:
    """The baseline: the same rows, ``executemany`` into a plain table; rows and seconds."""
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        for pragma in PRAGMAS:
            conn.execute(pragma)
        columns = ("session_key", *STEP_COLUMNS)
        conn.execute(f"CREATE TABLE steps ({', '.join(columns)})")
        insert = f"INSERT INTO steps VALUES ({', '.join('?' * len(columns))})"
        rows, elapsed = 0, 0.0
        for batch in stored_rows(source):  # reading them back is not timed
            began = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, batch)
            conn.execute("COMMIT")
            elapsed += time.perf_counter() - began
            rows += len(batch)
    finally:
        conn.close()
    return rows, elapsed


def checkpointed_size(path: Path) -> int:
    """The file's size once its write-ahead log is copied in and truncated."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path.stat().st_size


def timed_ms(action: Callable[[], object], repeats: int) -> list[float]:
    action()  # warm: page cache, statement cache
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return times


def verdict_line(name: str, times: list[float], note: str = "") -> bool:
    median, worst = statistics.median(times), max(times)
    ok = median < GOAL_MS
    print(
        f"  {name:<46} median {median:7.2f} ms  max {worst:7.2f} ms  "
        f"{'PASS' if ok else 'MISS'}{note}"
    )
    return ok


def read_queries(
    reader: SQLiteBackend, window: tuple[datetime, datetime]
) -> dict[str, Callable[[], object]]:
    """The reads part 2 times, each checked once to answer something."""
    first = reader.list_sessions(limit=50)
    cursor = first.next_cursor
    for _ in range(19):  # the 21st page: a thousand sessions down
        cursor = reader.list_sessions(limit=50, cursor=cursor).next_cursor
    since, until = window
    filters = {
        "user_id": SessionFilter(user_id="user-0042"),
        "status=failed": SessionFilter(status="failed"),
        "tag=eval": SessionFilter(tag="eval"),
        "since/until (10% of the run)": SessionFilter(since=since, until=until),
        "user_id + status=completed": SessionFilter(user_id="user-0042", status="completed"),
        "tag=beta + since/until": SessionFilter(tag="beta", since=since, until=until),
        "score quality >= 0.9": SessionFilter(score_name="quality", min_score=0.9),
    }
    queries: dict[str, Callable[[], object]] = {
        "list_sessions first page (50)": lambda: reader.list_sessions(limit=50),
        "list_sessions page 21 (cursor)": lambda: reader.list_sessions(limit=50, cursor=cursor),
    }
    for name, session_filter in filters.items():
        page = reader.list_sessions(session_filter, limit=50)
        assert page.sessions, f"the {name} filter matches nothing"
        queries[f"list_sessions {name}"] = (
            lambda f=session_filter: reader.list_sessions(f, limit=50)  # type: ignore[misc]
        )
    queries[f"get_session({BIG_SESSION})"] = lambda: reader.get_session(BIG_SESSION)
    queries[f"list_steps({BIG_SESSION})"] = lambda: reader.list_steps(BIG_SESSION)
    queries[f"list_steps_json({BIG_SESSION})"] = lambda: reader.list_steps_json(BIG_SESSION)
    # How a UI reads a long session: a page of steps at a time, the next after the last index.
    summary = reader.get_session(BIG_SESSION)
    assert summary is not None
    middle = summary.total_steps // 2 - 1
    for label, after in (("first", None), ("middle", middle)):
        page_steps = reader.list_steps(BIG_SESSION, after=after, limit=STEP_PAGE)
        assert len(page_steps) == STEP_PAGE, label
        assert page_steps[0].step_index == (0 if after is None else after + 1), label

        def steps(after: int | None = after) -> object:
            return reader.list_steps(BIG_SESSION, after=after, limit=STEP_PAGE)

        def steps_json(after: int | None = after) -> object:
            return reader.list_steps_json(BIG_SESSION, after=after, limit=STEP_PAGE)

        queries[f"list_steps {label} page ({STEP_PAGE})"] = steps
        queries[f"list_steps_json {label} page ({STEP_PAGE})"] = steps_json
    return queries


def http_queries() -> dict[str, tuple[str, dict[str, str]]]:
    """The explorer requests timed: paths and query parameters."""
    return {
        "GET /api/sessions": ("/api/sessions", {}),
        "GET /api/sessions?user_id=&status=": (
            "/api/sessions",
            {"user_id": "user-0042", "status": "completed"},
        ),
        f"GET /api/sessions/{BIG_SESSION}": (f"/api/sessions/{BIG_SESSION}", {}),
        f"GET /api/sessions/{BIG_SESSION}/timeline": (f"/api/sessions/{BIG_SESSION}/timeline", {}),
    }


def time_http(reader: SQLiteBackend, repeats: int) -> None:
    """The explorer's HTTP API on 127.0.0.1 over the same file; skipped without its extras."""
    try:
        import httpx
        from bench_explorer import serving

        from agentsession.explorer import create_explorer_app
    except ImportError as exc:
        print(f"  (explorer over HTTP skipped: {exc})")
        return
    with serving(create_explorer_app(reader)) as url, httpx.Client(base_url=url) as client:
        for name, (path, params) in http_queries().items():

            def get(path: str = path, params: dict[str, str] = params) -> None:
                client.get(path, params=params).raise_for_status()

            verdict_line(name, timed_ms(get, repeats), "  (HTTP, extra)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 steps, 5,000 sessions")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of each query")
    parser.add_argument("--dir", type=Path, help="where the database files go (default: temp)")
    parser.add_argument("--no-http", action="store_true", help="skip the explorer HTTP lines")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    sessions, big_steps, warm = (5_000, 10_000, 10_000) if quick else (100_000, 10_000, 50_000)

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="agentsession-scale-") as tmp:
        path, bare_path = Path(tmp) / "scale.db", Path(tmp) / "bare.db"
        print(
            f"Recording {sessions:,} sessions x {STEPS_PER_SESSION} steps + one of "
            f"{big_steps:,} steps through SessionTracker -> writer -> SQLiteBackend "
            f"(SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs)"
        )
        run = record(path, sessions, big_steps, warm)
        bare_rows, bare_s = bare_insert(path, bare_path)
        assert bare_rows == run.steps, (bare_rows, run.steps)
        size, bare_size = checkpointed_size(path), checkpointed_size(bare_path)
        bare_path.unlink()

        rate, bare_rate = run.steps / run.elapsed_s, bare_rows / bare_s
        print("\n1. Write")
        print(f"  {run.steps:,} steps in {run.sessions:,} sessions, {run.failed_steps:,} failed")
        print(
            f"  end to end (record + writer until flush() returns): {rate:>9,.0f} steps/s"
            f"  ({run.elapsed_s:.1f} s)"
        )
        print(
            f"  writer thread inside SQLiteBackend.write          : "
            f"{run.steps / run.write_s:>9,.0f} steps/s  ({run.write_s:.1f} s; sessions, "
            f"scores and aggregates included)"
        )
        print(
            f"  writer thread CPU, Step models built + write      : "
            f"{run.steps / run.writer_cpu_s:>9,.0f} steps/s  ({run.writer_cpu_s:.1f} s)"
        )
        print(f"  baseline: bare executemany, same rows, no index   : {bare_rate:>9,.0f} steps/s")
        print(
            f"  ratio end to end / bare {rate / bare_rate:.0%},  writer's write / bare "
            f"{run.steps / run.write_s / bare_rate:.0%}"
        )
        print(
            f"  file size: {size / run.steps:,.0f} bytes/step ({size / 1e6:,.0f} MB, after a "
            f"checkpoint); bare table {bare_size / run.steps:,.0f} bytes/step"
        )
        print(f"  dropped: {run.dropped or 'none'}")

        print(f"\n2. Read at that size, {args.repeats} repeats each, goal < {GOAL_MS:.0f} ms")
        reader = SQLiteBackend(path)
        try:
            all_ok = True
            for name, query in read_queries(reader, run.window).items():
                all_ok &= verdict_line(name, timed_ms(query, args.repeats))
            if not args.no_http:
                time_http(reader, args.repeats)
        finally:
            reader.close()

        growth = run.rss_end_mb - run.rss_warm_mb
        grew_ok = growth < GOAL_GROWTH_MB
        print(
            f"\n3. Memory of the recording process (VmRSS), goal: growth < {GOAL_GROWTH_MB:.0f} MB"
        )
        print(
            f"  after {warm:,} steps {run.rss_warm_mb:6.1f} MB, peak {run.rss_peak_mb:6.1f} MB, "
            f"end (after flush) {run.rss_end_mb:6.1f} MB -> growth {growth:+.1f} MB "
            f"{'PASS' if grew_ok else 'MISS'}"
        )
        print(
            f"  writer queue: peak {run.queue_peak:,} of {run.queue_size:,} events; the recorder "
            f"waited {run.waits:,} times for it to drain below half"
        )
        all_ok &= grew_ok and not run.dropped
    # A missed goal is a finding the table reports, not a failure of the run: nox's bench
    # session goes on to the other benchmarks.
    print("\nall goals met" if all_ok else "\nSOME GOALS MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
