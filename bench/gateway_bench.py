"""Gateway benchmarks against a real server started here (``crossbook run --demo``).

``rest``: signed Binance-API order entry over loopback from C concurrent keep-alive
connections (a minimal HTTP/1.1 client, so the client is not the bottleneck): orders
per second and latency percentiles (request sent -> response read).
``ws``: N WebSocket clients subscribed to depth and trades while the demo market maker
trades; delivery latency (event time -> received), and server memory per connection.

``--deployment``: ``embedded`` (``crossbook run``, the default), ``cluster``
(``crossbook cluster``: every service its own process, over JetStream) or ``sharded``
(that with two accounts shards).

Prints one JSON line per mode. Usage: python bench/gateway_bench.py [rest|ws|all]
       [--seconds S] [--connections C] [--clients N] [--deployment D]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gateway.conftest import start_server, stop_server  # noqa: E402


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def rest_worker(host: str, port: int, user: dict[str, Any], deadline: float,
                      latencies: list[float], seed: int) -> int:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    rng = random.Random(seed)
    secret = user["secret"].encode()
    done = 0
    while time.perf_counter() < deadline:
        side = "BUY" if rng.random() < 0.5 else "SELL"
        price = 50_000 + rng.randint(-20, 20)
        body = (f"symbol=BTCUSDT&side={side}&type=LIMIT&timeInForce=GTC&quantity=0.00100"
                f"&price={price}.00&newOrderRespType=ACK&timestamp={int(time.time() * 1000)}")  # fmt: skip
        sig = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        payload = f"{body}&signature={sig}".encode()
        request = (
            f"POST /api/v3/order HTTP/1.1\r\nHost: {host}\r\nX-MBX-APIKEY: {user['apiKey']}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        t0 = time.perf_counter()
        writer.write(request)
        status = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append((time.perf_counter() - t0) * 1e6)
        if not status.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"order failed: {status!r}")
        done += 1
    writer.close()
    return done


async def bench_rest(server: Any, seconds: float, connections: int) -> dict[str, Any]:
    host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
    users = server.users
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    counts = await asyncio.gather(*(
        rest_worker(host, port, users[i % len(users)], deadline, latencies, i)
        for i in range(connections)
    ))  # fmt: skip
    elapsed = time.perf_counter() - started
    total = sum(counts)
    return {
        "mode": "rest_order_entry", "connections": connections, "orders": total,
        "orders_per_s": round(total / elapsed), "p50_us": pct(latencies, 0.5),
        "p99_us": pct(latencies, 0.99), "server_rss_mb": round(rss_kb(server.proc.pid) / 1024, 1),
    }  # fmt: skip


class _WsClient(asyncio.Protocol):
    """A minimal WebSocket client (RFC 6455) for the fan-out benchmark: a library client
    costs the shared CPU more than the server does per message. It sends one masked
    SUBSCRIBE and reads unmasked text frames, timing each message that carries ``E``."""

    def __init__(self, host: str, port: int, samples: list[tuple[str, float]],
                 start_at: float, ready: asyncio.Event) -> None:  # fmt: skip
        self.host, self.port = host, port
        self.samples, self.start_at, self.ready = samples, start_at, ready
        self.buf = b""
        self.upgraded = False

    def connection_made(self, transport: Any) -> None:
        import base64

        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def _send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        n = len(payload)
        header = (
            bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
        )
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.buf = self.buf[end + 4 :]
            self.upgraded = True
            self._send_text(json.dumps({"method": "SUBSCRIBE", "id": 1,
                                        "params": ["btcusdt@depth@100ms", "btcusdt@trade"]}))  # fmt: skip
        buf = self.buf
        off = 0
        while len(buf) - off >= 2:
            n = buf[off + 1] & 0x7F
            start = off + 2
            if n == 126:
                if len(buf) - off < 4:
                    break
                n = int.from_bytes(buf[off + 2 : off + 4], "big")
                start = off + 4
            elif n == 127:
                if len(buf) - off < 10:
                    break
                n = int.from_bytes(buf[off + 2 : off + 10], "big")
                start = off + 10
            if len(buf) < start + n:
                break
            payload = buf[start : start + n]
            off = start + n
            if payload.startswith(b'{"result"'):
                self.ready.set()
                continue
            now = time.time()
            if now < self.start_at:
                continue
            i = payload.find(b'"E":')
            if i >= 0:
                j = payload.find(b",", i)
                kind = (
                    payload[6 : payload.find(b'"', 6)].decode()
                    if payload.startswith(b'{"e":"')
                    else "?"
                )
                self.samples.append((kind, now * 1000 - int(payload[i + 4 : j])))
        self.buf = buf[off:]


def _ws_worker(ws_url: str, clients: int, seconds: float, start_at: float, out: Any) -> None:
    """One client process with ``clients`` connections; reports (kind, latency ms)."""
    host, port = ws_url.removeprefix("ws://").split(":")
    samples: list[tuple[str, float]] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        transports = []
        for _i in range(clients):
            ready = asyncio.Event()
            t, _ = await loop.create_connection(
                lambda ready=ready: _WsClient(host, int(port), samples, start_at, ready),
                host,
                int(port),
            )
            transports.append(t)
            await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(max(0.0, start_at - time.time()) + seconds)
        for t in transports:
            t.close()

    asyncio.run(run())
    out.put(samples)


async def bench_ws(server: Any, seconds: float, clients: int, processes: int = 2) -> dict[str, Any]:
    """``clients`` connections spread over ``processes`` client processes."""
    import multiprocessing as mp

    before = rss_kb(server.proc.pid)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 8 + clients / 400  # after every client is connected
    procs = [
        ctx.Process(
            target=_ws_worker, args=(server.ws_url, clients // processes, seconds, start_at, out)
        )
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    connected = rss_kb(server.proc.pid)
    samples: list[tuple[str, float]] = []
    for _ in procs:
        samples += await asyncio.to_thread(out.get)
    for proc in procs:
        proc.join()
    latencies = [latency for _, latency in samples]
    by_kind: dict[str, list[float]] = {}
    for kind, latency in samples:
        by_kind.setdefault(kind, []).append(latency)
    return {
        "mode": "ws_fanout", "clients": clients, "client_processes": processes,
        "messages": len(samples), "messages_per_s": round(len(samples) / seconds),
        "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99),
        "server_kb_per_connection": round((connected - before) / clients, 1),
        **{f"{k}_p99_ms": pct(v, 0.99) for k, v in sorted(by_kind.items())},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="all", choices=["rest", "ws", "all"])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=96)
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--deployment", default="embedded", choices=["embedded", "cluster", "sharded"])
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    if args.mode in ("rest", "all"):
        data = Path(tempfile.mkdtemp(prefix="crossbook-bench-")) / "data"
        server = start_server(data, extra=["--no-rate-limits"], deployment=args.deployment)
        try:
            result = asyncio.run(bench_rest(server, args.seconds, args.connections))
            print(json.dumps({**result, "deployment": args.deployment}), flush=True)
        finally:
            stop_server(server)
    if args.mode in ("ws", "all"):
        data = Path(tempfile.mkdtemp(prefix="crossbook-bench-")) / "data"
        server = start_server(
            data, market_maker=True, extra=["--no-rate-limits"], deployment=args.deployment
        )
        try:
            result = asyncio.run(bench_ws(server, args.seconds, args.clients))
            print(json.dumps({**result, "deployment": args.deployment}), flush=True)
        finally:
            stop_server(server)
    os._exit(0)


if __name__ == "__main__":
    main()
