"""``agentsession serve``: the explorer's API and web page under uvicorn, until SIGINT/SIGTERM.

Imports Starlette and uvicorn only when the command runs, so that the rest of the command line
works without the ``explorer`` extra. Exit codes: 0 after a signal, 2 for bad arguments, a
missing extra or an address that cannot be listened on.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence
from typing import Any

from .._serving import EXIT_ERROR, listen, port_number, run_until_signal
from ..backends._base import Backend
from . import INSTALL_HINT, missing_dependencies

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "TOKEN_VARIABLE", "add_serve_command", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3001
TOKEN_VARIABLE = "AGENTSESSION_EXPLORER_TOKEN"


def add_serve_command(commands: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the sub-commands of the ``agentsession`` parser."""
    serve_parser = commands.add_parser(
        "serve",
        help="explore sessions in a web page (and a JSON API)",
        description="Serve the session explorer: a web page at / and a JSON API under /api "
        "(OpenAPI at /openapi.json). Needs " + INSTALL_HINT + ".",
        parents=list(parents),
    )
    serve_parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on ({DEFAULT_HOST}); any other than a loopback one needs a token",
    )
    serve_parser.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port to listen on ({DEFAULT_PORT})"
    )
    serve_parser.add_argument(
        "--token",
        metavar="T",
        help=f"require this token on every request (default: ${TOKEN_VARIABLE}); at least 16 "
        "characters. Prefer the variable: a command line is visible to other local users",
    )
    serve_parser.set_defaults(handler=serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace, backend: Backend) -> int:
    """Serve the explorer of ``backend`` until a signal; return the exit code."""
    missing = missing_dependencies()
    if missing:
        return _fail(f"the explorer needs {', '.join(missing)}: {INSTALL_HINT}")
    import uvicorn

    from ._app import create_explorer_app
    from ._guard import check_token

    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    if token is None and not _is_loopback(args.host):
        return _fail(
            f"listening on {args.host} needs a token: pass --token or set {TOKEN_VARIABLE} "
            "(without one the explorer only listens on a loopback address such as 127.0.0.1)"
        )
    try:
        if token is not None:
            check_token(token)
        listener = listen(args.host, args.port)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    host, port = listener.getsockname()[:2]
    app = create_explorer_app(backend, token=token, allowed_hosts=[args.host])
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, server_header=False)
    )
    shown = f"[{host}]" if ":" in host else host
    print(
        f"agentsession explorer: http://{shown}:{port}/ reading {backend!r}"
        + (" (token required)" if token else "")
        + "; Ctrl+C stops it",
        file=sys.stderr,
        flush=True,
    )
    # Scores given through the page go through the background writer: run_until_signal
    # writes them before the backend is closed.
    return run_until_signal(server, listener)


def _fail(message: str) -> int:
    print(f"agentsession: error: {message}", file=sys.stderr)
    return EXIT_ERROR
