"""The gateway's /healthz and Prometheus /metrics, in both deployments."""

from __future__ import annotations

import httpx

from tests.gateway.conftest import Server


def test_gateway_reports_health_and_metrics(server: Server) -> None:
    health = httpx.get(f"{server.url}/healthz", timeout=5)
    assert health.status_code == 200
    body = health.json()
    assert body["service"] == "gateway" and body["healthy"] is True
    assert body["last_seq"] > 0  # the demo deposits
    metrics = httpx.get(f"{server.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'crossbook_last_seq{service="gateway"}' in metrics.text
    assert 'crossbook_lag{service="gateway"}' in metrics.text
