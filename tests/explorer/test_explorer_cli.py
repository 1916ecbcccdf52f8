"""The command line: ``agentsession sessions timeline`` and ``agentsession serve``, run as real
subprocesses, and the core working without the explorer extra."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from explorer_data import NESTED, T0, TRICKY, step

from agentsession import SQLiteBackend
from agentsession._cli import main
from agentsession.explorer._documents import timeline_document
from agentsession.explorer._params import ApiError, parse_list_query

TIMEOUT_S = 30
BAR = re.compile(r"\|[ =x-]{30}\|")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentsession", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )


def test_timeline_draws_steps_nested_with_state_changes(store_path: Path) -> None:
    """A one-line header, then a bar per step, children indented, keys marked + ~ -."""
    result = run("sessions", "timeline", NESTED, "--backend", f"sqlite:///{store_path}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == [NESTED, "completed", "6"]
    rows = [line for line in lines if BAR.search(line)]
    assert [row.split()[0] for row in rows] == ["0", "1", "2", "3", "4", "5"]
    indents = [len(row) - len(row.lstrip()) for row in rows]
    assert indents == [0, 0, 2, 2, 4, 0]
    text = result.stdout
    assert "+plan" in text
    assert "~results" in text
    assert "-plan" in text
    assert "+booking" in text
    assert "RateLimitError: slow down" in text
    assert "search_flights" in text
    assert "x" in BAR.findall(rows[4])[0]  # the failed step's bar


def test_timeline_lines_fit_in_100_columns(tmp_path: Path) -> None:
    """Long ids, model names, keys and errors are cut or wrapped: no line passes 100."""
    path = tmp_path / "wide.db"
    backend = SQLiteBackend(path)
    long_id = "session-" + "x" * 180
    state = {f"key_number_{n}_" + "k" * 30: n for n in range(30)}
    backend.write(
        [
            step(
                long_id,
                index,
                T0,
                model="a-very-long-model-name-" + "m" * 80,
                state={**state, "n": index},
                error="E" * 300 if index == 2 else None,
                status="failed" if index == 2 else "completed",
            )
            for index in range(4)
        ]
    )
    backend.close()
    result = run("sessions", "timeline", long_id, "--backend", f"sqlite:///{path}")
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    assert "more" in result.stdout  # keys past the last line are counted


def test_timeline_json_is_the_api_document(store_path: Path) -> None:
    """--json prints the explorer API's timeline document, also for an id holding a slash."""
    result = run("sessions", "timeline", TRICKY, "--json", "--backend", f"sqlite:///{store_path}")
    assert result.returncode == 0, result.stderr
    backend = SQLiteBackend(store_path)
    summary = backend.get_session(TRICKY)
    assert summary is not None
    assert json.loads(result.stdout) == json.loads(timeline_document(backend, summary))
    backend.close()


def test_show_lists_the_scores_in_the_summary(store_path: Path) -> None:
    """``sessions show`` has a scores line: each name with its value."""
    result = run("sessions", "show", "s-004", "--backend", f"sqlite:///{store_path}")
    assert result.returncode == 0, result.stderr
    assert "scores       quality=0.04, resolved=false" in result.stdout.splitlines()


def test_timeline_of_an_unknown_session_exits_1(store_path: Path) -> None:
    """An id no session has is exit code 1 with a one-line error."""
    result = run("sessions", "timeline", "nope", "--backend", f"sqlite:///{store_path}")
    assert result.returncode == 1
    assert "no session with id 'nope'" in result.stderr


# -- serve --------------------------------------------------------------------------------------


def _start_serve(store_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "agentsession", "serve", "--backend", f"sqlite:///{store_path}",
         "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _url_of(process: Any) -> str:
    line = process.stderr.readline()  # the first line names the address (port 0 -> the real one)
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert match, line
    return match.group(0)


def test_serve_answers_until_sigint_then_exits_0(store_path: Path) -> None:
    """serve listens on 127.0.0.1, answers the API and the page, and stops cleanly on SIGINT."""
    pytest.importorskip("uvicorn", reason="the explorer extra is not installed")
    import httpx

    process = _start_serve(store_path)
    try:
        url = _url_of(process)
        listed = httpx.get(url + "api/sessions?limit=2", timeout=TIMEOUT_S)
        assert listed.status_code == 200
        assert listed.json()["total"] == 62
        assert "explorer.js" in httpx.get(url, timeout=TIMEOUT_S).text
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(TIMEOUT_S)
    assert code == 0, process.stderr.read()


def test_serve_with_a_token_from_the_environment_requires_it(store_path: Path) -> None:
    """AGENTSESSION_EXPLORER_TOKEN turns the check on: no token 401, the token 200."""
    pytest.importorskip("uvicorn", reason="the explorer extra is not installed")
    import httpx

    token = "token-from-the-environment"
    process = _start_serve(store_path, env={"AGENTSESSION_EXPLORER_TOKEN": token})
    try:
        url = _url_of(process)
        assert httpx.get(url + "api/sessions", timeout=TIMEOUT_S).status_code == 401
        authorized = httpx.get(
            url + "api/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
        )
        assert authorized.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(TIMEOUT_S)
    assert code == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--host", "0.0.0.0"], "needs a token"),
        (["--host", "0.0.0.0", "--token", "short"], "at least 16 characters"),
        (["--port", "70000"], "expected a port from 0 to 65535"),
    ],
)
def test_serve_refuses_unsafe_or_bad_arguments(
    store_path: Path, args: list[str], says: str
) -> None:
    """Listening beyond loopback without a (strong) token, or a bad port: exit 2, one line."""
    result = run("serve", "--backend", f"sqlite:///{store_path}", *args)
    assert result.returncode == 2
    assert says in result.stderr


def test_serve_on_a_busy_port_is_a_one_line_error(store_path: Path) -> None:
    """A port another socket holds is exit 2 naming the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = run("serve", "--backend", f"sqlite:///{store_path}", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize(
    ("raw", "moment"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
        (" 2024-05-01T14:00+02:00 ", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
        ("0001-01-01T00:00+01:00", None),  # before the first UTC datetime
        ("yesterday", None),
    ],
)
def test_the_cli_and_the_api_read_times_alike(
    raw: str, moment: datetime | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since and ?since= take the same ISO 8601 times, in UTC, and refuse the same ones."""
    code = main(["sessions", "list", "--backend", "memory://", "--json", "--since", raw])
    assert code == (0 if moment else 2), capsys.readouterr().err
    if moment is None:
        assert "not an ISO 8601 date or time" in capsys.readouterr().err
        with pytest.raises(ApiError, match="since must be an ISO 8601"):
            parse_list_query([("since", raw)])
    else:
        assert parse_list_query([("since", raw)])[0].since == moment


def test_serve_without_the_extra_says_how_to_install_it(
    store_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing Starlette or uvicorn is exit 2 with the pip command."""
    monkeypatch.setattr(
        "agentsession.explorer._cli.missing_dependencies", lambda: ["starlette", "uvicorn"]
    )
    assert main(["serve", "--backend", f"sqlite:///{store_path}"]) == 2
    assert "pip install 'agentsession[explorer]'" in capsys.readouterr().err


def test_the_core_and_its_cli_work_without_the_extra(store_path: Path) -> None:
    """With Starlette and uvicorn unimportable, agentsession and its CLI still work."""
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "sys.modules['uvicorn'] = None\n"
        "import agentsession, agentsession.explorer\n"
        "from agentsession._cli import main\n"
        f"assert main(['sessions', 'timeline', {NESTED!r}, '--backend', "
        f"'sqlite:///{store_path}']) == 0\n"
        "try:\n"
        "    agentsession.explorer.create_explorer_app\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError: agentsession.explorer needs starlette, uvicorn" in result.stdout
