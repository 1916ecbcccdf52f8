"""``agentsession proxy``: run the recording proxy under uvicorn until SIGINT or SIGTERM.

Imports Starlette and uvicorn only when the command runs, so that the rest of the command
line works without the ``proxy`` extra. Exit codes: 0 after a signal (everything recorded is
flushed first), 2 for bad arguments, a backend that cannot be opened or a server that could
not start.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from . import INSTALL_HINT, missing_dependencies

__all__ = ["add_proxy_command", "run_proxy"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
_EXIT_OK = 0
_EXIT_ERROR = 2


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {raw!r}")
    return value


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {raw!r}")
    return value


def add_proxy_command(commands: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``proxy`` to the sub-commands of the ``agentsession`` parser."""
    proxy = commands.add_parser(
        "proxy",
        help="run the OpenAI-compatible recording proxy",
        description="Forward /v1/* to an OpenAI-compatible upstream and record each LLM call "
        "as a step of the session its X-TraceForge-* headers name. Needs " + INSTALL_HINT + ".",
        parents=list(parents),
    )
    proxy.add_argument(
        "--upstream",
        required=True,
        metavar="URL",
        help="the upstream's OpenAI base URL, as an OpenAI client's base_url "
        "(e.g. https://api.openai.com/v1): /v1/<rest> is sent to <URL>/<rest>",
    )
    proxy.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind ({DEFAULT_HOST})")
    proxy.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port to bind ({DEFAULT_PORT})"
    )
    proxy.add_argument(
        "--header-prefix", metavar="P", help="session header prefix (default: X-TraceForge)"
    )
    proxy.add_argument(
        "--auto-session-id",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="give a call without a session header a new session (default: "
        "$AGENTSESSION_AUTO_SESSION_ID, on); off: forward it unrecorded",
    )
    proxy.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="longest wait to connect to the upstream or for a free pooled connection (10)",
    )
    proxy.add_argument(
        "--read-timeout",
        type=_seconds,
        default=600.0,
        metavar="S",
        help="longest wait for each part of the upstream's answer (600)",
    )
    proxy.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="on SIGINT/SIGTERM, longest wait for calls in flight (30)",
    )
    proxy.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
    )
    proxy.add_argument("--access-log", action="store_true", help="log every request")


class _Stopped(Exception):
    """Raised by our signal handlers: SIGINT and SIGTERM end the command normally."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def run_proxy(args: argparse.Namespace) -> int:
    """Serve until a signal, then flush and close the backend; return the exit code."""
    missing = missing_dependencies()
    if missing:
        print(
            f"agentsession: error: the proxy needs {', '.join(missing)}: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return _EXIT_ERROR
    import uvicorn

    from .._config import get_settings
    from .._worker import shutdown_all
    from ..backends._registry import backend_from_url
    from ._app import create_proxy_app
    from ._upstream import httpx

    url = getattr(args, "backend", None) or get_settings().backend_url
    try:
        backend = backend_from_url(url)
        app = create_proxy_app(
            args.upstream,
            backend=backend,
            auto_session_id=args.auto_session_id,
            header_prefix=args.header_prefix,
            connect_timeout_s=args.connect_timeout,
            read_timeout_s=args.read_timeout,
        )
    except Exception as exc:
        print(f"agentsession: error: {exc}", file=sys.stderr)
        return _EXIT_ERROR
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=args.access_log,
            timeout_graceful_shutdown=args.shutdown_timeout,
            lifespan="on",
            server_header=False,
        )
    )
    print(
        f"agentsession proxy: http://{args.host}:{args.port}/v1 -> {args.upstream} "
        f"(through {httpx.__name__} {httpx.__version__}), recording into {url}",
        file=sys.stderr,
        flush=True,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
    # handler it found: ours turns it into a normal exit once the backend is flushed.
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except _Stopped:
        pass
    except SystemExit:  # uvicorn exits this way when it cannot bind the port
        return _EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutdown_all()
    return _EXIT_OK if server.started else _EXIT_ERROR
