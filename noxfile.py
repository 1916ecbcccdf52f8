"""Lint, type-check and test every distribution, each in its own environment.

``nox`` runs the default sessions (lint, types, the tests of the core and of every adapter at
its supported versions); ``nox -s bench`` runs the benchmarks; ``nox -l`` lists everything.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["lint", "types", "tests"]
nox.options.error_on_external_run = True

CORE = "./packages/agentsession"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.23", "hypothesis>=6.100"]


def run_tests(
    session: nox.Session, suite: str, packages: list[str], extra: list[str] | None = None
) -> None:
    """The one test runner every test session shares: install, then pytest ``tests/<suite>``."""
    session.install(*TEST_DEPS, *packages, *(extra or []))
    session.run(
        "python",
        "-m",
        "pytest",
        f"tests/{suite}",
        *session.posargs,
        env={"AGENTSESSION_BACKEND_URL": f"sqlite://{session.create_tmp()}/default.db"},
    )


@nox.session(tags=["tests"])
def tests(session: nox.Session) -> None:
    """The core: tracker, context, state, headers, backends, worker, CLI."""
    run_tests(session, "core", [CORE])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over every distribution under packages/."""
    session.install("mypy>=1.10", CORE)
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints its ratios against a baseline measured in the same run."""
    session.install(CORE)
    for script in ("bench_record_step.py", "bench_sqlite_sink.py"):
        session.run("python", f"benchmarks/{script}", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The quickstart: an agent session recorded into SQLite and printed as a timeline."""
    session.install(CORE)
    session.run("python", "examples/quickstart.py")
