"""A real Arize Phoenix server for the proof: ``phoenix serve`` as a subprocess on free
127.0.0.1 ports, with its own working directory and no telemetry, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 120.0  # migrations on a cold 2-core machine take ~20 s
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class PhoenixServer:
    base_url: str
    """The UI and REST API, e.g. ``http://127.0.0.1:41234``."""
    grpc_port: int
    log: Path

    @property
    def traces_endpoint(self) -> str:
        """Where OTLP/HTTP spans go."""
        return f"{self.base_url}/v1/traces"


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, SIGTERM it if the test process dies (even by
    SIGKILL, when no finalizer runs), so that no server outlives the run."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def phoenix_server(working_dir: Path) -> Iterator[PhoenixServer]:
    """Start Phoenix, wait until ``/healthz`` answers, yield it; stop it however the block ends."""
    port, grpc_port = _free_port(), _free_port()
    working_dir.mkdir(parents=True, exist_ok=True)
    log = working_dir / "phoenix.log"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))},
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "phoenix.server.main", "serve"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped whole, below
            preexec_fn=_die_with_parent,
        )
    try:
        server = PhoenixServer(f"http://127.0.0.1:{port}", grpc_port, log)
        _wait_healthy(process, server)
        yield server
    finally:
        _stop(process)


def _wait_healthy(process: subprocess.Popen[bytes], server: PhoenixServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"phoenix serve exited with {process.returncode}:\n{_log_tail(server.log)}"
            )
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"phoenix serve not healthy after {STARTUP_TIMEOUT_S:.0f} s:\n{_log_tail(server.log)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass
