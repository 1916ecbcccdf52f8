"""Lint, type-check and test every distribution, each in its own environment.

``nox`` runs the default sessions (lint, types, the tests of the core and of every adapter at
its supported versions); ``nox -s bench`` runs the benchmarks; ``nox -l`` lists everything.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["lint", "types", "tests", "clients", "proxy", "explorer"]
nox.options.error_on_external_run = True

CORE = "./packages/agentsession"
PROXY = f"{CORE}[proxy]"
EXPLORER = f"{CORE}[explorer]"
SERVERS = f"{CORE}[proxy,explorer]"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.23", "hypothesis>=6.100"]
HTTP_LIBS = ["httpx>=0.27", "httpx2>=2.16; python_version >= '3.11'"]
FRAMEWORK_CLIENTS = [
    "langchain-openai>=1.7",
    "autogen-agentchat>=0.7",
    "autogen-ext[openai]>=0.7",
]


def run_tests(
    session: nox.Session,
    suite: str,
    packages: list[str],
    extra: list[str] | None = None,
    pytest_args: tuple[str, ...] = (),
) -> None:
    """The one test runner every test session shares: install, then pytest ``tests/<suite>``."""
    session.install(*TEST_DEPS, *packages, *(extra or []))
    session.run(
        "python",
        "-m",
        "pytest",
        f"tests/{suite}",
        *pytest_args,
        *session.posargs,
        env={"AGENTSESSION_BACKEND_URL": f"sqlite://{session.create_tmp()}/default.db"},
    )


@nox.session(tags=["tests"])
def tests(session: nox.Session) -> None:
    """The core: tracker, context, state, headers, backends, worker, CLI."""
    run_tests(session, "core", [CORE], HTTP_LIBS)


@nox.session
@nox.parametrize("openai", ["3", "2"], ids=["openai3", "openai2"])
def clients(session: nox.Session, openai: str) -> None:
    """Per-request session headers through real framework clients, under openai 3.x and 2.x."""
    if openai == "3":
        # LlamaIndex's OpenAI integration pins openai<3: its tests run in the openai2 session.
        deps, only = ["openai>=3,<4"], ("-k", "not llama_index")
    else:
        deps, only = ["openai>=2.45,<3", "llama-index-llms-openai-like>=0.8"], ()
    run_tests(session, "clients", [CORE], [*deps, *FRAMEWORK_CLIENTS, *HTTP_LIBS], only)


@nox.session
def proxy(session: nox.Session) -> None:
    """The recording proxy as a real subprocess, behind OpenAI and framework clients."""
    frameworks = ["llama-index-llms-openai-like>=0.8", *FRAMEWORK_CLIENTS]
    run_tests(session, "proxy", [PROXY], ["openai>=2.45,<3", "httpx>=0.27", *frameworks])


@nox.session
def explorer(session: nox.Session) -> None:
    """The session explorer: its API over SQLite, scores, the CLI, the page in headless Chromium."""
    run_tests(session, "explorer", [EXPLORER], ["httpx>=0.27", "httpx2>=2.14", "playwright>=1.40"])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over every distribution under packages/."""
    session.install("mypy>=1.10", SERVERS, "httpx>=0.27")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints its ratios against a baseline measured in the same run."""
    session.install(SERVERS, "httpx>=0.27")
    scripts = ("record_step", "sqlite_sink", "proxy", "explorer")
    for script in scripts:
        session.run("python", f"benchmarks/bench_{script}.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The quickstart: an agent session recorded into SQLite and printed as a timeline."""
    session.install(CORE)
    session.run("python", "examples/quickstart.py")
