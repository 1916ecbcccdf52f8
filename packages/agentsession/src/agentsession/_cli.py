"""The ``agentsession`` command: list, show and export the sessions a backend has recorded,
and run the recording proxy (``agentsession proxy``, see ``agentsession.proxy``) and the
session explorer (``agentsession serve``, see ``agentsession.explorer``).

Exit codes: 0 success, 1 unknown session, 2 bad arguments or a backend that cannot be read.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

from ._config import get_settings
from ._models import SessionFilter, SessionStatus, SessionSummary, Step
from ._serving import EXIT_ERROR, EXIT_OK
from ._text import parse_utc
from ._timeline import render_session_list, render_timeline
from .backends._base import Backend
from .backends._registry import backend_from_url, path_of_url
from .explorer._cli import add_serve_command
from .proxy._cli import add_proxy_command, run_proxy

__all__ = ["main"]

EXIT_NOT_FOUND = 1
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a command killed by SIGPIPE, as in ``agentsession ... | head``."""

_FILE_SCHEMES = frozenset({"jsonl", "sqlite"})
"""Schemes whose backend would create the file it names: reading must not leave an empty one."""


class _CliError(Exception):
    """Ends the command with ``message`` on stderr and ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "proxy":  # a server that records: it opens its backend itself
            return run_proxy(args)
        backend = _open_backend(args.backend if "backend" in args else None)
        try:
            code: int = args.handler(args, backend)
        finally:
            backend.close()
    except SystemExit as exc:
        # argparse exits for --help and bad arguments; callers of main() get the code instead.
        return (
            exc.code if isinstance(exc.code, int) else EXIT_OK if exc.code is None else EXIT_ERROR
        )
    except _CliError as exc:
        print(f"agentsession: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; point stdout at devnull so the exit flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


# -- arguments ----------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    # --backend is accepted before or after any sub-command; SUPPRESS keeps a sub-command's
    # parser from overwriting a value given earlier on the line.
    backend_option = argparse.ArgumentParser(add_help=False)
    backend_option.add_argument(
        "--backend",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="where sessions are stored, e.g. sqlite:///abs/path.db (default: "
        "$AGENTSESSION_BACKEND_URL, else sqlite://.agentsession/sessions.db)",
    )
    parser = argparse.ArgumentParser(
        prog="agentsession",
        description="Inspect the sessions agentsession has recorded.",
        parents=[backend_option],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sessions = commands.add_parser(
        "sessions", help="list, show or export sessions", parents=[backend_option]
    )
    actions = sessions.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list", help="sessions newest first, one page at a time", parents=[backend_option]
    )
    listing.add_argument("--user-id", metavar="U", help="only sessions with this user id")
    listing.add_argument("--status", choices=get_args(SessionStatus), help="only this status")
    listing.add_argument("--tag", metavar="T", help="only sessions with this tag")
    listing.add_argument(
        "--since", type=_iso_datetime, metavar="ISO", help="started at or after (UTC if no zone)"
    )
    listing.add_argument(
        "--until", type=_iso_datetime, metavar="ISO", help="started before (UTC if no zone)"
    )
    listing.add_argument("--q", metavar="PREFIX", help="session id starts with PREFIX")
    listing.add_argument("--limit", type=_positive_int, default=50, metavar="N", help="page size")
    listing.add_argument("--cursor", metavar="C", help="the cursor printed with the previous page")
    listing.add_argument("--json", action="store_true", help="print the page as JSON")
    listing.set_defaults(handler=_list_sessions)

    show = actions.add_parser(
        "show", help="a session's summary and step timeline", parents=[backend_option]
    )
    show.add_argument("session_id", metavar="ID", help="session id (a unique prefix is enough)")
    show.add_argument("--json", action="store_true", help='print {"session": ..., "steps": [...]}')
    show.set_defaults(handler=_show_session)

    export = actions.add_parser(
        "export", help="a session and its steps as JSON or JSON Lines", parents=[backend_option]
    )
    export.add_argument("session_id", metavar="ID", help="session id (a unique prefix is enough)")
    export.add_argument(
        "--format",
        choices=("json", "jsonl"),
        default="json",
        help='json: {"session": ..., "steps": [...]}; jsonl: a session line, then a line per step',
    )
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=_export_session)

    timeline = actions.add_parser(
        "timeline",
        help="a session's steps on a time axis, with their state changes",
        parents=[backend_option],
    )
    timeline.add_argument("session_id", metavar="ID", help="session id (a unique prefix is enough)")
    timeline.add_argument(
        "--json", action="store_true", help="print the explorer API's timeline document"
    )
    timeline.set_defaults(handler=_timeline_session)
    add_proxy_command(commands, parents=[backend_option])
    add_serve_command(commands, parents=[backend_option])
    return parser


def _iso_datetime(raw: str) -> datetime:
    try:
        return parse_utc(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or time: {raw!r} (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {raw!r}")
    return value


# -- the backend --------------------------------------------------------------------------------


def _open_backend(url: str | None) -> Backend:
    """The backend ``url`` names, if it can answer queries and (for files) already exists."""
    url = url or get_settings().backend_url
    if urlsplit(url).scheme.lower() in _FILE_SCHEMES:
        try:
            path = path_of_url(url)
        except ValueError as exc:
            raise _CliError(str(exc)) from None
        if not path.exists():
            raise _CliError(
                f"no sessions recorded at {os.path.abspath(path)} (backend {url}); "
                "pass --backend URL or set AGENTSESSION_BACKEND_URL to where your app records"
            )
    try:
        backend = backend_from_url(url)
    except Exception as exc:
        raise _CliError(f"cannot open backend {url}: {exc}") from exc
    if not isinstance(backend, Backend):
        backend.close()
        raise _CliError(
            f"backend {url} is write-only: it stores sessions but cannot list or show them; "
            "read them with the tools of the system it writes to"
        )
    return backend


@contextmanager
def _reading(backend: Backend) -> Iterator[None]:
    """Turn a backend's failure to answer into a one-line error instead of a traceback."""
    try:
        yield
    except Exception as exc:
        name = type(backend).__name__
        raise _CliError(f"{name} could not read sessions: {type(exc).__name__}: {exc}") from exc


def _load(backend: Backend, session_id: str) -> tuple[SessionSummary, list[Step]]:
    """The session named by its id or, failing that, by a prefix only one session id has."""
    with _reading(backend):
        summary = backend.get_session(session_id)
        candidates = None
        if summary is None:
            candidates = backend.list_sessions(SessionFilter(q=session_id), limit=2)
            if len(candidates.sessions) == 1:
                summary = candidates.sessions[0]
        steps = [] if summary is None else backend.list_steps(summary.session_id)
    if candidates is not None and summary is None:
        if not candidates.sessions:
            raise _CliError(f"no session with id {session_id!r}", EXIT_NOT_FOUND)
        ids = ", ".join(s.session_id for s in candidates.sessions)
        more = ", ..." if candidates.total > len(candidates.sessions) else ""
        raise _CliError(
            f"{session_id!r} is the start of {candidates.total} session ids ({ids}{more}); "
            "give more of the id",
            EXIT_NOT_FOUND,
        )
    assert summary is not None
    if summary.session_id != session_id:
        print(f"agentsession: {session_id!r} is the start of {summary.session_id}", file=sys.stderr)
    return summary, steps


# -- the commands -------------------------------------------------------------------------------


def _list_sessions(args: argparse.Namespace, backend: Backend) -> int:
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise _CliError("argument --until: must be later than --since")
    filters = SessionFilter(
        user_id=args.user_id,
        status=args.status,
        tag=args.tag,
        since=args.since,
        until=args.until,
        q=args.q,
    )
    if args.cursor is not None:
        try:
            with _reading(backend):
                page = backend.list_sessions(filters, limit=args.limit, cursor=args.cursor)
        except _CliError as exc:
            if isinstance(exc.__cause__, ValueError):
                raise _CliError(f"argument --cursor: {exc.__cause__}") from None
            raise
    else:
        with _reading(backend):
            page = backend.list_sessions(filters, limit=args.limit)
    if args.json:
        _write_json(page.model_dump(mode="json"))
    else:
        _write(render_session_list(page, color=_use_color()))
    return EXIT_OK


def _show_session(args: argparse.Namespace, backend: Backend) -> int:
    summary, steps = _load(backend, args.session_id)
    if args.json:
        _write_json(_document(summary, steps))
    else:
        _write(render_timeline(summary, steps, color=_use_color()))
    return EXIT_OK


def _timeline_session(args: argparse.Namespace, backend: Backend) -> int:
    summary, steps = _load(backend, args.session_id)
    if args.json:
        from .explorer._documents import timeline_document  # needs no extra

        with _reading(backend):
            _write_json(json.loads(timeline_document(backend, summary)))
    else:
        _write(render_timeline(summary, steps, color=_use_color(), header=False))
    return EXIT_OK


def _export_session(args: argparse.Namespace, backend: Backend) -> int:
    summary, steps = _load(backend, args.session_id)
    if args.format == "json":
        text = json.dumps(_document(summary, steps), indent=2) + "\n"
    else:
        records = [{"type": "session", **summary.model_dump(mode="json")}]
        records.extend({"type": "step", **step.model_dump(mode="json")} for step in steps)
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    if args.output is None:
        _write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _CliError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"agentsession: wrote {len(steps)} steps to {args.output}", file=sys.stderr)
    return EXIT_OK


def _document(summary: SessionSummary, steps: Sequence[Step]) -> dict[str, Any]:
    return {
        "session": summary.model_dump(mode="json"),
        "steps": [step.model_dump(mode="json") for step in steps],
    }


# -- output -------------------------------------------------------------------------------------


def _use_color() -> bool:
    """ANSI colours only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _write(text: str) -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Recorded data may hold characters the console's encoding lacks; show "?" not a crash.
        sys.stdout.reconfigure(errors="replace")
    sys.stdout.write(text)
    sys.stdout.flush()


def _write_json(document: Any) -> None:
    # ASCII escapes keep the JSON valid whatever the console's encoding.
    _write(json.dumps(document, indent=2) + "\n")
