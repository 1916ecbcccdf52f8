"""``agentsession proxy``: run the recording proxy under uvicorn until SIGINT or SIGTERM.

Imports Starlette and uvicorn only when the command runs, so that the rest of the command
line works without the ``proxy`` extra. Exit codes: 0 after a signal (everything recorded is
flushed first), 2 for bad arguments, a backend that cannot be opened or a server that could
not start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .._serving import EXIT_ERROR, listen, port_number, run_until_signal
from . import INSTALL_HINT, missing_dependencies

__all__ = ["add_proxy_command", "run_proxy"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
KEEP_ALIVE_S = 75
"""How long the proxy keeps an idle client connection open: longer than client pools keep one
(httpx and the OpenAI SDK: 5 s), so that the client always drops it first. uvicorn's default,
also 5 s, lets a request sent as the proxy closes the connection fail with a reset."""


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
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port to bind ({DEFAULT_PORT})"
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


def run_proxy(args: argparse.Namespace) -> int:
    """Serve until a signal, then flush and close the backend; return the exit code."""
    missing = missing_dependencies()
    if missing:
        print(
            f"agentsession: error: the proxy needs {', '.join(missing)}: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    import uvicorn

    from .._config import get_settings
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
        listener = listen(args.host, args.port)
    except Exception as exc:
        print(f"agentsession: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            access_log=args.access_log,
            timeout_graceful_shutdown=args.shutdown_timeout,
            timeout_keep_alive=KEEP_ALIVE_S,
            lifespan="on",
            server_header=False,
        )
    )
    port = listener.getsockname()[1]
    print(
        f"agentsession proxy: http://{args.host}:{port}/v1 -> {args.upstream} "
        f"(through {httpx.__name__} {httpx.__version__}), recording into {url}",
        file=sys.stderr,
        flush=True,
    )
    return run_until_signal(server, listener)
