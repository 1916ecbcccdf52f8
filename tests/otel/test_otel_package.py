"""agentsession.otel as a package: its public names, the extras, backend URLs, and the core
working (and saying what to install) without OpenTelemetry."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import agentsession
import agentsession.otel
from agentsession import backend_from_url
from agentsession.otel import OTelBackend

CORE_PYPROJECT = Path(__file__).parents[2] / "packages" / "agentsession" / "pyproject.toml"

# Makes every ``opentelemetry`` import fail, as in an environment without the otel extra.
WITHOUT_OTEL = textwrap.dedent(
    """
    import importlib.abc, sys
    class NoOpenTelemetry(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None
    sys.meta_path.insert(0, NoOpenTelemetry())
    """
)


def _run(code: str, *, without_otel: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = WITHOUT_OTEL if without_otel else ""
    return subprocess.run(
        [sys.executable, "-c", prefix + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists every public name of agentsession.otel, lazy ones included."""
    names = agentsession.otel.__all__
    assert names == sorted(names)
    defined = {
        name
        for name, value in vars(agentsession.otel).items()
        if not name.startswith("_") and name not in ("annotations", "TYPE_CHECKING")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "agentsession.otel").startswith("agentsession.otel")
    }  # fmt: skip
    lazy = {"OTelBackend", "SessionSampler", "SessionSpanProcessor"}
    assert set(names) == defined | lazy
    for name in names:
        assert getattr(agentsession.otel, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    """Asking agentsession.otel for a name it does not have fails as usual."""
    with pytest.raises(AttributeError):
        agentsession.otel.NoSuchThing  # noqa: B018


def _extra(name: str) -> set[str]:
    """The distributions an extra of the core's pyproject.toml lists (one-line lists there)."""
    line = re.search(rf"^{re.escape(name)} = \[(.*)\]$", CORE_PYPROJECT.read_text(), re.M)
    assert line is not None, f"no one-line extra {name!r}"
    return {re.split(r"[<>=!~; ]", r, maxsplit=1)[0] for r in re.findall(r'"([^"]+)"', line[1])}


def test_the_extras_install_the_sdk_and_the_exporters() -> None:
    """The ``otel`` extra brings the SDK and OTLP/HTTP, ``otel-grpc`` the SDK and OTLP/gRPC."""
    assert _extra("otel") == {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"}
    assert _extra("otel-grpc") == {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc"}
    assert agentsession.otel.INSTALL_HINT == "pip install 'agentsession[otel]'"


def test_importing_agentsession_never_imports_opentelemetry() -> None:
    """``import agentsession`` and opening a SQLite backend leave OpenTelemetry unimported."""
    result = _run(
        """
        import sys, tempfile, agentsession
        agentsession.backend_from_url("sqlite:///" + tempfile.mkdtemp() + "/x.db").close()
        import agentsession.otel  # the package itself imports nothing of OpenTelemetry either
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_opentelemetry_the_core_works_and_otel_says_what_to_install() -> None:
    """Without the extra: the core records, is_session_sampled works, and asking for the
    backend (by class or URL) raises ImportError naming the extra."""
    result = _run(
        """
        import agentsession
        from agentsession import SessionTracker, MemoryBackend
        from agentsession.otel import is_session_sampled
        memory = MemoryBackend()
        with SessionTracker("conv-no-otel-1", backend=memory) as s, s.begin_step() as step:
            step.end("ok")
        assert agentsession.flush(5.0)
        assert len(memory.list_steps("conv-no-otel-1")) == 1
        assert is_session_sampled("conv-no-otel-1", 1.0)
        for attempt in (
            lambda: agentsession.otel.OTelBackend,
            lambda: agentsession.backend_from_url("otlp+http://127.0.0.1:4318/v1/traces"),
        ):
            try:
                attempt()
            except ImportError as exc:
                print(exc)
            else:
                raise SystemExit("no ImportError")
        """,
        without_otel=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "pip install 'agentsession[otel]'" in line
        assert "opentelemetry" in line


def test_an_otlp_default_backend_without_opentelemetry_drops_and_counts() -> None:
    """AGENTSESSION_BACKEND_URL naming a collector without the extra never breaks the app."""
    result = _run(
        """
        import agentsession
        agentsession.configure(backend_url="otlp+http://127.0.0.1:4318/v1/traces")
        with agentsession.SessionTracker("conv-no-otel-2") as s, s.begin_step() as step:
            step.end("ok")
        assert agentsession.flush(5.0)
        stats = agentsession.get_stats()
        print(stats["faults.backend.open"], stats["dropped.backend_unavailable"])
        """,
        without_otel=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "3"]  # the start, the step and the end events
    assert "pip install 'agentsession[otel]'" in result.stderr


@pytest.mark.parametrize(
    ("url", "endpoint", "protocol", "sample_rate", "timeout_s"),
    [
        ("otlp+http://127.0.0.1:6006/v1/traces", "http://127.0.0.1:6006/v1/traces",
         "http/protobuf", 1.0, 5.0),
        ("otlp+http://collector:4318", "http://collector:4318/v1/traces", "http/protobuf",
         1.0, 5.0),
        ("otlp+http://collector:4318/", "http://collector:4318/v1/traces", "http/protobuf",
         1.0, 5.0),
        ("otlp+https://cloud.example/api/public/otel/v1/traces?sample_rate=0.25&timeout_s=2",
         "https://cloud.example/api/public/otel/v1/traces", "http/protobuf", 0.25, 2.0),
        ("otlp+grpc://127.0.0.1:4317", "http://127.0.0.1:4317", "grpc", 1.0, 5.0),
        ("OTLP+GRPCS://collector:4317?sample_rate=0", "https://collector:4317", "grpc", 0.0, 5.0),
    ],
)  # fmt: skip
def test_backend_urls_name_the_collector_and_options(
    url: str, endpoint: str, protocol: str, sample_rate: float, timeout_s: float
) -> None:
    """Each otlp+ scheme maps to its endpoint and protocol; the query sets our options."""
    if protocol == "grpc":
        pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc", reason="otel-grpc extra")
    backend = backend_from_url(url)
    assert isinstance(backend, OTelBackend)
    assert (backend.endpoint, backend.protocol) == (endpoint, protocol)
    assert (backend.sample_rate, backend.timeout_s) == (sample_rate, timeout_s)
    assert endpoint in repr(backend)
    backend.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("otlp+http://127.0.0.1:4318/v1/traces?rate=0.5", "unknown option 'rate'"),
        ("otlp+http://127.0.0.1:4318/v1/traces?timeout_s=soon", "must be a number"),
        ("otlp+http:///v1/traces", "otlp+http://host:port"),
    ],
)
def test_bad_backend_urls_say_what_is_wrong(url: str, message: str) -> None:
    """An unknown option, a non-number or a missing host is a ValueError naming it."""
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        backend_from_url(url)


def test_a_provider_and_an_endpoint_are_not_both_accepted() -> None:
    """tracer_provider excludes endpoint/exporter; protocol and timeout are checked."""
    with pytest.raises(ValueError, match="not both"):
        OTelBackend("http://127.0.0.1:4318/v1/traces", tracer_provider=TracerProvider())
    with pytest.raises(ValueError, match="protocol"):
        OTelBackend(protocol="thrift")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        OTelBackend(timeout_s=0)


def test_a_provider_given_is_flushed_not_shut_down() -> None:
    """close() leaves the application's own provider usable."""
    provider = TracerProvider()
    backend = OTelBackend(tracer_provider=provider)
    backend.close()
    with provider.get_tracer("app").start_as_current_span("still works") as span:
        assert span.is_recording()
    provider.shutdown()


def test_the_backend_satisfies_the_writer_protocol() -> None:
    """OTelBackend is a SessionWriter (write-only: nothing to read back)."""
    backend = OTelBackend(tracer_provider=TracerProvider())
    assert isinstance(backend, agentsession.SessionWriter)
    assert not isinstance(backend, agentsession.SessionReader)
