"""A gateway's ``/healthz`` and ``/metrics`` (as every service of the production layout
has, :mod:`crossbook.cluster.health`): healthy while it takes orders; ``last_seq`` is
the last input it has published, ``lag`` how far SQL history is behind it,
``queue_depth`` the WebSocket connections it serves."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crossbook.cluster.health import METRICS_TYPE, Health


class _GatewayView:
    def __init__(self, state: Any) -> None:
        self.state = state

    @property
    def healthy(self) -> bool:
        return bool(self.state.runtime.accepting)

    def metrics(self) -> dict[str, float]:
        state = self.state
        published = float(state.runtime.published_seq)
        projected = float(getattr(state.gateway.projector, "projected_seq", published))
        hub = state.market_streams.hub
        connections: set[Any] = set()
        for subscribers in hub.subscribers.values():
            connections |= subscribers
        return {
            "inputs": published,
            "batches": 0.0,
            "last_seq": published,
            "queue_depth": float(len(connections)),
            "lag": max(0.0, published - projected),
        }


def routes(state: Any, name: str = "gateway") -> list[Route]:
    health = Health(name, _GatewayView(state))

    async def healthz(request: Request) -> Response:
        status, body = health.render_health()
        return Response(body, status_code=status, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(health.render_metrics(), media_type=METRICS_TYPE)

    return [Route("/healthz", healthz), Route("/metrics", metrics)]
