"""Runs ``python -m agentsession proxy`` as a real subprocess for the proxy tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from agentsession import SQLiteBackend, Step

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
READ_TIMEOUT_S = 1.0
"""The read timeout of the shared proxy: a test's hanging upstream need not hang for long."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ProxyProcess:
    """``agentsession proxy`` in a subprocess, recording into its own SQLite file."""

    def __init__(
        self,
        upstream: str,
        db_path: Path,
        *options: str,
        env: dict[str, str] | None = None,
        hide_modules: tuple[str, ...] = (),
    ) -> None:
        """Start it and wait until it answers; ``hide_modules`` are made unimportable in it."""
        self.port = free_port()
        self.db_path = db_path
        self.log_path = db_path.with_suffix(".log")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSESSION_")}
        environment["AGENTSESSION_FLUSH_INTERVAL_S"] = "0.02"
        environment.update(env or {})
        launcher = ["-m", "agentsession"]
        if hide_modules:
            launcher = [
                "-c",
                f"import sys; sys.modules.update(dict.fromkeys({list(hide_modules)!r})); "
                "from agentsession._cli import main; raise SystemExit(main(sys.argv[1:]))",
            ]
        command = [
            sys.executable,
            *launcher,
            "proxy",
            "--upstream",
            upstream,
            "--port",
            str(self.port),
            "--backend",
            f"sqlite:///{db_path}",
            *options,
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        self._wait_until_ready()
        self._reader: SQLiteBackend | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url`` to go through the proxy."""
        return f"{self.url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the proxy exited at start-up:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"the proxy was not ready in {START_TIMEOUT_S} s:\n{self.log()}")

    def steps(self, session_id: str, count: int, timeout_s: float = 10.0) -> list[Step]:
        """The session's stored steps once there are ``count`` of them (polled, bounded)."""
        if self._reader is None:
            self._reader = SQLiteBackend(self.db_path)
        deadline = time.monotonic() + timeout_s
        steps = self._reader.list_steps(session_id)
        while len(steps) < count and time.monotonic() < deadline:
            time.sleep(0.02)
            steps = self._reader.list_steps(session_id)
        assert len(steps) == count, f"{len(steps)} steps of {session_id!r}, expected {count}"
        return steps

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Signal the proxy and return its exit code once it stopped."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError(f"the proxy ignored signal {sig}:\n{self.log()}") from None
        return self.process.returncode
