"""The SQLite store under real faults: a writer killed mid-batch, a database locked by another
process, a filesystem that turns read-only, a full disk. The application never notices; what is
lost is counted and warned about once; recording resumes when the fault clears."""

from __future__ import annotations

import json
import logging
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fault_child import KILL_PROGRESS_EVERY, KILL_SESSIONS, session_id

import agentsession
from agentsession import SessionTracker, SQLiteBackend, _worker, get_stats

CHILD = Path(__file__).with_name("fault_child.py")
STEP_INPUT = {"messages": [{"role": "user", "content": "x" * 300}]}
RECORD_BUDGET_S = 0.05
"""The longest one recorded step may take on the application's thread while the store fails."""

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="Linux signals and mounts")


def _child_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSESSION_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHILD.parent), *sys.path]))
    return environment


def _record(tracker: SessionTracker, steps: int) -> float:
    """Record ``steps`` steps; return the longest any one of them took, in seconds."""
    longest = 0.0
    for _ in range(steps):
        started = time.perf_counter()
        with tracker.begin_step(model="m", input=STEP_INPUT) as step:
            step.end("ok", input_tokens=3, output_tokens=2)
        longest = max(longest, time.perf_counter() - started)
    return longest


def _stored_indexes(path: Path, session: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT step_index FROM steps JOIN sessions USING (session_key)"
            " WHERE session_id = ? ORDER BY step_index",
            (session,),
        ).fetchall()
    return [index for (index,) in rows]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "agentsession" and r.levelno >= logging.WARNING
    ]


# -- killed while writing ---------------------------------------------------------------------


def _schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall())


@linux_only
@pytest.mark.parametrize("attempt", range(3))
def test_a_writer_killed_mid_batch_loses_no_confirmed_step(tmp_path: Path, attempt: int) -> None:
    """SIGKILL at a random moment of heavy writing: the file is intact and holds every step a
    flush() had confirmed, each session gap-free from 0, and none that was never recorded."""
    db_path = tmp_path / "killed.db"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "kill", str(db_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=_child_environment(),
    )
    assert child.stdout is not None
    confirmed = recorded_at_least = 0
    try:
        for line in child.stdout:
            kind, steps = line.split()
            if kind == "R":
                recorded_at_least = int(steps) - KILL_PROGRESS_EVERY
            elif kind == "F":
                confirmed = int(steps)
                if confirmed >= 2_000 + 1_000 * attempt:
                    # Into the writing of the next thousand steps (several batches of 500).
                    time.sleep(random.uniform(0.0, 0.15))
                    break
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    for line in rest.splitlines():
        kind, steps = line.split()
        if kind == "R":
            recorded_at_least = int(steps) - KILL_PROGRESS_EVERY
    recorded_at_most = recorded_at_least + KILL_PROGRESS_EVERY
    assert confirmed >= 2_000

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        totals = conn.execute(
            "SELECT session_id, total_steps, (SELECT count(*) FROM steps AS t"
            " WHERE t.session_key = s.session_key) FROM sessions AS s"
        ).fetchall()
    fresh = tmp_path / "fresh.db"
    SQLiteBackend(fresh).close()
    assert _schema(db_path) == _schema(fresh)
    # Each batch is one transaction: a session's totals always match its stored steps.
    assert all(total == stored for _, total, stored in totals)

    backend = SQLiteBackend(db_path)  # opens, as an application restarting would
    try:
        stored = 0
        for number in range(KILL_SESSIONS):
            indexes = [s.step_index for s in backend.list_steps(session_id(number))]
            assert indexes == list(range(len(indexes))), "a gap in a session"
            confirmed_here = len(range(number, confirmed, KILL_SESSIONS))
            assert len(indexes) >= confirmed_here, "a step flush() had confirmed is missing"
            stored += len(indexes)
    finally:
        backend.close()
    assert confirmed <= stored <= recorded_at_most


# -- locked by another process ----------------------------------------------------------------

_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


@contextmanager
def _locked_by_another_process(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the database's write lock (BEGIN EXCLUSIVE) for ``seconds``."""
    locker = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert locker.stdout is not None
    try:
        ready, _, _ = select.select([locker.stdout], [], [], 10.0)
        assert ready
        assert locker.stdout.readline() == "locked\n"
        yield locker
        assert locker.wait(seconds + 10.0) == 0
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait(10)


def test_a_database_locked_for_5_s_delays_the_writes_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Default settings (5 s busy timeout, then retries): the application records at full speed
    while another process holds the lock, and every step is stored once it lets go."""
    db_path = tmp_path / "locked.db"
    agentsession.set_default_backend(SQLiteBackend(db_path))
    tracker = SessionTracker("fault-locked").start()
    assert agentsession.flush(5.0)
    recorded = 0
    longest = 0.0
    with _locked_by_another_process(db_path, 5.0) as locker:
        started = time.monotonic()
        while time.monotonic() - started < 4.0:
            longest = max(longest, _record(tracker, 10))
            recorded += 10
            time.sleep(0.05)
        assert locker.poll() is None
        assert _stored_indexes(db_path, "fault-locked") == []  # the lock did hold them back
    assert longest < RECORD_BUDGET_S
    assert agentsession.flush(20.0)
    assert _stored_indexes(db_path, "fault-locked") == list(range(recorded))
    _record(tracker, 5)
    assert agentsession.flush(5.0)
    assert _stored_indexes(db_path, "fault-locked") == list(range(recorded + 5))
    assert "dropped.backend_error" not in get_stats()
    assert _warnings(caplog) == []


def test_a_lock_held_past_every_retry_drops_counts_warns_once_and_recording_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock outlasting the whole retry window (5 x 0.25 s busy timeout + 3.8 s of backoff):
    the batches it blocks are dropped and counted with one warning; the rest is stored."""
    db_path = tmp_path / "locked-long.db"
    agentsession.set_default_backend(SQLiteBackend(db_path, busy_timeout_s=0.25))
    tracker = SessionTracker("fault-locked-long").start()
    assert agentsession.flush(5.0)
    recorded = 0
    longest = 0.0
    with _locked_by_another_process(db_path, 6.5):
        started = time.monotonic()
        while time.monotonic() - started < 5.5:
            longest = max(longest, _record(tracker, 10))
            recorded += 10
            time.sleep(0.05)
    assert longest < RECORD_BUDGET_S
    assert agentsession.flush(20.0)
    stored = _stored_indexes(db_path, "fault-locked-long")
    dropped = get_stats()["dropped.backend_error"]
    assert dropped > 0
    assert len(stored) + dropped == recorded
    assert set(stored) <= set(range(recorded))
    (warning,) = _warnings(caplog)
    assert "database is locked" in warning
    _record(tracker, 5)
    assert agentsession.flush(5.0)
    assert _stored_indexes(db_path, "fault-locked-long")[-5:] == list(range(recorded, recorded + 5))
    assert get_stats()["dropped.backend_error"] == dropped
    assert len(_warnings(caplog)) == 1


# -- a full disk --------------------------------------------------------------------------------

BIG_INPUT = {"messages": [{"role": "user", "content": "y" * 6000}]}
"""Larger than a page: every step needs new pages, so none fits in free space."""


def _set_max_page_count(backend: SQLiteBackend, pages: int | None) -> None:
    """Cap the file at ``pages`` pages (None: its current size) on the writer's connection."""
    with backend._write_lock:  # the writer thread uses this connection
        conn = backend._writer
        assert conn is not None
        if pages is None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_database_drops_counts_warns_once_and_recording_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLITE_FULL (max_page_count reached): retried, dropped with a count and one warning;
    once there is room again the next steps are stored."""
    db_path = tmp_path / "full.db"
    backend = SQLiteBackend(db_path)
    agentsession.set_default_backend(backend)
    tracker = SessionTracker("fault-full").start()
    _record(tracker, 5)
    assert agentsession.flush(5.0)
    _set_max_page_count(backend, None)

    longest = 0.0
    for _ in range(30):
        started = time.perf_counter()
        with tracker.begin_step(model="m", input=BIG_INPUT) as step:
            step.end("ok")
        longest = max(longest, time.perf_counter() - started)
    assert longest < RECORD_BUDGET_S
    assert agentsession.flush(20.0)
    stats = get_stats()
    assert stats["dropped.backend_error"] == 30
    assert stats["retries.backend_write"] >= 4
    (warning,) = _warnings(caplog)
    assert "full" in warning

    _set_max_page_count(backend, 1_073_741_823)
    _record(tracker, 5)
    assert agentsession.flush(5.0)
    assert _stored_indexes(db_path, "fault-full") == [0, 1, 2, 3, 4, 35, 36, 37, 38, 39]
    assert get_stats()["dropped.backend_error"] == 30
    assert len(_warnings(caplog)) == 1


# -- a default store that cannot be opened ------------------------------------------------------


def test_a_default_store_that_cannot_be_opened_is_tried_again_until_it_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A file stands where the store's directory should be: steps are dropped and counted,
    one warning; once it is gone the writer opens the store (never on the caller's thread)."""
    monkeypatch.setattr(_worker, "REOPEN_INTERVAL_S", 0.2)
    blocker = tmp_path / "store"
    blocker.write_text("not a directory")
    db_path = blocker / "sessions.db"
    agentsession.configure(backend_url=f"sqlite:///{db_path}")
    agentsession.set_default_backend(None)
    tracker = SessionTracker("fault-unopened").start()
    assert _record(tracker, 10) < RECORD_BUDGET_S
    assert agentsession.flush(5.0)
    blocker.unlink()
    time.sleep(0.3)
    assert _record(tracker, 5) < RECORD_BUDGET_S
    assert agentsession.flush(5.0)
    assert _stored_indexes(db_path, "fault-unopened") == [10, 11, 12, 13, 14]
    stats = get_stats()
    assert stats["dropped.backend_unavailable"] == 11  # the session start and 10 steps
    assert stats["written.events"] == 5
    (warning,) = _warnings(caplog)
    assert "cannot open backend" in warning


def test_a_backend_url_that_is_wrong_is_not_tried_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A mistake no waiting mends (an unknown scheme) is reported once and never retried."""
    monkeypatch.setattr(_worker, "REOPEN_INTERVAL_S", 0.0)
    agentsession.configure(backend_url="nosuchscheme://x")
    agentsession.set_default_backend(None)
    tracker = SessionTracker("fault-bad-url").start()
    for _ in range(3):
        _record(tracker, 2)
        assert agentsession.flush(5.0)
    assert get_stats()["faults.backend.open"] == 1
    assert get_stats()["dropped.backend_unavailable"] == 7
    (warning,) = _warnings(caplog)
    assert "unknown backend URL scheme" in warning


# -- read-only and full filesystems, in a private mount namespace -----------------------------


def _namespace_command() -> list[str] | None:
    """How to run a process in its own mount namespace here, or None if it cannot be done."""
    unshare = shutil.which("unshare")
    if unshare is None or sys.platform != "linux":
        return None
    command = [unshare, "--mount"] if os.geteuid() == 0 else [
        unshare, "--user", "--map-root-user", "--mount"
    ]  # fmt: skip
    probe = subprocess.run(
        [*command, "mount", "-t", "tmpfs", "tmpfs", "/mnt"], capture_output=True, timeout=10
    )
    return command if probe.returncode == 0 else None


NAMESPACE = _namespace_command()
needs_namespace = pytest.mark.skipif(
    NAMESPACE is None, reason="needs Linux and unshare allowed to mount a tmpfs"
)


def _in_namespace(scenario: str, tmp_path: Path) -> dict[str, Any]:
    assert NAMESPACE is not None
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    result = subprocess.run(
        [*NAMESPACE, sys.executable, str(CHILD), "mount", scenario, str(mount_point)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_environment(),
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    assert outcome["integrity"] == "ok"
    assert outcome["flushed_while_broken"]
    assert outcome["flushed_after"]
    assert outcome["longest_step_s_while_broken"] < RECORD_BUDGET_S
    assert outcome["longest_step_s_after"] < RECORD_BUDGET_S
    return outcome


@needs_namespace
def test_a_read_only_filesystem_at_startup_drops_then_the_store_opens_once_writable(
    tmp_path: Path,
) -> None:
    """The store's directory cannot be created: steps are dropped and counted, one warning;
    once the filesystem is writable the writer opens the store and records on."""
    outcome = _in_namespace("ro-at-start", tmp_path)
    broken = outcome["stats_while_broken"]
    assert broken["dropped.backend_unavailable"] == 51  # the session start and 50 steps
    assert "written.events" not in broken
    (warning,) = outcome["warnings"]
    assert "cannot open backend" in warning
    assert outcome["stored"] == list(range(50, 70))
    assert outcome["stats"]["dropped.backend_unavailable"] == 51


@needs_namespace
def test_a_store_opened_read_only_is_reconnected_once_writable(tmp_path: Path) -> None:
    """The file exists on a read-only filesystem, so SQLite opens it read-only: writes fail, are
    retried, dropped, counted and warned about once; after the remount the writer reconnects
    (the read-only connection would fail forever) and records on."""
    outcome = _in_namespace("ro-existing", tmp_path)
    broken = outcome["stats_while_broken"]
    assert "faults.backend.open" not in broken
    assert broken["dropped.backend_error"] == 51  # the session start and 50 steps
    assert broken["retries.backend_write"] == 4
    (warning,) = outcome["warnings"]
    assert "readonly database" in warning
    assert outcome["stored"] == list(range(50, 70))
    assert outcome["stats"]["dropped.backend_error"] == 51


@needs_namespace
def test_a_read_only_mount_over_the_directory_does_not_stop_the_open_store(
    tmp_path: Path,
) -> None:
    """Linux refuses to remount a filesystem read-only while files on it are open for writing;
    a read-only mount laid over the directory leaves the open store writing where it was."""
    outcome = _in_namespace("ro-overmount", tmp_path)
    assert "dropped.backend_error" not in outcome["stats"]
    assert outcome["warnings"] == []
    assert outcome["stored"] == list(range(70))


@needs_namespace
def test_a_full_filesystem_drops_counts_warns_once_and_recording_resumes(tmp_path: Path) -> None:
    """ENOSPC on a tiny tmpfs: dropped, counted, one warning; freeing space lets it record on."""
    outcome = _in_namespace("enospc", tmp_path)
    assert outcome["filler_error"] == "No space left on device"
    broken = outcome["stats_while_broken"]
    assert broken["dropped.backend_error"] > 0
    assert len(outcome["stored"]) + broken["dropped.backend_error"] == 70
    assert outcome["stored"][-20:] == list(range(50, 70))
    assert len(outcome["warnings"]) == 1
    assert "full" in outcome["warnings"][0]
