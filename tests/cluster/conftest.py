"""Fixtures: a private nats-server (JetStream) per test, stopped by PID."""

from __future__ import annotations

from tests.bus.conftest import nats_cluster, nats_server

__all__ = ["nats_cluster", "nats_server"]
