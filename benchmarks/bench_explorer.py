"""Explorer answer times: the sessions list over 100,000 sessions and a session of 10,000 steps.

Run ``python benchmarks/bench_explorer.py`` (``--quick`` for 10,000 sessions and 2,000 steps).
The store is generated straight into SQLite through ``SQLiteBackend.write`` in big batches and
kept in the temp directory, so later runs start at once (``--rebuild`` makes it again). The
explorer runs under uvicorn on 127.0.0.1 and is asked over HTTP with a keep-alive client, as the
web page asks it; each request is timed from send to the last byte of the body.

Target: every endpoint's median under 200 ms. The baseline, measured in the same run, is the
same session read through the generic reader path (a ``Step`` model per step, as any backend
gives them), against the SQLite backend's JSON-text path the explorer uses.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from agentsession import (
    Score,
    SessionEnded,
    SessionEvent,
    SessionStarted,
    SQLiteBackend,
    Step,
    ToolCall,
)
from agentsession.explorer import create_explorer_app
from agentsession.explorer._documents import session_document, timeline_document

TARGET_MS = 200.0
BATCH_EVENTS = 20_000
BIG_SESSION = "big-session"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
_STATUSES = ("completed", "completed", "completed", "failed", "cancelled")


def listed_session_events(count: int, seed: int = 11) -> Iterator[SessionEvent]:
    """Sessions of 1-4 steps, 1,000 users, a few tags, scores on a fifth, a tenth unfinished."""
    rng = random.Random(seed)
    for n in range(count):
        session_id = f"sess-{n:07d}-{rng.getrandbits(32):08x}"
        start = T0 + timedelta(seconds=30 * n)
        user = f"user-{rng.randrange(1000)}"
        yield SessionStarted(
            session_id=session_id,
            started_at=start,
            user_id=user,
            tags=tuple(rng.sample(("prod", "eval", "beta", "mobile"), rng.randint(0, 2))),
            environment="prod",
        )
        for index in range(rng.randint(1, 4)):
            began = start + timedelta(seconds=2 * index)
            yield Step(
                session_id=session_id,
                step_index=index,
                step_id=f"{n:x}-{index}",
                trace_id=f"{n:024x}{index:08x}",
                started_at=began,
                ended_at=began + timedelta(milliseconds=800),
                duration_ms=800.0,
                model=rng.choice(("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet")),
                input_tokens=200,
                output_tokens=50,
                total_tokens=250,
                cost_usd=0.0004,
                user_id=user,
                state={"turn": index},
            )
        if n % 10:
            yield SessionEnded(
                session_id=session_id,
                ended_at=start + timedelta(seconds=10),
                status=rng.choice(_STATUSES),  # type: ignore[arg-type]
            )
        if n % 5 == 0:
            yield Score(session_id=session_id, name="quality", value=rng.random(), created_at=start)


def big_session_events(steps: int) -> Iterator[SessionEvent]:
    """One long agent run: realistic messages, a state that changes, sub-agent nesting."""
    start = T0 - timedelta(days=1)
    yield SessionStarted(session_id=BIG_SESSION, started_at=start, user_id="alice", tags=("long",))
    state: dict[str, Any] = {"goal": "plan a week in Paris", "plan": ["flights", "hotel"]}
    for index in range(steps):
        began = start + timedelta(seconds=3 * index)
        state = {**state, "turn": index, "results": index % 7}
        if index % 50 == 0:
            state["notes"] = [f"note {index}"] * 3
        parent = None if index % 10 == 0 else f"{BIG_SESSION}-{index - index % 10}"
        yield Step(
            session_id=BIG_SESSION,
            step_index=index,
            step_id=f"span-{index}",
            trace_id=f"{BIG_SESSION}-{index}",
            parent_trace_id=parent,
            started_at=began,
            ended_at=began + timedelta(milliseconds=1200),
            duration_ms=1200.0,
            model="gpt-4o-mini",
            input_tokens=420,
            output_tokens=80,
            total_tokens=500,
            cost_usd=0.00011,
            state=dict(state),
            input=[
                {"role": "system", "content": "You are a travel agent. Be brief."},
                {"role": "user", "content": f"Step {index}: what next for the Paris trip?"},
            ],
            output={"role": "assistant", "content": f"Next I will look at option {index % 7}."},
            tool_calls=(
                (ToolCall(name="search", input={"q": "paris hotels"}, output={"hits": 3}),)
                if index % 4 == 0
                else ()
            ),
        )
    yield SessionEnded(
        session_id=BIG_SESSION,
        ended_at=start + timedelta(seconds=3 * steps + 2),
        status="completed",
    )


def build(path: Path, sessions: int, steps: int) -> None:
    path.unlink(missing_ok=True)
    backend = SQLiteBackend(path)
    batch: list[SessionEvent] = []
    began = time.perf_counter()
    for event in (*listed_session_events(sessions), *big_session_events(steps)):
        batch.append(event)
        if len(batch) >= BATCH_EVENTS:
            backend.write(batch)
            batch = []
    backend.write(batch)
    backend.flush()
    backend.close()
    print(f"built {path} in {time.perf_counter() - began:.1f} s")


def store(sessions: int, steps: int, rebuild: bool) -> Path:
    """The cached store for this size, built when missing or not complete."""
    folder = Path(tempfile.gettempdir()) / "agentsession-bench-explorer"
    folder.mkdir(exist_ok=True)
    path = folder / f"sessions-{sessions}-steps-{steps}.db"
    if not rebuild and path.exists():
        backend = SQLiteBackend(path)
        complete = (
            backend.list_sessions(limit=1).total == sessions + 1
            and (summary := backend.get_session(BIG_SESSION)) is not None
            and summary.total_steps == steps
        )
        backend.close()
        if complete:
            print(f"using the cached store {path}")
            return path
    build(path, sessions, steps)
    return path


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    listener = socket.socket()
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as agentsession serve does
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    action()  # warm: page cache, connection, imports
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return times


def report(name: str, times: list[float], size: int | None = None) -> bool:
    median = statistics.median(times)
    worst = max(times)
    ok = median < TARGET_MS
    extra = f"  {size / 1e6:5.1f} MB" if size is not None else ""
    print(
        f"  {name:<44} median {median:7.1f} ms  max {worst:7.1f} ms"
        f"  {'ok' if ok else 'OVER'} (< {TARGET_MS:.0f} ms){extra}"
    )
    return ok


def _getter(
    client: httpx.Client, path: str, params: dict[str, str], sizes: list[int]
) -> Callable[[], None]:
    def get() -> None:
        response = client.get(path, params=params)
        response.raise_for_status()
        sizes.append(len(response.content))

    return get


class _ModelsOnly:
    """The backend seen through the SessionReader protocol only: a Step per step."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self.get_session = backend.get_session
        self.list_sessions = backend.list_sessions
        self.list_steps = backend.list_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 sessions, 2,000 steps")
    parser.add_argument("--rebuild", action="store_true", help="generate the store again")
    parser.add_argument("--repeats", type=int, default=15, help="timed requests per endpoint")
    args = parser.parse_args()
    sessions, steps = (10_000, 2_000) if args.quick else (100_000, 10_000)
    path = store(sessions, steps, args.rebuild)
    backend = SQLiteBackend(path)
    all_ok = True
    with serving(create_explorer_app(backend)) as url, httpx.Client(base_url=url) as client:
        first = client.get("/api/sessions", params={"limit": 50}).json()
        cursor = first["next_cursor"]
        for _ in range(20):  # a page about a thousand sessions down
            cursor = client.get("/api/sessions", params={"limit": 50, "cursor": cursor}).json()[
                "next_cursor"
            ]
        print(f"\n{sessions + 1:,} sessions; one of {steps:,} steps. Over HTTP on 127.0.0.1:")
        requests = {
            "GET /api/sessions (first page of 50)": ("/api/sessions", {}),
            "GET /api/sessions?cursor= (page 21)": ("/api/sessions", {"cursor": cursor}),
            "GET /api/sessions?user_id=": ("/api/sessions", {"user_id": "user-7"}),
            "GET /api/sessions?status=in_progress": ("/api/sessions", {"status": "in_progress"}),
            "GET /api/sessions?tag=eval&status=failed": (
                "/api/sessions",
                {"tag": "eval", "status": "failed"},
            ),
            "GET /api/sessions?q=sess-00421": ("/api/sessions", {"q": "sess-00421"}),
            "GET /api/sessions?score_name=quality&min_score=0.9": (
                "/api/sessions",
                {"score_name": "quality", "min_score": "0.9"},
            ),
            f"GET /api/sessions/{BIG_SESSION}": (f"/api/sessions/{BIG_SESSION}", {}),
            f"GET /api/sessions/{BIG_SESSION}/timeline": (
                f"/api/sessions/{BIG_SESSION}/timeline",
                {},
            ),
        }
        for name, (path_, params) in requests.items():
            sizes: list[int] = []
            all_ok &= report(
                name, timed(_getter(client, path_, params, sizes), args.repeats), sizes[-1]
            )
        check = json.loads(client.get(f"/api/sessions/{BIG_SESSION}/timeline").content)
        assert len(check["timeline"]) == steps

    summary = backend.get_session(BIG_SESSION)
    assert summary is not None
    generic = _ModelsOnly(backend)
    print(f"\nThe {steps:,}-step session built in-process: JSON text (ours) vs Step models:")
    for name, build_document in (("session", session_document), ("timeline", timeline_document)):
        ours = statistics.median(timed(partial(build_document, backend, summary), 5))
        baseline = statistics.median(timed(partial(build_document, generic, summary), 5))
        print(
            f"  {name:<9} ours {ours:7.1f} ms  baseline {baseline:7.1f} ms"
            f"  ratio {baseline / ours:4.1f}x faster"
        )
    backend.close()
    print("\nall under target" if all_ok else "\nSOME OVER TARGET")


if __name__ == "__main__":
    main()
