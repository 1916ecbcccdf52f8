"""``agentsession proxy`` as a command: start-up errors, the missing extra, and a graceful stop
that flushes every step before the process exits 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from proxy_harness import ProxyProcess

from agentsession import SQLiteBackend
from agentsession._cli import main
from agentsession.testing import FakeOpenAIServer

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
_WITHOUT_EXTRA = (
    "import sys; sys.modules.update(starlette=None, uvicorn=None, httpx=None, httpx2=None); "
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_proxy_with_exit_0_after_flushing_every_step(
    upstream: FakeOpenAIServer, tmp_path: Path, sig: int
) -> None:
    """Steps still queued (a 60 s flush interval) are in SQLite once the process has exited."""
    proxy = ProxyProcess(
        upstream.base_url, tmp_path / "p.db", env={"AGENTSESSION_FLUSH_INTERVAL_S": "60"}
    )
    session_id = f"shutdown-{uuid.uuid4().hex}"
    try:
        for _ in range(5):
            response = httpx.post(
                f"{proxy.base_url}/chat/completions",
                json=BODY,
                headers={"X-TraceForge-Session-ID": session_id},
                timeout=10,
            )
            assert response.status_code == 200
    finally:
        assert proxy.stop(sig) == 0, proxy.log()
    backend = SQLiteBackend(tmp_path / "p.db")
    try:
        assert [s.step_index for s in backend.list_steps(session_id)] == [0, 1, 2, 3, 4]
    finally:
        backend.close()


def test_a_port_in_use_ends_the_command_with_exit_2(tmp_path: Path) -> None:
    """The proxy cannot bind: it says so and exits 2 instead of hanging."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "agentsession",
                "proxy",
                "--upstream",
                "http://127.0.0.1:9/v1",
                "--port",
                str(port),
                "--backend",
                f"sqlite:///{tmp_path / 'p.db'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert "address already in use" in result.stderr.lower()


@pytest.mark.parametrize(
    ("upstream_url", "message"),
    [("ftp://example.test/v1", "http(s) base URL"), ("http://h/v1?key=1", "query")],
)
def test_a_bad_upstream_url_is_refused_with_exit_2(
    upstream_url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--upstream must be an http(s) base URL; the error names the value."""
    assert main(["proxy", "--upstream", upstream_url, "--backend", "memory://"]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert upstream_url in error


def test_without_the_extra_the_command_names_the_install() -> None:
    """No Starlette, uvicorn or httpx: exit 2 and the pip command that installs them."""
    result = run_python(
        _WITHOUT_EXTRA + "from agentsession._cli import main; "
        "raise SystemExit(main(['proxy', '--upstream', 'http://127.0.0.1:9/v1']))"
    )
    assert result.returncode == 2
    assert "pip install 'agentsession[proxy]'" in result.stderr


def test_without_the_extra_the_app_import_names_the_install() -> None:
    """``from agentsession.proxy import create_proxy_app`` fails with the install command."""
    result = run_python(_WITHOUT_EXTRA + "from agentsession.proxy import create_proxy_app")
    assert result.returncode == 1
    assert "ImportError" in result.stderr
    assert "pip install 'agentsession[proxy]'" in result.stderr


def test_the_core_and_its_command_line_work_without_the_extra() -> None:
    """Without the extra, ``import agentsession`` and ``agentsession sessions list`` work."""
    result = run_python(
        _WITHOUT_EXTRA + "import agentsession; from agentsession._cli import main; "
        "raise SystemExit(main(['sessions', 'list', '--backend', 'memory://', '--json']))"
    )
    assert result.returncode == 0, result.stderr
    assert '"sessions": []' in result.stdout


def test_the_core_never_loads_the_server_stack() -> None:
    """Importing the core, its CLI and agentsession.proxy loads neither Starlette nor uvicorn."""
    result = run_python(
        "import sys, agentsession, agentsession._cli, agentsession.proxy; "
        "print(sorted(m for m in ('starlette', 'uvicorn') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
