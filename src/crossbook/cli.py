"""The ``crossbook`` command line: ``replay`` and ``bench``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Crossbook: an open-source cryptocurrency exchange.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
service_app = typer.Typer(
    help="Run one service of the production layout (NATS JetStream).", no_args_is_help=True
)
app.add_typer(service_app, name="service")

console = Console(stderr=True)


@app.callback()
def main() -> None:
    """Crossbook: an open-source cryptocurrency exchange."""


def _graceful_server_class() -> type:
    import contextlib
    import signal
    import threading
    from collections.abc import Iterator

    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, except that a completed SIGINT/SIGTERM shutdown (journal
        flushed, state saved) exits with status 0 instead of re-raising the signal."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return GracefulServer


@app.command()
def run(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the exchange keeps its data.")
    ] = Path("data"),
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="Demo users, funds and a market maker.")
    ] = False,
    market_maker: Annotated[bool, typer.Option("--market-maker/--no-market-maker")] = True,
    fsync: Annotated[bool, typer.Option("--fsync/--no-fsync", help="fsync each batch.")] = True,
    rate_limits: Annotated[
        bool, typer.Option("--rate-limits/--no-rate-limits", help="Request weight limits.")
    ] = True,
    orders_per_second: Annotated[
        int, typer.Option("--orders-per-second", help="Order placements per API key.")
    ] = 50,
    rate_limit_storage: Annotated[
        str,
        typer.Option(
            "--rate-limit-storage",
            envvar="CROSSBOOK_RATE_LIMIT_STORAGE",
            help="Where counters live: memory:// (this process) or a Redis URL "
            "(redis://HOST:PORT, shared by every gateway using it).",
        ),
    ] = "memory://",
) -> None:
    """Start the whole exchange in one process (REST + WebSocket on one port)."""
    from crossbook.gateway.app import create_app
    from crossbook.logs import configure_logging
    from crossbook.service import CONFIG_FILE, load_config

    if (data_dir / CONFIG_FILE).exists():
        shards = load_config(data_dir).exchange.accounts_shards
        if shards != 1:
            typer.echo(f"{data_dir} is a deployment of {shards} accounts shards: "
                       "run it with crossbook cluster", err=True)  # fmt: skip
            raise typer.Exit(2)
    configure_logging()  # (after the refusals: it binds the log to this process's stderr)
    if not 0 < port < 65536:
        raise typer.BadParameter("--port must be 1..65535")
    from crossbook.gateway.ratelimit import RateLimits

    limits = RateLimits(
        enabled=rate_limits, orders_per_second=orders_per_second, storage_uri=rate_limit_storage
    )
    app_ = create_app(data_dir.resolve(), fsync=fsync, rate_limits=limits)
    _serve(app_, data_dir, host, port, demo=demo, market_maker=market_maker)


def _serve(
    app_: object, data_dir: Path, host: str, port: int, *, demo: bool, market_maker: bool
) -> None:
    """Serve a gateway app with uvicorn on uvloop; with ``demo``, create the demo users
    and start the bots once it is up."""
    import asyncio

    import uvicorn

    state = app_.state.crossbook  # type: ignore[attr-defined]
    if demo:
        from crossbook.demo import MarketMaker, setup_demo

        async def start_demo(st: object) -> None:
            creds = await setup_demo(st)
            console.print(f"demo users and API keys: {data_dir / 'demo-credentials.json'}")
            if market_maker:
                bot = MarketMaker(st, creds["maker"]["userId"], creds["taker"]["userId"])
                bot.start()

        state.on_started.append(start_demo)
    console.print(f"Crossbook is starting on http://{host}:{port}  (data in {data_dir})")
    _GracefulServer = _graceful_server_class()
    config = uvicorn.Config(
        app_, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        ws_max_size=1 << 20, ws_per_message_deflate=False, server_header=False,
    )  # fmt: skip
    server = _GracefulServer(config)
    try:
        import uvloop  # the C event loop: socket I/O off the interpreter's hot path
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        asyncio.run(server.serve())
    else:
        uvloop.run(server.serve())


DataDirOption = Annotated[
    Path,
    typer.Option("--data-dir", envvar="CROSSBOOK_DATA_DIR", help="Config and snapshots."),
]
NatsUrlOption = Annotated[
    str,
    typer.Option(
        "--nats-url", envvar="CROSSBOOK_NATS_URL", help="NATS server URL(s), comma-separated."
    ),
]


ShardOption = Annotated[
    int,
    typer.Option(
        "--shard",
        envvar="CROSSBOOK_SHARD",
        help="Accounts shard: 0..accounts_shards-1 of the data dir's config.json.",
    ),
]
SnapshotEveryOption = Annotated[
    int,
    typer.Option(
        "--snapshot-every", envvar="CROSSBOOK_SNAPSHOT_EVERY", help="Inputs per snapshot."
    ),
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        envvar="CROSSBOOK_METRICS_PORT",
        help="Serve /healthz and /metrics (Prometheus) on 127.0.0.1:PORT (0: any free port).",
    ),
]
LeaseTtlOption = Annotated[
    float | None,
    typer.Option(
        "--lease-ttl",
        envvar="CROSSBOOK_LEASE_TTL",
        help="Take the leader lease of the log first (TTL in s); wait as a standby while "
        "another instance holds it.",
    ),
]
ReplicasOption = Annotated[
    int,
    typer.Option(
        "--replicas", envvar="CROSSBOOK_REPLICAS", help="JetStream replicas of new streams."
    ),
]


@service_app.command("accounts")
def service_accounts(
    data_dir: DataDirOption = Path("data"),
    nats_url: NatsUrlOption = "nats://127.0.0.1:4222",
    shard: ShardOption = 0,
    replicas: ReplicasOption = 1,
    snapshot_every: SnapshotEveryOption = 200_000,
    metrics_port: MetricsPortOption = None,
    lease_ttl: LeaseTtlOption = None,
) -> None:
    """The accounts service of one shard: holds, settlement, fees, the ledger's source."""
    from crossbook.cluster.runner import run_accounts

    raise typer.Exit(
        run_accounts(
            data_dir.resolve(), nats_url, shard=shard, replicas=replicas,
            snapshot_every=snapshot_every, metrics_port=metrics_port, lease_ttl=lease_ttl,
        )
    )  # fmt: skip


@service_app.command("engine")
def service_engine(
    market: Annotated[str, typer.Option("--market", envvar="CROSSBOOK_MARKET")],
    data_dir: DataDirOption = Path("data"),
    nats_url: NatsUrlOption = "nats://127.0.0.1:4222",
    replicas: ReplicasOption = 1,
    snapshot_every: SnapshotEveryOption = 200_000,
    metrics_port: MetricsPortOption = None,
    lease_ttl: LeaseTtlOption = None,
) -> None:
    """The matching engine of one market."""
    from crossbook.cluster.runner import run_engine

    raise typer.Exit(
        run_engine(
            data_dir.resolve(), nats_url, market=market, replicas=replicas,
            snapshot_every=snapshot_every, metrics_port=metrics_port, lease_ttl=lease_ttl,
        )
    )  # fmt: skip


DatabaseUrlOption = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="CROSSBOOK_DATABASE_URL",
        help="SQL for history (postgresql+psycopg://...).",
    ),
]


@service_app.command("gateway")
def service_gateway(
    database_url: DatabaseUrlOption,
    data_dir: DataDirOption = Path("data"),
    nats_url: NatsUrlOption = "nats://127.0.0.1:4222",
    host: Annotated[str, typer.Option("--host", envvar="CROSSBOOK_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", envvar="CROSSBOOK_PORT")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="Demo users, funds and a market maker.")
    ] = False,
    market_maker: Annotated[bool, typer.Option("--market-maker/--no-market-maker")] = True,
    rate_limits: Annotated[
        bool, typer.Option("--rate-limits/--no-rate-limits", help="Request weight limits.")
    ] = True,
    rate_limit_storage: Annotated[
        str,
        typer.Option(
            "--rate-limit-storage",
            envvar="CROSSBOOK_RATE_LIMIT_STORAGE",
            help="Where counters live: memory:// (this gateway) or a Redis URL (shared).",
        ),
    ] = "memory://",
    orders_per_second: Annotated[
        int, typer.Option("--orders-per-second", help="Order placements per API key.")
    ] = 50,
) -> None:
    """A gateway (REST + WebSocket): run as many side by side as needed."""
    import json as json_

    from crossbook.gateway.app import ClusterSettings, create_app
    from crossbook.gateway.ratelimit import RateLimits
    from crossbook.logs import configure_logging
    from crossbook.service import load_config

    configure_logging()
    config = load_config(data_dir.resolve()).exchange
    limits = RateLimits(
        enabled=rate_limits, orders_per_second=orders_per_second, storage_uri=rate_limit_storage
    )
    app_ = create_app(
        data_dir.resolve(),
        config=config,
        database_url=database_url,
        rate_limits=limits,
        cluster=ClusterSettings(nats_url),
    )

    def announce(state: object) -> None:
        last_seq = app_.state.crossbook.runtime.published_seq
        print(json_.dumps({"service": "gateway", "ready": True, "port": port,
                           "last_seq": last_seq}), flush=True)  # fmt: skip

    app_.state.crossbook.on_started.append(announce)
    _serve(app_, data_dir, host, port, demo=demo, market_maker=market_maker)


@service_app.command("ledger-writer")
def service_ledger_writer(
    database_url: DatabaseUrlOption,
    data_dir: DataDirOption = Path("data"),
    nats_url: NatsUrlOption = "nats://127.0.0.1:4222",
    shard: ShardOption = 0,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Projects an accounts log into SQL (history, audit, reconciliation)."""
    from crossbook.cluster.runner import run_ledger_writer

    raise typer.Exit(
        run_ledger_writer(
            data_dir.resolve(), nats_url, database_url, shard=shard, metrics_port=metrics_port
        )
    )


@service_app.command("marketdata")
def service_marketdata(
    data_dir: DataDirOption = Path("data"),
    nats_url: NatsUrlOption = "nats://127.0.0.1:4222",
    shard: ShardOption = 0,
    replicas: ReplicasOption = 1,
    snapshot_every: SnapshotEveryOption = 100_000,
    snapshot_interval: Annotated[
        float,
        typer.Option(
            "--snapshot-interval",
            envvar="CROSSBOOK_SNAPSHOT_INTERVAL",
            help="Seconds between boot snapshots while the log moves.",
        ),
    ] = 60.0,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Follows an accounts log into market data and keeps the gateways' boot snapshot fresh."""
    from crossbook.cluster.runner import run_marketdata

    raise typer.Exit(
        run_marketdata(
            data_dir.resolve(), nats_url, shard=shard, replicas=replicas,
            snapshot_every=snapshot_every, snapshot_interval=snapshot_interval,
            metrics_port=metrics_port,
        )
    )  # fmt: skip


@app.command()
def cluster(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the deployment keeps everything.")
    ] = Path("data-cluster"),
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The first gateway's port.")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="Demo users, funds and a market maker.")
    ] = False,
    market_maker: Annotated[bool, typer.Option("--market-maker/--no-market-maker")] = True,
    replicas: Annotated[
        int, typer.Option("--replicas", help="1: one nats-server; 3: a three-node cluster.")
    ] = 1,
    gateways: Annotated[int, typer.Option("--gateways", help="Gateway processes.")] = 1,
    pg_standby: Annotated[
        bool,
        typer.Option(
            "--pg-standby/--no-pg-standby",
            help="PostgreSQL as a primary with a synchronous standby (promotable).",
        ),
    ] = False,
    standbys: Annotated[
        bool,
        typer.Option(
            "--standbys/--no-standbys",
            help="A standby beside each engine and the accounts service (leader leases).",
        ),
    ] = False,
    rate_limits: Annotated[
        bool, typer.Option("--rate-limits/--no-rate-limits", help="Request weight limits.")
    ] = True,
    orders_per_second: Annotated[
        int, typer.Option("--orders-per-second", help="Order placements per API key.")
    ] = 50,
    accounts_shards: Annotated[
        int | None,
        typer.Option(
            "--accounts-shards",
            help="Accounts services (users spread by id); fixed when the data dir is created.",
        ),
    ] = None,
) -> None:
    """Start a local production-style deployment: JetStream, PostgreSQL and every
    service as its own process; stops everything it started on exit."""
    import signal
    import threading

    from crossbook.cluster.deploy import LocalCluster, describe

    if replicas not in (1, 3):
        raise typer.BadParameter("--replicas must be 1 or 3")
    if gateways < 1 or not 0 < port < 65536 - gateways:
        raise typer.BadParameter("need at least one gateway on ports below 65536")
    if accounts_shards is not None and accounts_shards < 1:
        raise typer.BadParameter("--accounts-shards must be at least 1")
    deployment = LocalCluster(
        data_dir.resolve(), port=port, host=host, replicas=replicas, gateways=gateways,
        demo=demo, market_maker=market_maker, rate_limits=rate_limits,
        orders_per_second=orders_per_second, pg_standby=pg_standby, standbys=standbys,
        accounts_shards=accounts_shards,
    )  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print("starting the cluster ...")
    try:
        deployment.start()
    except ValueError as exc:  # the data dir's shards differ from --accounts-shards
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(describe(deployment))
    if demo:
        console.print(f"demo users and API keys: {data_dir / 'demo-credentials.json'}")
    code = 0
    while not stop.wait(0.5):
        # a supervisor's job: a service that ended is started again (it recovers from
        # its snapshot and log); one that keeps ending brings the cluster down
        try:
            for name in deployment.restart_dead():
                console.print(f"[yellow]{name} ended unexpectedly; started it again[/yellow]")
        except Exception as exc:
            console.print(f"[red]{exc}[/red]")
            code = 1
            break
    console.print("stopping the cluster ...")
    problems = deployment.stop()
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    raise typer.Exit(1 if problems else code)


@app.command()
def replay(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The exchange's data directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rebuild state from the newest snapshot and the journal; print the state hash."""
    from crossbook.journal.log import JournalCorrupted
    from crossbook.service import EventsMismatch, describe

    if not (data_dir / "journal").is_dir():
        console.print(f"[red]no journal in {data_dir}[/red]")
        raise typer.Exit(2)
    try:
        if as_json:
            info = describe(data_dir)
        else:
            with console.status("replaying journal"):
                info = describe(data_dir)
    except (JournalCorrupted, EventsMismatch) as exc:
        console.print(f"[red]replay failed: {exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(info, sort_keys=True))
        return
    table = Table(title=f"state hash {info['state_hash']}")
    for column in ("market", "open orders", "bid levels", "ask levels", "trades", "last price"):
        table.add_column(column)
    markets = info["markets"]
    assert isinstance(markets, dict)
    for symbol, m in markets.items():
        table.add_row(
            symbol, *(str(m[k]) for k in ("open_orders", "bid_levels", "ask_levels", "trades")),
            str(m["last_price"]),
        )  # fmt: skip
    console.print(table)
    print(
        f"state_hash={info['state_hash']} last_seq={info['last_seq']} "
        f"snapshot_seq={info['snapshot_seq']} replayed={info['commands_replayed']} "
        f"events_verified={info['events_verified']} seconds={info['seconds']}"
    )


@app.command()
def verify(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The exchange's data directory.")],
    dsn: Annotated[
        str | None, typer.Option("--dsn", help="SQL projection (default: DIR/ledger.db).")
    ] = None,
) -> None:
    """Check the ledger: replay, balanced transactions, zero sums, holds, SQL projection."""
    from crossbook.verify import verify as run_verify

    report = run_verify(data_dir, dsn)
    for name, errors in report.checks:
        mark = "[green]ok[/green]" if not errors else f"[red]{len(errors)} failed[/red]"
        console.print(f"{name}: {mark}")
        for error in errors[:50]:
            console.print(f"  {error}", markup=False)
        if len(errors) > 50:
            console.print(f"  ... and {len(errors) - 50} more")
    if not report.ok:
        raise typer.Exit(1)


@bench_app.command("engine")
def bench_engine(
    orders: Annotated[int, typer.Option("--orders", help="Timed commands.")] = 1_000_000,
    book_size: Annotated[int, typer.Option("--book-size", help="Steady book size.")] = 10_000,
    mode: Annotated[
        list[str] | None, typer.Option("--mode", help="engine, journaled, replay (repeatable).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Commands per group commit.")] = 512,
    fsync: Annotated[bool, typer.Option("--fsync/--no-fsync")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per mode.")] = False,
) -> None:
    """The standard mixed workload through the engine alone, journaled, and replayed."""
    from crossbook.bench.engine import run_all
    from crossbook.bench.workload import generate

    modes = tuple(mode or ("engine", "journaled", "replay"))
    unknown = set(modes) - {"engine", "journaled", "replay"}
    if unknown:
        raise typer.BadParameter(f"unknown mode(s): {', '.join(sorted(unknown))}")
    if orders <= 0 or book_size <= 0 or batch <= 0:
        raise typer.BadParameter("--orders, --book-size and --batch must be positive")
    show = not as_json and sys.stderr.isatty()
    if show:
        with Progress(
            TextColumn("generating workload"), BarColumn(), TimeElapsedColumn(),
            console=console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("gen", total=orders)
            workload = generate(
                orders, book_size=book_size, progress=lambda i: progress.update(task, completed=i)
            )
    else:
        workload = generate(orders, book_size=book_size)

    def report(figures: dict[str, object]) -> None:
        if as_json:
            print(json.dumps(figures), flush=True)
        else:
            line = "  ".join(f"{k}={v}" for k, v in figures.items())
            print(line, flush=True)

    run_all(workload, modes=modes, fsync=fsync, batch=batch, report=report)


@bench_app.command("pipeline")
def bench_pipeline(
    orders: Annotated[int, typer.Option("--orders", help="Timed commands.")] = 1_000_000,
    book_size: Annotated[int, typer.Option("--book-size", help="Steady book size.")] = 10_000,
    batch: Annotated[int, typer.Option("--batch", help="Commands per group commit.")] = 512,
    fsync: Annotated[bool, typer.Option("--fsync/--no-fsync")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line.")] = False,
) -> None:
    """The standard workload through accounts + engine + settlement + journal."""
    import shutil
    import tempfile

    from crossbook.bench.engine import bench_pipeline as run
    from crossbook.bench.workload import generate

    if orders <= 0 or book_size <= 0 or batch <= 0:
        raise typer.BadParameter("--orders, --book-size and --batch must be positive")
    workload = generate(orders, book_size=book_size)
    tmp = Path(tempfile.mkdtemp(prefix="crossbook-bench-"))
    try:
        figures = run(workload, tmp, batch=batch, fsync=fsync)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if as_json:
        print(json.dumps(figures), flush=True)
    else:
        print("  ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    app()
