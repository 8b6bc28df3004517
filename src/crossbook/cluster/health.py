"""Health and Prometheus metrics of a service process (``--metrics-port``).

``GET /healthz`` answers 200 while the service runs (503 once it stopped or failed);
``GET /metrics`` answers the Prometheus text format. Every service reports, labelled
``service="<name>"``:

- ``crossbook_inputs_total``: inputs applied (commands, engine events, log records);
- ``crossbook_batches_total``: batches made durable;
- ``crossbook_last_seq``: the last input seq applied;
- ``crossbook_queue_depth``: work received and not yet durable (accounts: inbox and
  batches waiting for their commit; engine and ledger writer: messages fetched);
- ``crossbook_lag``: how far behind its input it is (engine, ledger writer: messages
  of their input log not yet consumed; accounts: forwarded orders whose engine events
  are not back yet);
- ``crossbook_commit_seconds``: a histogram of commit latency (one JetStream commit,
  or one SQL transaction for the ledger writer).

Rates (commands/s) are ``rate(crossbook_inputs_total[1m])`` in Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

METRICS_TYPE = "text/plain; version=0.0.4"


class Observable(Protocol):
    """What a service offers the metrics endpoint."""

    def metrics(self) -> dict[str, float]: ...

    @property
    def healthy(self) -> bool: ...


class _ServiceCollector(Collector):
    def __init__(self, name: str, service: Observable) -> None:
        self.name = name
        self.service = service

    def collect(self) -> Iterator[Metric]:
        values = self.service.metrics()
        label = [self.name]
        counters = {"inputs": "Inputs applied.", "batches": "Batches made durable."}
        for key, help_text in counters.items():
            family = CounterMetricFamily(f"crossbook_{key}", help_text, labels=["service"])
            family.add_metric(label, values.get(key, 0))
            yield family
        gauges = {
            "last_seq": "The last input seq applied.",
            "queue_depth": "Work received and not yet durable.",
            "lag": "How far behind its input the service is.",
        }
        for key, help_text in gauges.items():
            gauge = GaugeMetricFamily(f"crossbook_{key}", help_text, labels=["service"])
            gauge.add_metric(label, values.get(key, 0))
            yield gauge
        if "snapshots" in values:  # services that publish snapshots for others
            family = CounterMetricFamily(
                "crossbook_snapshots", "Snapshots written.", labels=["service"]
            )
            family.add_metric(label, values["snapshots"])
            yield family
            gauge = GaugeMetricFamily(
                "crossbook_snapshot_seq",
                "The input seq of the newest snapshot.",
                labels=["service"],
            )
            gauge.add_metric(label, values.get("snapshot_seq", 0))
            yield gauge


class Health:
    """The endpoint of one service; ``observe_commit`` feeds the latency histogram."""

    def __init__(self, name: str, service: Observable) -> None:
        self.name = name
        self.service = service
        self.registry = CollectorRegistry()
        self.registry.register(_ServiceCollector(name, service))
        self._commits = Histogram(
            "crossbook_commit_seconds",
            "Commit latency.",
            ["service"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0),
        ).labels(name)
        self._server: asyncio.Server | None = None

    def observe_commit(self, seconds: float) -> None:
        self._commits.observe(seconds)

    def render_metrics(self) -> bytes:
        """The Prometheus text format."""
        return bytes(generate_latest(self.registry))

    def render_health(self) -> tuple[int, bytes]:
        """(HTTP status, JSON body): 200 while healthy, else 503."""
        healthy = self.service.healthy
        body = {"service": self.name, "healthy": healthy, **self.service.metrics()}
        return (200 if healthy else 503), json.dumps(body).encode()

    async def serve(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); returns the port."""
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing here needs them
            parts = request.split()
            path = parts[1].decode() if len(parts) > 1 else ""
            if path == "/metrics":
                status, ctype, body = 200, METRICS_TYPE, self.render_metrics()
            elif path == "/healthz":
                status, body = self.render_health()
                ctype = "application/json"
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


def metrics_of(stats: Any, **extra: float) -> dict[str, float]:
    """The common keys from a service's stats object."""
    return {
        "inputs": float(getattr(stats, "inputs", 0)),
        "batches": float(getattr(stats, "batches", 0)),
        "last_seq": float(getattr(stats, "last_seq", 0)),
        **extra,
    }
