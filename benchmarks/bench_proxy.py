"""What the recording proxy adds: latency and throughput against calling the upstream directly.

Starts a fast OpenAI-shaped upstream (a bare asyncio HTTP/1.1 server answering canned chat
completions, streamed or not) and ``agentsession proxy`` in front of it, each in its own
process, recording into SQLite. A keep-alive asyncio client then measures, in one run:

- latency of one client calling sequentially, direct and through the proxy (p50, p99), so the
  difference is what the proxy adds;
- requests/s with 50 concurrent clients, direct and through the proxy;

each for non-streaming and streaming (SSE, 10 chunks with usage) chat completions. Every
proxied request carries a session id and a state header, so every one is recorded.
Goals: p50 added latency at most 2 ms; at least 1,000 requests/s on 2 cores. Client,
upstream and proxy share this machine's CPUs: the numbers include that contention.

    python benchmarks/bench_proxy.py [--quick] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

ADDED_P50_GOAL_MS = 2.0
THROUGHPUT_GOAL_RPS = 1_000.0
CONCURRENCY = 50
STREAM_CHUNKS = 10


# -- the fast upstream (runs in its own process: --serve-upstream PORT) ------------------------


def _canned_responses() -> tuple[bytes, bytes]:
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    completion = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the bench."},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    ).encode()
    whole = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(completion)).encode() + b"\r\n\r\n" + completion
    )
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"content": f"word{i} "}}]}
        for i in range(STREAM_CHUNKS)
    ]
    events.append({**base, "choices": [], "usage": usage})
    pieces = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    pieces.append(b"data: [DONE]\n\n")
    chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)
    streamed = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    )
    return whole, streamed


class _UpstreamProtocol(asyncio.Protocol):
    """Answers each request on a keep-alive connection with a canned completion."""

    whole, streamed = _canned_responses()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.streamed if b'"stream":true' in body else self.whole)


def serve_upstream(port: int) -> None:
    _use_uvloop()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_UpstreamProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


# -- the client ------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection sending the same request again and again."""

    answered: dict[int, int] = {}  # noqa: RUF012 - answers per port, over every connection

    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def call(self) -> float:
        """Send the request, read the whole answer; return the seconds it took."""
        started = time.perf_counter()
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:200]!r}")
        lowered = head.lower()
        at = lowered.find(b"content-length:")
        if at >= 0:
            await self.reader.readexactly(int(lowered[at + 15 : lowered.find(b"\r\n", at)]))
        else:  # chunked
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        Connection.answered[self.port] = Connection.answered.get(self.port, 0) + 1
        return time.perf_counter() - started

    def close(self) -> None:
        self.writer.close()


def build_request(port: int, *, stream: bool, session_id: str | None) -> bytes:
    payload: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a travel agent."},
            {"role": "user", "content": "Book a flight to Paris for two next Friday."},
        ],
    }
    if stream:
        payload.update(stream=True, stream_options={"include_usage": True})
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Authorization: Bearer sk-bench-not-a-key",
        f"Content-Length: {len(body)}",
    ]
    if session_id is not None:
        headers += [f"X-TraceForge-Session-ID: {session_id}", 'X-TraceForge-State: {"turn":1}']
    return ("POST /v1/chat/completions HTTP/1.1\r\n" + "\r\n".join(headers)).encode() + (
        b"\r\n\r\n" + body
    )


async def sequential_latency(
    direct_port: int, proxy_port: int, *, stream: bool, calls: int, rounds: int
) -> tuple[list[float], list[float]]:
    """Latency samples (ms) of one client, alternating direct and proxied rounds."""
    direct = await Connection(
        direct_port, build_request(direct_port, stream=stream, session_id=None)
    ).open()
    proxied = await Connection(
        proxy_port, build_request(proxy_port, stream=stream, session_id=f"bench-latency-{stream}")
    ).open()
    samples: tuple[list[float], list[float]] = ([], [])
    for connection in (direct, proxied):  # warm up both paths
        for _ in range(100):
            await connection.call()
    for _ in range(rounds):
        for connection, into in ((direct, samples[0]), (proxied, samples[1])):
            into.extend([1000 * await connection.call() for _ in range(calls)])
    direct.close()
    proxied.close()
    return samples


async def throughput(port: int, *, stream: bool, proxied: bool, seconds: float) -> float:
    """Requests/s of CONCURRENCY clients, each on its own connection, for ``seconds``."""
    connections = [
        await Connection(
            port,
            build_request(
                port, stream=stream, session_id=f"bench-load-{stream}-{i}" if proxied else None
            ),
        ).open()
        for i in range(CONCURRENCY)
    ]
    done = 0

    async def worker(connection: Connection, until: float) -> None:
        nonlocal done
        while time.perf_counter() < until:
            await connection.call()
            done += 1

    await asyncio.gather(*(worker(c, time.perf_counter() + 0.5) for c in connections))  # warm-up
    done = 0
    started = time.perf_counter()
    await asyncio.gather(*(worker(c, started + seconds) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return done / elapsed


# -- orchestration ---------------------------------------------------------------------------


def _use_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a benchmark server exited at start-up ({process.args})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} was not open after {timeout_s} s")


def percentile(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100)[p - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, for CI smoke runs")
    parser.add_argument("--seconds", type=float, default=None, help="length of each load run")
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream is not None:
        serve_upstream(args.serve_upstream)
        return 0
    seconds = args.seconds or (1.5 if args.quick else 5.0)
    calls, rounds = (100, 3) if args.quick else (400, 5)

    upstream_port, proxy_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSESSION_")}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        upstream = subprocess.Popen(
            [sys.executable, __file__, "--serve-upstream", str(upstream_port)]
        )
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentsession",
                "proxy",
                "--upstream",
                f"http://127.0.0.1:{upstream_port}/v1",
                "--port",
                str(proxy_port),
                "--backend",
                f"sqlite:///{db}",
                "--log-level",
                "warning",
            ],
            env=env,
        )
        try:
            wait_for_port(upstream_port, upstream)
            wait_for_port(proxy_port, proxy)
            uvloop_used = _use_uvloop()
            results = asyncio.run(measure(upstream_port, proxy_port, calls, rounds, seconds))
        finally:
            proxy.send_signal(signal.SIGINT)
            proxy_exit = proxy.wait(60)
            upstream.kill()
            upstream.wait(10)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]

    report(results, uvloop_used, seconds)
    proxied = Connection.answered.get(proxy_port, 0)
    print(
        f"proxy exit code after SIGINT: {proxy_exit}; steps stored in SQLite: {stored} "
        f"of {proxied} proxied requests"
    )
    return 0


async def measure(
    upstream_port: int, proxy_port: int, calls: int, rounds: int, seconds: float
) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    for stream in (False, True):
        direct, proxied = await sequential_latency(
            upstream_port, proxy_port, stream=stream, calls=calls, rounds=rounds
        )
        results["streaming" if stream else "non-streaming"] = {
            "direct": direct,
            "proxied": proxied,
            "direct_rps": await throughput(
                upstream_port, stream=stream, proxied=False, seconds=seconds
            ),
            "proxied_rps": await throughput(
                proxy_port, stream=stream, proxied=True, seconds=seconds
            ),
        }
    return results


def report(results: dict[str, dict[str, object]], uvloop_used: bool, seconds: float) -> None:
    print(
        f"{os.cpu_count()} CPUs shared by client, upstream and proxy; Python "
        f"{sys.version.split()[0]}; client loop: {'uvloop' if uvloop_used else 'asyncio'}"
    )
    print(
        f"{'':14} {'direct p50':>10} {'p99':>7} {'proxy p50':>10} {'p99':>7} "
        f"{'added p50':>10} {'p99':>7}   (ms, one client)"
    )
    verdicts = []
    for name, result in results.items():
        direct, proxied = result["direct"], result["proxied"]
        assert isinstance(direct, list)
        assert isinstance(proxied, list)
        d50, d99 = statistics.median(direct), percentile(direct, 99)
        p50, p99 = statistics.median(proxied), percentile(proxied, 99)
        print(
            f"{name:14} {d50:10.3f} {d99:7.3f} {p50:10.3f} {p99:7.3f} "
            f"{p50 - d50:10.3f} {p99 - d99:7.3f}"
        )
        verdicts.append((name, p50 - d50))
    print(f"requests/s with {CONCURRENCY} concurrent clients, {seconds:g} s each:")
    for name, result in results.items():
        direct_rps, proxied_rps = result["direct_rps"], result["proxied_rps"]
        assert isinstance(direct_rps, float)
        assert isinstance(proxied_rps, float)
        print(
            f"  {name:14} direct {direct_rps:8.0f}   proxy {proxied_rps:8.0f}   "
            f"ratio proxy/direct {proxied_rps / direct_rps:5.2f}"
        )
        verdicts.append((f"{name} rps", proxied_rps))
    for name, value in verdicts:
        if name.endswith("rps"):
            ok = value >= THROUGHPUT_GOAL_RPS
            print(
                f"goal >= {THROUGHPUT_GOAL_RPS:.0f} req/s, {name}: {value:.0f} -> "
                f"{'met' if ok else 'MISSED'}"
            )
        else:
            ok = value <= ADDED_P50_GOAL_MS
            print(
                f"goal added p50 <= {ADDED_P50_GOAL_MS} ms, {name}: {value:.3f} ms -> "
                f"{'met' if ok else 'MISSED'}"
            )


if __name__ == "__main__":
    sys.exit(main())
