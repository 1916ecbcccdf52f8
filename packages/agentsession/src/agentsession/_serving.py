"""Running an ASGI app from the command line: one way for ``agentsession proxy`` and ``serve``.

Listens on a socket opened here (a busy port is a one-line error, port 0 can be shown), runs
uvicorn until SIGINT or SIGTERM, then writes everything recorded before returning. uvicorn is
imported by the caller, so this module needs nothing beyond the standard library.
"""

from __future__ import annotations

import argparse
import signal
import socket
from types import FrameType
from typing import Any

from ._worker import shutdown_all

__all__ = ["EXIT_ERROR", "EXIT_OK", "listen", "port_number", "run_until_signal"]

EXIT_OK = 0
EXIT_ERROR = 2


def port_number(raw: str) -> int:
    """argparse type of a ``--port`` option."""
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {raw!r}")
    return value


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; OSError with a one-line message when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it; without it the asyncio loop answers each small
        # request about 40 ms late (Nagle's algorithm meeting the client's delayed ACK).
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.bind((host.strip("[]"), port))
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return listener


class _Stopped(Exception):
    """Raised by our signal handlers once uvicorn has shut down: a normal end."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def run_until_signal(server: Any, listener: socket.socket) -> int:
    """Run a ``uvicorn.Server`` on ``listener`` until SIGINT/SIGTERM; return the exit code.

    uvicorn shuts down gracefully on those signals, then re-raises the signal to the handler it
    found: ours turns it into a normal exit. Every recorded event is written before returning.
    """
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[listener])
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
        shutdown_all()
    return EXIT_OK if server.started else EXIT_ERROR
