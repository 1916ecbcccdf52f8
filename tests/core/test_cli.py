"""The agentsession command line (agentsession._cli), run as a subprocess against SQLite files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agentsession._models import SessionEnded, SessionEvent, SessionStarted, Step, ToolCall
from agentsession.backends._sqlite import SQLiteBackend

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
FIRST = "0190a1b2-0000-7000-8000-000000000001"
SECOND = "0190a1b2-0000-7000-8000-000000000002"
THIRD = "user_7_conv_2"
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"]


def make_step(session_id: str, index: int, start_s: float, **fields: Any) -> Step:
    return Step(
        session_id=session_id,
        step_index=index,
        step_id=f"{session_id}-step-{index}",
        trace_id=f"{session_id}-trace-{index}",
        started_at=T0 + timedelta(seconds=start_s),
        ended_at=T0 + timedelta(seconds=start_s + 1),
        duration_ms=1000,
        **fields,
    )


def sample_events() -> list[SessionEvent]:
    """Three sessions: two alice's (one still running), one of bob's that failed."""
    first_steps = [
        make_step(FIRST, 0, 0, model=MODELS[0], total_tokens=100, state={"query": "hi"}),
        make_step(
            FIRST,
            1,
            1,
            model=MODELS[1],
            total_tokens=50,
            parent_trace_id=f"{FIRST}-trace-0",
            state={"query": "hi", "plan": [1]},
            tool_calls=(ToolCall(name="search_web", duration_ms=120),),
        ),
        make_step(FIRST, 2, 2, model=MODELS[2], total_tokens=25, state={"plan": [1, 2]}),
    ]
    later = T0 + timedelta(hours=1)
    return [
        SessionStarted(session_id=FIRST, started_at=T0, user_id="alice", tags=("prod",)),
        *first_steps,
        SessionEnded(session_id=FIRST, ended_at=T0 + timedelta(seconds=4), status="completed"),
        SessionStarted(session_id=SECOND, started_at=later, user_id="bob", tags=("beta",)),
        make_step(SECOND, 0, 3600, model=MODELS[0], status="failed", error="RateLimitError"),
        SessionEnded(session_id=SECOND, ended_at=later + timedelta(seconds=2), status="failed"),
        SessionStarted(session_id=THIRD, started_at=T0 + timedelta(hours=2), user_id="alice"),
    ]


def record(path: Path, events: Sequence[SessionEvent]) -> Path:
    backend = SQLiteBackend(path)
    try:
        backend.write(events)
        backend.flush()
    finally:
        backend.close()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return record(tmp_path / "sessions.db", sample_events())


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m agentsession ARGS`` with no AGENTSESSION_* variables but those in ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSESSION_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agentsession", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def listed_ids(db: Path, *args: str) -> list[str]:
    result = run("--backend", url(db), "sessions", "list", "--json", *args, cwd=db.parent)
    assert result.returncode == 0, result.stderr
    return [s["session_id"] for s in json.loads(result.stdout)["sessions"]]


def test_list_shows_every_session_newest_first(db: Path) -> None:
    """The table has a row per session, newest first, and no colour codes in a pipe."""
    result = run("--backend", url(db), "sessions", "list", cwd=db.parent)

    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert [row.split()[0] for row in rows[1:4]] == [THIRD, SECOND, FIRST]
    assert rows[2].split()[1:4] == ["bob", "failed", "1"]
    assert "3 of 3 sessions" in result.stdout
    assert "\x1b" not in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), [THIRD, SECOND, FIRST]),
        (("--user-id", "alice"), [THIRD, FIRST]),
        (("--status", "failed"), [SECOND]),
        (("--tag", "beta"), [SECOND]),
        (("--since", "2024-05-01T12:30:00Z"), [THIRD, SECOND]),
        (("--until", "2024-05-01T12:30:00+00:00"), [FIRST]),
        (("--since", "2024-05-01T13:00", "--until", "2024-05-01T14:00"), [SECOND]),
        (("--q", "0190a1b2"), [SECOND, FIRST]),
        (("--user-id", "alice", "--status", "in_progress"), [THIRD]),
    ],
)
def test_list_filters(db: Path, args: tuple[str, ...], expected: list[str]) -> None:
    """Each filter option narrows the JSON listing to the matching sessions."""
    assert listed_ids(db, *args) == expected


def test_list_pages_with_limit_and_cursor(db: Path) -> None:
    """--limit cuts a page and --cursor with the printed cursor continues after it."""
    first = run("--backend", url(db), "sessions", "list", "--json", "--limit", "2", cwd=db.parent)
    page = json.loads(first.stdout)
    assert [s["session_id"] for s in page["sessions"]] == [THIRD, SECOND]
    assert page["total"] == 3
    assert page["next_cursor"]

    rest = listed_ids(db, "--limit", "2", "--cursor", page["next_cursor"])
    assert rest == [FIRST]


def test_list_text_prints_the_cursor_of_the_next_page(db: Path) -> None:
    """The table ends with the --cursor to pass for the next page."""
    result = run("--backend", url(db), "sessions", "list", "--limit", "1", cwd=db.parent)

    cursor = result.stdout.splitlines()[-1].removeprefix("next page: --cursor ")
    assert listed_ids(db, "--limit", "1", "--cursor", cursor) == [SECOND]


def test_show_prints_the_timeline(db: Path) -> None:
    """show prints the summary, then each step's index, model and state diff."""
    result = run("--backend", url(db), "sessions", "show", FIRST, cwd=db.parent)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["session", FIRST]
    step_lines = [line.split() for line in lines if "|" in line]
    assert [words[0] for words in step_lines] == ["0", "1", "2"]
    for words, model in zip(step_lines, MODELS, strict=True):
        assert model in words
    states = [line.split()[1:] for line in lines if line.split()[:1] == ["state"]]
    assert states == [["+query"], ["query", "+plan"], ["~plan", "-query"]]
    assert any(line.split()[:2] == ["tool", "search_web"] for line in lines)


def test_show_json_matches_what_was_stored(db: Path) -> None:
    """show --json prints the stored summary and steps."""
    result = run("--backend", url(db), "sessions", "show", SECOND, "--json", cwd=db.parent)

    assert json.loads(result.stdout) == stored_document(db, SECOND)


def test_a_unique_prefix_names_a_session(db: Path) -> None:
    """A prefix only one session id has selects that session; an ambiguous one is refused."""
    unique = run("--backend", url(db), "sessions", "show", "user_7", "--json", cwd=db.parent)
    ambiguous = run("--backend", url(db), "sessions", "show", "0190a1b2", cwd=db.parent)

    assert unique.returncode == 0, unique.stderr
    assert json.loads(unique.stdout)["session"]["session_id"] == THIRD
    assert ambiguous.returncode == 1
    assert FIRST in ambiguous.stderr
    assert SECOND in ambiguous.stderr


def stored_document(db: Path, session_id: str) -> dict[str, Any]:
    backend = SQLiteBackend(db)
    try:
        summary = backend.get_session(session_id)
        assert summary is not None
        steps = backend.list_steps(session_id)
    finally:
        backend.close()
    return {
        "session": summary.model_dump(mode="json"),
        "steps": [step.model_dump(mode="json") for step in steps],
    }


def test_export_json_to_stdout(db: Path) -> None:
    """export --format json prints {"session": ..., "steps": [...]} as stored."""
    result = run(
        "--backend", url(db), "sessions", "export", FIRST, "--format", "json", cwd=db.parent
    )

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document == stored_document(db, FIRST)
    assert [s["step_index"] for s in document["steps"]] == [0, 1, 2]


def test_export_jsonl_to_a_file(db: Path) -> None:
    """export --format jsonl --output writes a session line, then one line per step."""
    out = db.parent / "export.jsonl"
    result = run(
        "--backend",
        url(db),
        "sessions",
        "export",
        FIRST,
        "--format",
        "jsonl",
        "--output",
        str(out),
        cwd=db.parent,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r.pop("type") for r in records] == ["session", "step", "step", "step"]
    expected = stored_document(db, FIRST)
    assert records[0] == expected["session"]
    assert records[1:] == expected["steps"]


@pytest.mark.parametrize("command", ["show", "export"])
def test_unknown_session_exits_1(db: Path, command: str) -> None:
    """An id no session has (nor starts with) exits 1 naming it on stderr."""
    result = run("--backend", url(db), "sessions", command, "no-such-session", cwd=db.parent)

    assert result.returncode == 1
    assert "no-such-session" in result.stderr
    assert result.stdout == ""


def test_missing_database_exits_2_without_creating_it(tmp_path: Path) -> None:
    """Listing a database that does not exist fails clearly and creates nothing."""
    missing = tmp_path / "nowhere" / "sessions.db"
    result = run("--backend", url(missing), "sessions", "list", cwd=tmp_path)

    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert not missing.parent.exists()


def test_default_database_is_not_created_by_reading(tmp_path: Path) -> None:
    """With no backend configured, the default relative database is looked for, not created."""
    result = run("sessions", "list", cwd=tmp_path)

    assert result.returncode == 2
    assert ".agentsession" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_environment_variable_names_the_backend(db: Path) -> None:
    """AGENTSESSION_BACKEND_URL is used when no --backend is given."""
    result = run(
        "sessions", "list", "--json", cwd=db.parent, env={"AGENTSESSION_BACKEND_URL": url(db)}
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 3


def test_relative_sqlite_url_is_under_the_working_directory(db: Path) -> None:
    """sqlite://name.db reads name.db in the current directory."""
    result = run("--backend", f"sqlite://{db.name}", "sessions", "list", "--json", cwd=db.parent)

    assert json.loads(result.stdout)["total"] == 3


@pytest.mark.parametrize("position", ["global", "after-command"])
def test_backend_option_wins_over_the_environment(db: Path, position: str) -> None:
    """--backend, before or after the sub-command, beats AGENTSESSION_BACKEND_URL."""
    other = record(db.parent / "other.db", sample_events()[-1:])
    args = ["sessions", "list", "--json"]
    if position == "global":
        args = ["--backend", url(other), *args]
    else:
        args = [*args, "--backend", url(other)]

    result = run(*args, cwd=db.parent, env={"AGENTSESSION_BACKEND_URL": url(db)})

    assert result.returncode == 0, result.stderr
    assert [s["session_id"] for s in json.loads(result.stdout)["sessions"]] == [THIRD]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("sessions", "list", "--since", "yesterday"), "--since"),
        (("sessions", "list", "--until", "2024-13-01"), "--until"),
        (("sessions", "list", "--limit", "0"), "--limit"),
        (("sessions", "list", "--limit", "many"), "--limit"),
        (("sessions", "list", "--status", "done"), "--status"),
        (("sessions", "list", "--cursor", "not-a-cursor"), "--cursor"),
        (("sessions", "export", FIRST, "--format", "csv"), "--format"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    db: Path, args: tuple[str, ...], named: str
) -> None:
    """Malformed option values are usage errors that say which option is wrong."""
    result = run("--backend", url(db), *args, cwd=db.parent)

    assert result.returncode == 2
    assert named in result.stderr
    assert result.stdout == ""


def test_write_only_plugin_backend_exits_2(tmp_path: Path) -> None:
    """A plug-in backend that cannot be queried is reported as write-only."""
    plugins = tmp_path / "plugins"
    dist_info = plugins / "writeonly_backend-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: writeonly-backend\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        "[agentsession.backends]\nwriteonly = writeonly_backend:WriteOnly\n", encoding="utf-8"
    )
    (plugins / "writeonly_backend.py").write_text(
        "class WriteOnly:\n"
        "    def __init__(self, url): pass\n"
        "    def write(self, events): pass\n"
        "    def flush(self): pass\n"
        "    def close(self): pass\n",
        encoding="utf-8",
    )
    pythonpath = os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))

    result = run(
        "--backend",
        "writeonly://x",
        "sessions",
        "list",
        cwd=tmp_path,
        env={"PYTHONPATH": pythonpath},
    )

    assert result.returncode == 2
    assert "write-only" in result.stderr


def test_unknown_scheme_exits_2(tmp_path: Path) -> None:
    """A backend URL with a scheme nobody registered is reported, not a traceback."""
    result = run("--backend", "nosuch://x", "sessions", "list", cwd=tmp_path)

    assert result.returncode == 2
    assert "nosuch" in result.stderr
    assert "Traceback" not in result.stderr
