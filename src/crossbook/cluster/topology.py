"""Names of the logs and subjects of a deployment, and where each service keeps its files."""

from __future__ import annotations

from pathlib import Path

REQUEST_PREFIX = "cb.svc"


def accounts_log(shard: int) -> str:
    """The input and output log of accounts shard ``shard``."""
    return f"accounts-{shard}"


def orders_log(market: str, shard: int = 0) -> str:
    """The order commands accounts shard ``shard`` forwards to ``market``'s engine
    (``orders-SYMBOL`` for shard 0, ``orders-SYMBOL-K`` for the others)."""
    return f"orders-{market}" if shard == 0 else f"orders-{market}-{shard}"


def engine_log(market: str) -> str:
    """The input and output log of ``market``'s engine."""
    return f"engine-{market}"


def submit_subject(shard: int) -> str:
    """Where gateways send commands for accounts shard ``shard`` (request/reply)."""
    return f"{REQUEST_PREFIX}.accounts.{shard}.submit"


def service_dir(data_dir: Path, log: str) -> Path:
    """A service's own files (snapshots) under the deployment's data dir."""
    return data_dir / "services" / log
