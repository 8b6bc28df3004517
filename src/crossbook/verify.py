"""``crossbook verify``: check a data dir's ledger end to end.

1. The journal replays (newest snapshot + tail) and every recorded events record
   equals what the replay derives, byte for byte.
2. Every transaction in the journal balances per asset.
3. The replayed state: the sum over all ledger accounts is zero per asset, no user
   balance is negative, held balances equal the holds, and every open order holds
   exactly what it can still spend.
4. With a SQL projection (the data dir's SQLite file, or ``--dsn``): it has caught up
   with the journal, its balances equal the replayed ones, and its transactions
   balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossbook.accounts.checks import ledger_errors, transaction_errors
from crossbook.domain.codec import events_decoder
from crossbook.exchange.core import ExchangeCore
from crossbook.journal.framing import EVENTS
from crossbook.journal.log import JournalCorrupted
from crossbook.service import EventsMismatch, load_config, recover


@dataclass
class Report:
    checks: list[tuple[str, list[str]]] = field(default_factory=list)

    def add(self, name: str, errors: list[str]) -> None:
        self.checks.append((name, errors))

    @property
    def ok(self) -> bool:
        return all(not errors for _, errors in self.checks)


def verify(data_dir: Path, dsn: str | None = None) -> Report:
    report = Report()
    if (data_dir / "services").is_dir() and not (data_dir / "journal").is_dir():
        return verify_cluster(data_dir, report)
    if not (data_dir / "journal").is_dir():
        report.add("journal", [f"no journal in {data_dir}"])
        return report
    config = load_config(data_dir)
    try:
        machine, journal, _ = recover(data_dir, verify_events=True, verify_journal=True)
    except (JournalCorrupted, EventsMismatch) as exc:
        report.add("replay", [str(exc)])
        return report
    report.add("replay", [])
    if config.kind != "exchange":
        journal.close()
        return report
    assert isinstance(machine, ExchangeCore)
    tx_errors: list[str] = []
    for kind, _seq, payload in journal.records():
        if kind == EVENTS:
            tx_errors += transaction_errors(events_decoder.decode(payload))
    journal.close()
    report.add("transactions balance", tx_errors)
    report.add("ledger invariants", ledger_errors(machine))
    sql_url = dsn
    if sql_url is None and (data_dir / "ledger.db").exists():
        sql_url = f"sqlite:///{data_dir / 'ledger.db'}"
    if sql_url is not None:
        report.add("sql projection", sql_errors(sql_url, machine))
    return report


def verify_cluster(data_dir: Path, report: Report) -> Report:
    """A stopped ``crossbook cluster`` data dir: its NATS and PostgreSQL are started on
    their stores, the logs replayed and checked (``crossbook.cluster.verify``), and the
    SQL projection compared with the replayed accounts; then the servers are stopped."""
    import asyncio

    import nats

    from crossbook.cluster.deploy import LocalCluster
    from crossbook.cluster.verify import replay_deployment

    replicated = (data_dir / "postgres-replicated").is_dir()
    deployment = LocalCluster(data_dir, pg_standby=replicated).start_servers()
    try:

        async def replay() -> tuple[list[str], list[Any]]:
            nc = await nats.connect(deployment.nats_url.split(","))
            try:
                return await replay_deployment(nc, deployment.config)
            finally:
                await nc.close()

        errors, machines = asyncio.run(replay())
        report.add("logs replay and ledger invariants", errors)
        report.add("sql projection", cluster_sql_errors(deployment.database_url, machines))
    finally:
        deployment.stop()
    return report


def sql_errors(url: str, core: Any) -> list[str]:
    """The SQL projection against the replayed state."""
    from crossbook.projection import LOG_NAME

    return projection_errors(url, [(LOG_NAME, core)])


def cluster_sql_errors(url: str, machines: list[Any]) -> list[str]:
    """The SQL projection of every accounts shard's log against its replayed machine."""
    from crossbook.cluster.ledger import projected_log

    return projection_errors(url, [(projected_log(m.shard), m) for m in machines])


def projection_errors(url: str, sources: list[tuple[str, Any]]) -> list[str]:
    """SQL against the replayed states of the logs projected into it (``(name, state)``:
    each state's ``last_seq`` and ``accounts``): how far each log is projected, and the
    balances against their sum over the states."""
    from crossbook.ledger import queries

    errors: list[str] = []
    done = queries.progress(url)
    mem: dict[tuple[str, str], int] = {}
    for name, core in sources:
        progress = done.get(name, 0)
        if progress != core.last_seq:
            label = "" if len(sources) == 1 else f" of {name}"
            errors.append(f"projection{label} at seq {progress}, journal at {core.last_seq}")
        for key, amount in core.accounts.balances.items():
            mem[key] = mem.get(key, 0) + amount
    sql = {k: v for k, v in queries.all_balances(url).items() if v}
    mem = {k: v for k, v in mem.items() if v}
    for key in sorted(set(sql) | set(mem)):
        if sql.get(key, 0) != mem.get(key, 0):
            errors.append(f"balance {key}: sql {sql.get(key, 0)} != replay {mem.get(key, 0)}")
    for asset, total in sorted(queries.asset_totals(url).items()):
        if total:
            errors.append(f"sql ledger of {asset} sums to {total}")
    for key, (stored, posted) in queries.balance_drift(url).items():
        errors.append(f"sql balance {key} = {stored} but its postings sum to {posted}")
    for tx_id, sums in sorted(queries.unbalanced_transactions(url).items()):
        errors.append(f"sql transaction {tx_id} does not balance: {sums}")
    return errors
