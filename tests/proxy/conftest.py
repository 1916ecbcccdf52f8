"""The proxy under test runs as a real subprocess (``python -m agentsession proxy``) in front
of a FakeOpenAIServer on 127.0.0.1; tests read what it recorded back from its SQLite file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("starlette", reason="the proxy extra is not installed")
pytest.importorskip("uvicorn", reason="the proxy extra is not installed")

from proxy_harness import READ_TIMEOUT_S, ProxyProcess

from agentsession.testing import FakeOpenAIServer


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    """The fake model server behind the module's proxy."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(
    upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    """One proxy subprocess per module; it must exit 0 on SIGINT at the end."""
    process = ProxyProcess(
        upstream.base_url,
        tmp_path_factory.mktemp("proxy") / "p.db",
        "--read-timeout",
        str(READ_TIMEOUT_S),
        "--log-level",
        "warning",
    )
    yield process
    assert process.stop() == 0, process.log()
