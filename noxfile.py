"""Lint, type-check and test every distribution, each in its own environment.

``nox`` runs the default sessions (lint, types, the tests of the core and of every adapter at
its supported versions); ``nox -s bench`` runs the benchmarks; ``nox -l`` lists everything.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = [
    "lint",
    "types",
    "tests",
    "clients",
    "proxy",
    "explorer",
    "langchain",
    "llamaindex",
    "autogen",
    "otel",
    "phoenix",
]
nox.options.error_on_external_run = True

CORE = "./packages/agentsession"
PROXY = f"{CORE}[proxy]"
EXPLORER = f"{CORE}[explorer]"
SERVERS = f"{CORE}[proxy,explorer]"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.23", "hypothesis>=6.100"]
HTTP_LIBS = ["httpx>=0.27", "httpx2>=2.16; python_version >= '3.11'"]
OTEL = f"{CORE}[otel,otel-grpc]"
LANGCHAIN = "./packages/agentsession-langchain"
LLAMAINDEX = "./packages/agentsession-llamaindex"
AUTOGEN = "./packages/agentsession-autogen"
LANGCHAIN_NEWEST = ["langchain-core>=1.7,<2", "langgraph>=1.0", "langchain-openai>=1.0"]
LLAMAINDEX_NEWEST = ["llama-index-core>=0.14,<0.15", "llama-index-llms-openai-like>=0.8"]
AUTOGEN_NEWEST = ["autogen-agentchat>=0.7,<0.8", "autogen-ext[openai]>=0.7,<0.8"]
# Each adapter is tested at both ends of the range its _package.py declares.
FRAMEWORK_VERSIONS = {
    "langchain": {
        "oldest": ["langchain-core==0.3.10", "langgraph==0.2.40", "langchain-openai==0.2.1"],
        "newest": LANGCHAIN_NEWEST,
    },
    "llamaindex": {
        # llama-index-llms-openai 0.3 fails to import with openai 1.80 and later.
        "oldest": [
            "llama-index-core==0.12.23",
            "llama-index-llms-openai-like<0.4",
            "openai<1.80",
        ],
        "newest": LLAMAINDEX_NEWEST,
    },
    "autogen": {
        "oldest": ["autogen-agentchat==0.4.9", "autogen-core==0.4.9", "autogen-ext[openai]==0.4.9"],
        "newest": AUTOGEN_NEWEST,
    },
    "otel": {
        "oldest": [
            "opentelemetry-sdk==1.27.0",
            "opentelemetry-exporter-otlp-proto-http==1.27.0",
            "opentelemetry-exporter-otlp-proto-grpc==1.27.0",
        ],
        "newest": [],
    },
}
ENDS = ["oldest", "newest"]
# What bench_peers.py compares us with, installed only in the bench session.
PEERS = [
    "langfuse>=5",
    "langsmith>=0.4",
    "openinference-instrumentation-langchain>=0.1.80",
    "openinference-instrumentation-llama-index>=4.6",
    "opentelemetry-sdk>=1.30",
]
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
@nox.parametrize("end", ENDS, ids=ENDS)
def langchain(session: nox.Session, end: str) -> None:
    """The LangChain callback handler and instrument(), with LangGraph, at both ends."""
    run_tests(session, "langchain", [CORE, LANGCHAIN], FRAMEWORK_VERSIONS["langchain"][end])


@nox.session
@nox.parametrize("end", ENDS, ids=ENDS)
def llamaindex(session: nox.Session, end: str) -> None:
    """The LlamaIndex instrumentation handlers at both ends of their llama-index-core range."""
    run_tests(session, "llamaindex", [CORE, LLAMAINDEX], FRAMEWORK_VERSIONS["llamaindex"][end])


@nox.session
@nox.parametrize("end", ENDS, ids=ENDS)
def autogen(session: nox.Session, end: str) -> None:
    """The AutoGen model-client wrapper, instrument() and header helper at both ends."""
    run_tests(session, "autogen", [CORE, AUTOGEN], FRAMEWORK_VERSIONS["autogen"][end])


@nox.session
@nox.parametrize("end", ENDS, ids=ENDS)
def otel(session: nox.Session, end: str) -> None:
    """The OpenTelemetry backend, span processor and sampler against in-memory exporters."""
    run_tests(session, "otel", [OTEL], FRAMEWORK_VERSIONS["otel"][end])


@nox.session
def phoenix(session: nox.Session) -> None:
    """The proof: the LangChain and LlamaIndex examples, sent to a real Phoenix server."""
    peers = [
        # Older 20.x releases fail to import on Python 3.11 (a mutable dataclass default).
        "arize-phoenix>=20.26",
        "arize-phoenix-client>=3.5",
        "openinference-instrumentation-langchain>=0.1.80",
        "openinference-instrumentation-llama-index>=4.6",
    ]
    frameworks = ["langchain-core>=1.7,<2", "llama-index-core>=0.14,<0.15"]
    run_tests(session, "phoenix", [f"{CORE}[otel]", LANGCHAIN, LLAMAINDEX], [*frameworks, *peers])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over every distribution under packages/."""
    session.install(
        "mypy>=1.10",
        f"{CORE}[proxy,explorer,otel,otel-grpc]",
        LANGCHAIN,
        LLAMAINDEX,
        AUTOGEN,
        "httpx>=0.27",
        *LANGCHAIN_NEWEST,
        *LLAMAINDEX_NEWEST,
        *AUTOGEN_NEWEST,
    )
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, the peers' side by side included: each prints ratios against a baseline
    measured in the same run (``-- --quick`` for a short smoke run)."""
    session.install(
        SERVERS,
        LANGCHAIN,
        LLAMAINDEX,
        AUTOGEN,
        "httpx>=0.27",
        *LANGCHAIN_NEWEST,
        *LLAMAINDEX_NEWEST,
        *AUTOGEN_NEWEST,
        *PEERS,
    )
    scripts = (
        "record_step",
        "sqlite_sink",
        "scale",
        "proxy",
        "explorer",
        "langchain",
        "llamaindex",
        "autogen",
        "peers",
    )
    for script in scripts:
        session.run("python", f"benchmarks/bench_{script}.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The quickstart: an agent session recorded into SQLite and printed as a timeline."""
    session.install(CORE)
    session.run("python", "examples/quickstart.py")
