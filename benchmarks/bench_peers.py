"""Per-call overhead of agentsession side by side with Langfuse, OpenInference and LangSmith.

One run on one machine. Each (variant, repeat) runs in a process of its own
(``_peers_child.py``), which times bare calls and calls with the variant on in alternating
rounds, so that each overhead is variant - bare measured in the same process and no peer's
global hooks or export threads reach another's measurement. The repeats interleave the
variants; the table gives, per row, the median overhead over the repeats with its min-max, and
its ratio to ours. Workloads: LangChain ``FakeListChatModel.invoke`` and a 3-step
``prompt | model | parser`` chain, LlamaIndex ``MockLLM.chat``, an AutoGen ``AssistantAgent``
run answered by ``ReplayChatCompletionClient``. Peers that export over the network are pointed
at a closed port on 127.0.0.1 (a dead endpoint); nothing leaves the machine.

Goals: ours adds at most 1.5x the overhead of a no-op handler, and at most 0.2x the overhead
of the cheapest peer. A missed goal prints MISS and still exits 0; a failure exits 1.

    python benchmarks/bench_peers.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

CHILD = Path(__file__).with_name("_peers_child.py")
NOOP_GOAL = 1.5
PEER_GOAL = 0.2
CHILD_TIMEOUT_S = 300
PACKAGES = (
    "agentsession",
    "agentsession-langchain",
    "agentsession-llamaindex",
    "agentsession-autogen",
    "langchain-core",
    "llama-index-core",
    "autogen-agentchat",
    "autogen-ext",
    "langfuse",
    "langsmith",
    "openinference-instrumentation-langchain",
    "openinference-instrumentation-llama-index",
    "opentelemetry-sdk",
)


@dataclass(frozen=True)
class Row:
    """One variant of one workload as the table shows it."""

    variant: str  # the child's variant name
    label: str
    role: str  # "noop", "ours", "peer" or "extra"


LANGCHAIN_ROWS = [
    Row("lc.noop", "no-op callback handler", "noop"),
    Row("lc.ours", "ours: SessionCallbackHandler -> SQLite", "ours"),
    Row("lc.langfuse", "Langfuse CallbackHandler, dead endpoint", "peer"),
    Row("lc.openinference", "OpenInference, BatchSpanProcessor+memory", "peer"),
    Row("lc.langsmith", "LangSmith LangChainTracer, dead endpoint", "peer"),
]
# Workload (as the child names it) -> its title and its rows, in the table's order.
WORKLOADS: dict[str, tuple[str, list[Row]]] = {
    "lc.invoke": ("LangChain FakeListChatModel.invoke", LANGCHAIN_ROWS),
    "lc.chain": ("LangChain prompt | model | parser", LANGCHAIN_ROWS),
    "li.chat": (
        "LlamaIndex MockLLM.chat",
        [
            Row("li.noop", "no-op event + span handlers", "noop"),
            Row("li.ours", "ours: instrument() -> SQLite", "ours"),
            Row("li.openinference", "OpenInference, BatchSpanProcessor+memory", "peer"),
        ],
    ),
    "ag.run": (
        "AutoGen AssistantAgent.run, ReplayChatCompletionClient",
        [
            Row("ag.wrapper", "ours: SessionChatCompletionClient -> SQLite", "ours"),
            Row("ag.instrument", "ours: instrument() -> SQLite", "extra"),
        ],
    ),
}


@dataclass
class Measured:
    """One row's figures over the repeats, in microseconds."""

    bare: list[float]
    on: list[float]
    check: str

    @property
    def overheads(self) -> list[float]:
        return [on - bare for bare, on in zip(self.bare, self.on, strict=True)]

    @property
    def overhead(self) -> float:
        return statistics.median(self.overheads)


def dead_endpoint() -> str:
    """A URL on 127.0.0.1 where nothing listens: a port the kernel gave out, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def child_environment(endpoint: str) -> dict[str, str]:
    """The environment without any tracing setting of the caller's, every peer on ``endpoint``.

    Both LangSmith and Langfuse read their host from the environment as well as from their
    arguments: both are pinned here, so that no default host can ever be used.
    """
    prefixes = ("LANGSMITH_", "LANGCHAIN_", "LANGFUSE_", "OTEL_", "AGENTSESSION_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {
            "BENCH_PEERS_DEAD_ENDPOINT": endpoint,
            # No global LangChain tracer: bare must be bare. The tracer is passed explicitly.
            "LANGSMITH_TRACING": "false",
            "LANGSMITH_ENDPOINT": endpoint,
            "LANGSMITH_API_KEY": "bench",
            "LANGSMITH_OTEL_ENABLED": "false",
            "LANGFUSE_BASE_URL": endpoint,
            "LANGFUSE_HOST": endpoint,
            "LANGFUSE_PUBLIC_KEY": "pk-lf-bench",
            "LANGFUSE_SECRET_KEY": "sk-lf-bench",
            "LANGFUSE_MEDIA_UPLOAD_ENABLED": "false",
            "OTEL_SDK_DISABLED": "false",
            "PYTHONHASHSEED": "0",
        }
    )
    return env


def run_child(variant: str, calls: int, rounds: int, env: dict[str, str]) -> dict[str, object]:
    command = [sys.executable, str(CHILD), variant, "--calls", str(calls), "--rounds", str(rounds)]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{variant} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def machine() -> list[str]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as info:
        kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"date: {now}",
        f"machine: {cpu}, nproc {len(os.sched_getaffinity(0))}, {kib / 1024**2:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"python: {platform.python_version()} ({platform.python_implementation()})",
        "packages: " + ", ".join(versions),
    ]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for CI smoke runs")
    args = parser.parse_args()
    repeats, calls, rounds = (2, 60, 2) if args.quick else (7, 200, 4)
    endpoint = dead_endpoint()
    env = child_environment(endpoint)
    variants = sorted({row.variant for _, rows in WORKLOADS.values() for row in rows})

    for line in machine():
        print(line)
    print(f"load average at start: {load()}")
    started = time.monotonic()
    raw: dict[str, list[dict[str, object]]] = {variant: [] for variant in variants}
    try:
        for repeat in range(repeats):
            # A different order each repeat, so that no variant always runs after the same one.
            shift = (repeat * 3) % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                raw[variant].append(run_child(variant, calls, rounds, env))
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started

    table = collect(raw)
    print(
        f"\n{repeats} processes per row (repeats interleaved), each timing {rounds} rounds x "
        f"{calls} bare calls and {calls} calls with the variant on; per process the median "
        f"call; overhead = with - bare in the same process; median (min-max) over the "
        f"processes; 'x ours' = the row's overhead / ours. Microseconds, timer included."
    )
    print(f"dead endpoint: {endpoint} (a closed port); total {elapsed:.0f} s")
    failed = report(table)
    print(f"load average at end: {load()}")
    goals(table)
    return 1 if failed else 0


def collect(raw: dict[str, list[dict[str, object]]]) -> dict[str, dict[str, Measured]]:
    table: dict[str, dict[str, Measured]] = {}
    for workload, (_, rows) in WORKLOADS.items():
        table[workload] = {}
        for row in rows:
            runs = raw[row.variant]
            figures = [run["results"][workload] for run in runs]  # type: ignore[index]
            checks = sorted({str(run["check"]) for run in runs})
            connects = [int(str(run["connects"])) for run in runs if run["connects"] is not None]
            if connects:
                tries = {min(connects), max(connects)}
                checks.append(f"dead endpoint tried {'-'.join(map(str, sorted(tries)))}x")
            table[workload][row.variant] = Measured(
                bare=[float(f["bare"]) for f in figures],
                on=[float(f["on"]) for f in figures],
                check=", ".join(checks),
            )
    return table


def report(table: dict[str, dict[str, Measured]]) -> bool:
    """Print the table; True if a variant's check failed."""
    failed = False
    print(f"\n{'':46}{'bare':>8}{'with':>9}{'overhead (min-max)':>23}{'x ours':>8}  recorded")
    for workload, (title, rows) in WORKLOADS.items():
        print(title)
        ours = next(table[workload][r.variant].overhead for r in rows if r.role == "ours")
        for row in rows:
            m = table[workload][row.variant]
            spread = f"{m.overhead:8.1f} ({min(m.overheads):6.1f}-{max(m.overheads):6.1f})"
            times = ratio(m.overhead, ours)
            print(
                f"  {row.label:44}{statistics.median(m.bare):8.1f}{statistics.median(m.on):9.1f}"
                f"{spread:>23}{times:>8}  {m.check}"
            )
            failed = failed or "FAIL" in m.check
    return failed


def ratio(value: float, over: float) -> str:
    return f"{value / over:.2f}x" if over > 0 else "n/a"


def goals(table: dict[str, dict[str, Measured]]) -> None:
    print(f"\ngoal: ours' overhead <= {NOOP_GOAL}x the no-op handler's")
    for workload, (title, rows) in WORKLOADS.items():
        by_role = {row.role: table[workload][row.variant] for row in rows}
        if "noop" not in by_role:
            continue
        ours, noop = by_role["ours"], by_role["noop"]
        times = ours.overhead / noop.overhead if noop.overhead > 0 else float("inf")
        call = statistics.median(ours.on) / statistics.median(noop.on)
        verdict = "PASS" if times <= NOOP_GOAL else "MISS"
        print(
            f"  {title:38} {ours.overhead:7.1f} / {noop.overhead:6.1f} us = {times:5.2f}x "
            f"{verdict}   (whole call with ours / with no-op: {call:.2f}x)"
        )
    print(f"goal: ours' overhead <= {PEER_GOAL}x the best peer's")
    for workload, (title, rows) in WORKLOADS.items():
        peers = [row for row in rows if row.role == "peer"]
        if not peers:
            continue
        mine = next(table[workload][r.variant].overhead for r in rows if r.role == "ours")
        best = min(peers, key=lambda row: table[workload][row.variant].overhead)
        best_overhead = table[workload][best.variant].overhead
        times = mine / best_overhead if best_overhead > 0 else float("inf")
        verdict = "PASS" if times <= PEER_GOAL else "MISS"
        print(
            f"  {title:38} {mine:7.1f} / {best_overhead:6.1f} us = {times:5.2f}x {verdict}"
            f"   (best peer: {best.label.split(',')[0]})"
        )


if __name__ == "__main__":
    sys.exit(main())
