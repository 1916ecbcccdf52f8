"""The processes test_faults_sqlite.py runs: one killed while it writes, and one that breaks its
own filesystem inside a private mount namespace.

Not a test module (pytest collects only ``test_*.py``). Run as
``python fault_child.py kill DB`` or, inside ``unshare --mount``, ``python fault_child.py mount
SCENARIO DIR``; the mount scenarios print one JSON object with what they saw.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import agentsession
from agentsession import SessionTracker, SQLiteBackend, get_stats

KILL_SESSIONS = 40
"""Sessions the killed child records into, round-robin: step k goes to session k % 40."""

KILL_FLUSH_EVERY = 1_000
"""Steps recorded between two flushes (each confirmed with a line ``F <steps so far>``)."""

KILL_PROGRESS_EVERY = 100
"""Steps between two ``R <steps so far>`` lines, printed before those steps are recorded."""

KILL_RUN_S = 60.0
"""The killed child gives up after this long if nobody kills it."""

REOPEN_INTERVAL_S = 0.3
"""How soon the mount scenarios try again a default backend that could not be opened."""

STEP_INPUT = {"messages": [{"role": "user", "content": "x" * 300}]}
BIG_INPUT = {"messages": [{"role": "user", "content": "y" * 6000}]}
"""Larger than a page: a step recorded while the disk is full cannot fit in free space."""


def session_id(number: int) -> str:
    return f"fault-session-{number:03d}"


def kill_target(db_path: str) -> None:
    """Record until killed, printing how many steps each successful flush confirmed."""
    agentsession.configure(backend_url=f"sqlite:///{db_path}")
    trackers = [SessionTracker(session_id(n)) for n in range(KILL_SESSIONS)]
    deadline = time.monotonic() + KILL_RUN_S
    recorded = 0
    while time.monotonic() < deadline:
        if recorded % KILL_PROGRESS_EVERY == 0:
            print(f"R {recorded + KILL_PROGRESS_EVERY}", flush=True)
        tracker = trackers[recorded % KILL_SESSIONS]
        with tracker.begin_step(model="m", input=STEP_INPUT) as step:
            step.end("ok", input_tokens=3, output_tokens=2)
        recorded += 1
        if recorded % KILL_FLUSH_EVERY == 0 and agentsession.flush(10.0):
            print(f"F {recorded}", flush=True)


# -- inside a private mount namespace ---------------------------------------------------------


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True, timeout=10, capture_output=True)


def record(tracker: SessionTracker, steps: int, step_input: object) -> float:
    """Record ``steps`` steps; return the longest any one of them took, in seconds."""
    longest = 0.0
    for _ in range(steps):
        started = time.perf_counter()
        with tracker.begin_step(model="m", input=step_input) as step:
            step.end("ok", input_tokens=3, output_tokens=2)
        longest = max(longest, time.perf_counter() - started)
    return longest


def stored_indexes(db_path: Path, session: str) -> list[int]:
    backend = SQLiteBackend(db_path)
    try:
        return [step.step_index for step in backend.list_steps(session)]
    finally:
        backend.close()


_OPEN_AND_DIE = """
import os, sys
from agentsession import SQLiteBackend
SQLiteBackend(sys.argv[1])
os._exit(0)
"""


def mount_scenario(scenario: str, directory: str) -> dict[str, Any]:
    """Break the filesystem under the default backend, record, mend it, record again."""
    from agentsession import _worker

    _worker.REOPEN_INTERVAL_S = REOPEN_INTERVAL_S  # so that the test need not wait 5 s
    root = Path(directory)
    mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root))
    db_path = root / "store" / "sessions.db"
    if scenario == "ro-existing":
        # A process that died without closing the store left its -wal and -shm files behind,
        # so that on the read-only filesystem the store opens, read-only.
        subprocess.run([sys.executable, "-c", _OPEN_AND_DIE, str(db_path)], check=True, timeout=30)
    if scenario in ("ro-at-start", "ro-existing"):
        mount("-o", "remount,ro", str(root))
    warnings = _Warnings()
    logging.getLogger("agentsession").addHandler(warnings)
    agentsession.configure(backend_url=f"sqlite:///{db_path}")
    tracker = SessionTracker("fault-mount").start()
    filler = root / "filler"
    result: dict[str, Any] = {}
    if scenario == "enospc":
        assert agentsession.flush(10.0)
        try:
            with filler.open("wb") as file:
                while True:
                    file.write(b"\0" * 65536)
                    file.flush()
        except OSError as exc:
            result["filler_error"] = exc.strerror
    if scenario == "ro-overmount":
        assert agentsession.flush(10.0)
        # A read-only mount appears over the directory: the open connection holds the files.
        mount("--bind", str(db_path.parent), str(db_path.parent))
        mount("-o", "remount,bind,ro", str(db_path.parent))
    result["longest_step_s_while_broken"] = record(tracker, 50, BIG_INPUT)
    result["flushed_while_broken"] = agentsession.flush(15.0)
    result["stats_while_broken"] = get_stats()
    if scenario in ("ro-at-start", "ro-existing"):
        mount("-o", "remount,rw", str(root))
    elif scenario == "enospc":
        filler.unlink()
    time.sleep(REOPEN_INTERVAL_S + 0.2)
    result["longest_step_s_after"] = record(tracker, 20, STEP_INPUT)
    tracker.end()
    result["flushed_after"] = agentsession.flush(15.0)
    agentsession.shutdown()
    result["stats"] = get_stats()
    result["warnings"] = warnings.messages
    result["stored"] = stored_indexes(db_path, "fault-mount")
    result["integrity"] = sqlite3.connect(db_path).execute("PRAGMA integrity_check").fetchone()[0]
    return result


def main(argv: list[str]) -> None:
    if argv[0] == "kill":
        kill_target(argv[1])
    elif argv[0] == "mount":
        print(json.dumps(mount_scenario(argv[1], argv[2])), flush=True)
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    os.environ.pop("AGENTSESSION_BACKEND_URL", None)
    main(sys.argv[1:])
