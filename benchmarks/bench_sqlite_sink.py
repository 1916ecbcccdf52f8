"""Write throughput of the SQLite backend against a bare insert of the same rows.

Run ``python benchmarks/bench_sqlite_sink.py`` (``--quick`` for a smaller run). Both sides write
the same realistic steps in batches of 500, one transaction per batch, with the same pragmas:

* ``ours``: ``SQLiteBackend.write`` - encoding each step, deduplicating, the steps index and the
  per-session aggregate upserts included;
* ``bare``: ``executemany`` of the very tuples the backend writes, already built, into a table
  with the same columns and no index: the most SQLite can do with these rows.

The target is ours >= 80% of bare. Medians over a few repeats, each into a fresh file.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sqlite3
import statistics
import string
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from agentsession._ids import new_session_id, new_span_id, new_trace_id
from agentsession._models import Step
from agentsession.backends._sqlite import SQLiteBackend
from agentsession.backends._sqlite_schema import STEP_COLUMNS, step_row

BATCH_SIZE = 500
ACTIVE_SESSIONS = 200
STEPS_PER_SESSION = (5, 40)
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


def make_steps(count: int, active_sessions: int = ACTIVE_SESSIONS, seed: int = 7) -> list[Step]:
    """Steps of many interleaved sessions, as an agent server under load would record them."""
    rng = random.Random(seed)

    def words(n: int) -> str:
        return " ".join(
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(n)
        )

    start = datetime(2025, 3, 1, 9, tzinfo=timezone.utc)
    live: dict[str, list[int]] = {}  # session id -> [next step index, steps it will have]
    users = [f"user_{n}" for n in range(50)]
    session_users: dict[str, str] = {}
    steps = []
    for n in range(count):
        while len(live) < active_sessions:
            session_id = new_session_id()
            live[session_id] = [0, rng.randint(*STEPS_PER_SESSION)]
            session_users[session_id] = rng.choice(users)
        session_id = rng.choice(list(live))
        index, length = live[session_id]
        live[session_id][0] += 1
        if index + 1 == length:
            del live[session_id]
        began = start + timedelta(milliseconds=50 * n)
        duration = rng.uniform(200, 3000)
        input_tokens, output_tokens = rng.randint(200, 4000), rng.randint(10, 800)
        steps.append(
            Step(
                session_id=session_id,
                step_index=index,
                step_id=new_span_id(),
                trace_id=new_trace_id(),
                framework="langchain",
                provider="openai",
                model=rng.choice(("gpt-4o-mini", "gpt-4o")),
                started_at=began,
                ended_at=began + timedelta(milliseconds=duration),
                duration_ms=duration,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
                cost_usd=input_tokens * 1.5e-7 + output_tokens * 6e-7,
                state={
                    "goal": words(8),
                    "plan": [words(5) for _ in range(3)],
                    "retrieved_ids": [rng.randrange(10**6) for _ in range(8)],
                    "scratchpad": words(25),
                    "attempt": index,
                },
                input=[{"role": "user", "content": words(12)}],
                output={"role": "assistant", "content": words(10)},
                user_id=session_users[session_id],
            )
        )
    return steps


def batches(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + BATCH_SIZE] for i in range(0, len(items), BATCH_SIZE)]


def bench_ours(steps: list[Step], directory: Path) -> float:
    backend = SQLiteBackend(directory / "ours.db")
    try:
        began = time.perf_counter()
        for batch in batches(steps):
            backend.write(batch)
        elapsed = time.perf_counter() - began
    finally:
        backend.close()
    return len(steps) / elapsed


def backend_rows(steps: list[Step]) -> list[tuple[Any, ...]]:
    """The tuples ``SQLiteBackend.write`` inserts, session keys numbered as it numbers them."""
    keys: dict[str, int] = {}
    return [step_row(keys.setdefault(step.session_id, len(keys) + 1), step) for step in steps]


def bench_bare(rows: list[tuple[Any, ...]], directory: Path) -> float:
    conn = sqlite3.connect(directory / "bare.db", isolation_level=None)
    try:
        for pragma in PRAGMAS:
            conn.execute(pragma)
        columns = ("session_key", *STEP_COLUMNS)
        conn.execute(f"CREATE TABLE steps ({', '.join(columns)})")
        insert = f"INSERT INTO steps VALUES ({', '.join('?' * len(columns))})"
        began = time.perf_counter()
        for batch in batches(rows):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, batch)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - began
    finally:
        conn.close()
    return len(rows) / elapsed


def bench_encoding(steps: list[Step]) -> float:
    began = time.perf_counter()
    backend_rows(steps)
    return len(steps) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument(
        "--sessions", type=int, default=ACTIVE_SESSIONS, help="sessions active at a time"
    )
    parser.add_argument("--dir", type=Path, help="where the database files go (default: temp)")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    count, repeats = (10_000, 3) if quick else (40_000, 5)

    steps = make_steps(count, active_sessions=args.sessions)
    rows = backend_rows(steps)
    # The fixture is ~100 MB of live objects; keep the collector from charging its traversals
    # to whichever side happens to allocate when a full collection comes due.
    gc.collect()
    gc.freeze()
    ours, bare, encoding = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            ours.append(bench_ours(steps, Path(tmp)))
            bare.append(bench_bare(rows, Path(tmp)))
        encoding.append(bench_encoding(steps))
    ours_rate, bare_rate = statistics.median(ours), statistics.median(bare)
    row_bytes = statistics.mean(
        sum(len(v.encode()) if isinstance(v, str) else 8 for v in row if v is not None)
        for row in rows
    )
    print(
        f"{count:,} steps over {len({s.session_id for s in steps}):,} sessions "
        f"({args.sessions} active at a time), batches of {BATCH_SIZE}, ~{row_bytes:.0f}-byte rows, "
        f"SQLite {sqlite3.sqlite_version}, median of {repeats}"
    )
    print(f"  bare executemany    : {bare_rate:>9,.0f} steps/s  (rows prebuilt, no index)")
    print(f"  SQLiteBackend.write : {ours_rate:>9,.0f} steps/s")
    print(f"  ratio               : {ours_rate / bare_rate:>9.0%}  of bare (target >= 80%)")
    print(
        f"  per step            : {1e6 / ours_rate:.1f} us ours, {1e6 / bare_rate:.1f} us bare, "
        f"{1e6 / statistics.median(encoding):.1f} us of ours spent turning a Step into its row"
    )


if __name__ == "__main__":
    main()
