"""Caller-thread cost of recording one step, against a bare function call, in one run.

Records ``begin_step`` + ``end`` with a 1 KB state into a SQLite file through the background
writer (the default set-up) and reports the median per-step cost on the caller's thread.
Target: at most 10 us median per step.

    python benchmarks/bench_record_step.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import agentsession
from agentsession import SessionTracker, SQLiteBackend

TARGET_US = 10.0


def timed_calls_us(fn: Callable[[], object], calls: int) -> tuple[list[float], float]:
    """Each call timed on its own (so GIL hand-offs to the writer show as outliers, not as the
    median), and the wall time per call of the whole round (which includes them)."""
    clock = time.perf_counter_ns
    samples = []
    start = clock()
    for _ in range(calls):
        before = clock()
        fn()
        samples.append((clock() - before) / 1000)
    return samples, (clock() - start) / calls / 1000


def bare_call() -> None:
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for CI smoke runs")
    args = parser.parse_args()
    repeats, calls = (5, 1_000) if args.quick else (25, 2_000)

    with tempfile.TemporaryDirectory() as tmp:
        backend = SQLiteBackend(Path(tmp) / "bench.db")
        tracker = SessionTracker("bench-record-step-0001", backend=backend)
        tracker.update_state({"user_query": "Book a flight to Paris", "notes": "x" * 960})
        assert 1000 <= tracker._state.snapshot.size <= 1100, tracker._state.snapshot.size
        messages = [{"role": "user", "content": "Book a flight to Paris"}]

        def record_step() -> None:
            step = tracker.begin_step(model="gpt-4o-mini", framework="bench", input=messages)
            step.end("ok", input_tokens=12, output_tokens=3)

        bare: list[float] = []
        ours: list[float] = []
        ours_wall: list[float] = []
        for _ in range(repeats):
            bare.extend(timed_calls_us(bare_call, calls)[0])
            samples, wall = timed_calls_us(record_step, calls)
            ours.extend(samples)
            ours_wall.append(wall)
            agentsession.flush()  # the writer catches up between rounds, outside the timing
        agentsession.shutdown()
        stats = agentsession.get_stats()
        written = backend_steps(Path(tmp) / "bench.db")

    bare_us, ours_us = statistics.median(bare), statistics.median(ours)
    p99 = statistics.quantiles(ours, n=100)[98]
    print(f"{repeats * calls} calls each; per-call times include the timer itself")
    print(f"bare function call          median {bare_us:7.3f} us")
    print(f"begin_step + end, 1 KB state median {ours_us:7.3f} us   p99 {p99:7.3f} us")
    print(f"ratio to the bare call              {ours_us / bare_us:7.1f}x")
    print(
        f"back-to-back steps, wall per step   {statistics.median(ours_wall):7.3f} us "
        "(includes the writer thread's share of the GIL)"
    )
    verdict = "met" if ours_us <= TARGET_US else "MISSED"
    print(f"target: median <= {TARGET_US:.0f} us on the caller's thread -> {verdict}")
    print(
        f"steps in SQLite after flush: {written} of {repeats * calls} "
        f"(dropped, queue full: {stats.get('dropped.queue_full', 0)})"
    )
    return 0


def backend_steps(path: Path) -> int:
    reader = SQLiteBackend(path)
    try:
        summary = reader.get_session("bench-record-step-0001")
        return 0 if summary is None else summary.total_steps
    finally:
        reader.close()


if __name__ == "__main__":
    sys.exit(main())
