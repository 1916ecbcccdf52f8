"""The timing loop the per-call benchmarks share (imported by scripts run from this folder)."""

from __future__ import annotations

import time
from collections.abc import Callable


def per_call_us(fn: Callable[[], object], calls: int) -> list[float]:
    """Call ``fn`` ``calls`` times; each call's wall time in microseconds, timer included."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        before = clock()
        fn()
        samples.append((clock() - before) / 1000)
    return samples
