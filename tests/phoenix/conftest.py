"""The Phoenix proof's fixtures: a real Phoenix server, shared by the module (it takes ~20 s to
start), in a temporary working directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from phoenix_server import PhoenixServer, phoenix_server


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """A running ``phoenix serve`` on 127.0.0.1, stopped at the end of the run."""
    with phoenix_server(tmp_path_factory.mktemp("phoenix")) as server:
        yield server
