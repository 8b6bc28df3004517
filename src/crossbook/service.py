"""The journaled service loop: sequence, journal, execute, commit (the I/O edge).

It drives a deterministic *machine* — the matching engine alone, or the whole
embedded exchange (accounts -> engine -> accounts) — over one input log.

Per batch: every command is stamped by the sequencer (``seq``, ``ts``) and its
record appended to the journal *before* the machine applies it; the events it
produced are appended after; then one commit (one fsync) makes the whole batch
durable, and only then are the events returned (acknowledged). A crash before the
commit loses only unacknowledged work; recovery is the newest valid snapshot plus
a replay of the journal's tail, which re-derives the same events.

The journal is a port (:class:`JournalPort`): the file :class:`Journal` by default
(the embedded deployment), or a JetStream stream through
:class:`crossbook.ha.journal.JetStreamJournal` (production: a leader writes, hot
standbys follow the same log; see :mod:`crossbook.ha`). Snapshots stay in the
service's own data dir either way.
"""

from __future__ import annotations

import gc
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, overload

import msgspec

from crossbook.domain.codec import command_decoder, command_encoder, events_decoder
from crossbook.domain.markets import DEFAULT_MARKETS, Market
from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeConfig, ExchangeCore
from crossbook.journal.background import BackgroundSnapshots
from crossbook.journal.framing import COMMAND, EVENTS
from crossbook.journal.log import Journal
from crossbook.journal.snapshots import SnapshotStore

CONFIG_FILE = "config.json"


class Machine(Protocol):
    """A deterministic state machine over one input log."""

    @property
    def last_seq(self) -> int: ...

    def execute(self, command: Any) -> list[Any]: ...

    def snapshot(self) -> bytes: ...

    def state_hash(self) -> str: ...


class RecordIterator(Protocol):
    """What ``JournalPort.records`` returns: ``(kind, seq, payload)`` in log order;
    once exhausted, ``last_kind`` is the kind of the last record read (of any kind,
    also when filtering by kind)."""

    last_kind: int

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]: ...

    def __next__(self) -> tuple[int, int, bytes]: ...


class JournalPort(Protocol):
    """The input log as the service uses it (the file :class:`Journal` has exactly
    this surface; ``crossbook.ha.journal.JetStreamJournal`` adapts a JetStream log).

    ``append`` buffers; ``commit`` makes the buffer durable; ``write`` + ``sync`` are
    the two halves of ``commit`` for the pipelined path (``sync`` may run on another
    thread); ``records`` reads committed records."""

    @property
    def committed_seq(self) -> int: ...

    def append(self, kind: int, seq: int, payload: bytes | bytearray | memoryview) -> None: ...

    def commit(self) -> object: ...

    def write(self) -> None: ...

    def sync(self) -> None: ...

    def records(
        self, after_seq: int = 0, kind: int | None = None, *, check_all: bool = True
    ) -> RecordIterator: ...

    def close(self) -> None: ...


if TYPE_CHECKING:
    from typing_extensions import TypeVar

    J = TypeVar("J", bound=JournalPort, default=Journal)
else:
    J = typing.TypeVar("J")


def jetstream_journal_factory(
    servers: str | list[str], log_name: str, *, writer_id: str, replicas: int = 1
) -> Callable[[], JournalPort]:
    """A factory opening the JetStream log ``log_name`` as its fenced writer (pass the
    leader lease's writer id), for a runtime that builds its service lazily:
    ``JournaledService(data_dir, journal=factory())``."""

    def open_journal() -> JournalPort:
        from crossbook.ha.journal import JetStreamJournal  # only the JetStream path needs NATS

        return JetStreamJournal.open(
            servers, log_name, writer_id=writer_id, fence=True, replicas=replicas
        )

    return open_journal


class DataDirConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What a data dir runs: ``engine`` (markets only) or ``exchange`` (the pipeline)."""

    kind: str
    exchange: ExchangeConfig


_config_decoder = msgspec.json.Decoder(DataDirConfig)


def load_config(data_dir: Path, default: DataDirConfig | None = None) -> DataDirConfig:
    """The configuration a data dir was created with (written on first open)."""
    path = data_dir / CONFIG_FILE
    if path.exists():
        return _config_decoder.decode(path.read_bytes())
    config = default or DataDirConfig(kind="exchange", exchange=ExchangeConfig())
    if config.kind not in ("engine", "exchange"):
        raise ValueError(f"unknown data dir kind {config.kind!r}")
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(config)))
    tmp.replace(path)
    return config


def engine_config(markets: Iterable[Market] = DEFAULT_MARKETS) -> DataDirConfig:
    return DataDirConfig(kind="engine", exchange=ExchangeConfig(markets=list(markets)))


def _fresh(config: DataDirConfig) -> Machine:
    if config.kind == "engine":
        return MatchingEngine(config.exchange.markets)
    return ExchangeCore(config.exchange)


def _restore(config: DataDirConfig, data: bytes) -> Machine:
    if config.kind == "engine":
        return MatchingEngine.restore(data)
    return ExchangeCore.restore(data)


class Sequencer:
    """Stamps commands with the next ``seq`` and the clock's ``ts`` (ns).

    ``ts`` never goes backwards, even if the wall clock does.
    """

    def __init__(self, last_seq: int, clock: Callable[[], int] = time.time_ns) -> None:
        self.last_seq = last_seq
        self.last_ts = 0
        self._clock = clock

    def stamp(self, command: Any) -> Any:
        self.last_seq += 1
        ts = max(self._clock(), self.last_ts)
        self.last_ts = ts
        return msgspec.structs.replace(command, seq=self.last_seq, ts=ts)


@dataclass
class ReplayStats:
    snapshot_seq: int
    commands_replayed: int
    events_checked: int
    seconds: float


class EventsMismatch(Exception):
    """Replay derived events that differ from those the journal recorded."""


@overload
def recover(
    data_dir: Path,
    *,
    verify_events: bool = ...,
    verify_journal: bool = ...,
    fsync: bool = ...,
    default: DataDirConfig | None = ...,
    journal: None = ...,
    machine: Machine | None = ...,
    complete: bool = ...,
) -> tuple[Any, Journal, ReplayStats]: ...


@overload
def recover(
    data_dir: Path,
    *,
    verify_events: bool = ...,
    verify_journal: bool = ...,
    fsync: bool = ...,
    default: DataDirConfig | None = ...,
    journal: J,
    machine: Machine | None = ...,
    complete: bool = ...,
) -> tuple[Any, J, ReplayStats]: ...


def recover(
    data_dir: Path,
    *,
    verify_events: bool = False,
    verify_journal: bool = False,
    fsync: bool = True,
    default: DataDirConfig | None = None,
    journal: JournalPort | None = None,
    machine: Machine | None = None,
    complete: bool = True,
) -> tuple[Any, JournalPort, ReplayStats]:
    """Rebuild the machine from the newest valid snapshot and the journal's tail.

    The journal's torn tail (if any) is truncated first, never applied. With
    ``verify_events`` every recorded events record is compared byte for byte with
    the events the replay derives (:class:`EventsMismatch` on a difference). The
    records replayed are always CRC-checked; ``verify_journal`` also checks the
    segments before the snapshot.

    ``journal`` is an open log to use instead of the data dir's file journal (e.g. a
    JetStream log; the caller owns it, as it does the returned one). ``machine``
    starts the replay from a machine already current up to its ``last_seq`` (a hot
    standby taking over) instead of the newest snapshot. ``complete=False`` never
    writes: a reader that is not the log's writer must not complete a torn record
    pair (a command whose events record is missing).
    """
    started = time.perf_counter()
    config = load_config(data_dir, default)
    if journal is None:
        journal = Journal.open(data_dir / "journal", fsync=fsync, verify=verify_journal)
    if machine is not None:
        snap_seq = machine.last_seq
    else:
        latest = SnapshotStore(data_dir / "snapshots").latest()
        if latest is None:
            machine, snap_seq = _fresh(config), 0
        else:
            snap_seq, data = latest
            machine = _restore(config, data)
    execute = machine.execute
    decode = command_decoder.decode
    encode = command_encoder.encode
    replayed = checked = 0
    last_seq, last_events, has_events = 0, [], True
    collecting = gc.isenabled()
    gc.disable()  # replay allocates much and frees by reference counting
    try:
        if verify_events:
            for kind, seq, payload in journal.records(after_seq=snap_seq):
                if kind == COMMAND:
                    last_events = execute(decode(payload))
                    last_seq, has_events = seq, False
                    replayed += 1
                elif kind == EVENTS and seq == last_seq:
                    has_events = True
                    if encode(last_events) != payload:
                        recorded = events_decoder.decode(payload)
                        raise EventsMismatch(f"seq {seq}: journal has {recorded!r}")
                    checked += 1
        else:
            # the events records are re-derived here, so only commands are CRC-checked
            # (``verify_journal`` opens with every record checked)
            reader = journal.records(after_seq=snap_seq, kind=COMMAND, check_all=verify_journal)
            for _, seq, payload in reader:
                last_events = execute(decode(payload))
                last_seq = seq
                replayed += 1
            has_events = not replayed or reader.last_kind == EVENTS
    finally:
        if collecting:
            gc.enable()
    if not has_events and complete:
        # the crash fell between a command and its events: complete the record pair
        journal.append(EVENTS, last_seq, encode(last_events))
        journal.commit()
    stats = ReplayStats(snap_seq, replayed, checked, time.perf_counter() - started)
    return machine, journal, stats


class JournaledService(Generic[J]):
    """A journaled machine. ``submit`` (or ``submit_stamped``) is the only way in.

    By default the journal is the data dir's file journal. Pass ``journal`` (an open
    :class:`JournalPort`, e.g. a fenced ``JetStreamJournal``; the service owns it and
    closes it) to run on another log, and ``machine`` to take over with a machine
    that is already current (a hot standby): only the log's tail after it is replayed.
    """

    journal: J

    @overload
    def __init__(
        self: JournaledService[Journal],
        data_dir: Path,
        *,
        config: DataDirConfig | None = ...,
        fsync: bool = ...,
        snapshot_every: int = ...,
        clock: Callable[[], int] = ...,
        journal: None = ...,
        machine: Machine | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: JournaledService[J],
        data_dir: Path,
        *,
        config: DataDirConfig | None = ...,
        fsync: bool = ...,
        snapshot_every: int = ...,
        clock: Callable[[], int] = ...,
        journal: J,
        machine: Machine | None = ...,
    ) -> None: ...

    def __init__(
        self,
        data_dir: Path,
        *,
        config: DataDirConfig | None = None,
        fsync: bool = True,
        snapshot_every: int = 250_000,
        clock: Callable[[], int] = time.time_ns,
        journal: Any = None,
        machine: Machine | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.machine, self.journal, self.recovery = recover(
            data_dir, fsync=fsync, default=config, journal=journal, machine=machine
        )
        self.snapshots = SnapshotStore(data_dir / "snapshots")
        self.background = BackgroundSnapshots(self.snapshots)
        self.sequencer = Sequencer(self.machine.last_seq, clock)
        self.snapshot_every = snapshot_every
        self._since_snapshot = self.recovery.commands_replayed
        self._flusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-fsync")

    def submit(self, commands: Iterable[Any]) -> list[list[Any]]:
        """Sequence, journal and execute a batch; durable (one fsync) on return."""
        stamp = self.sequencer.stamp
        return self._run([stamp(c) for c in commands])

    def submit_stamped(self, commands: Iterable[Any]) -> list[list[Any]]:
        """Like :meth:`submit` for commands stamped by an upstream sequencer;
        already-applied seqs are skipped (their result is ``[]``)."""
        out = self._run(commands)
        self.sequencer.last_seq = self.machine.last_seq
        return out

    def submit_pipelined(self, commands: Iterable[Any]) -> Future[list[list[Any]]]:
        """Group commit with the fsync overlapped, for stamped commands: execute and
        write this batch now,
        fsync it on the flusher thread, and resolve the future (the acknowledgement)
        only once it is durable. The caller may go on with the next batch meanwhile."""
        events = self._execute(commands)
        seq = self.sequencer.last_seq = self.machine.last_seq
        self.journal.write()
        durable = self._flusher.submit(self.journal.sync)
        acked: Future[list[list[Any]]] = Future()

        def done(f: Future[None]) -> None:
            error = f.exception()
            if error is None:
                self.background.durable(seq)
                acked.set_result(events)
            else:
                acked.set_exception(error)

        durable.add_done_callback(done)
        self._after_batch(len(events))
        return acked

    def _run(self, commands: Iterable[Any]) -> list[list[Any]]:
        out = self._execute(commands)
        self.journal.commit()
        self.background.durable(self.machine.last_seq)
        self._after_batch(len(out))
        return out

    def _after_batch(self, count: int) -> None:
        self._since_snapshot += count
        if self._since_snapshot >= self.snapshot_every and self.background.start(
            self.machine.last_seq, self.machine.snapshot
        ):  # published by the child once the journal is durable through it
            self._since_snapshot = 0

    def _execute(self, commands: Iterable[Any]) -> list[list[Any]]:
        append = self.journal.append
        encode = command_encoder.encode
        execute = self.machine.execute
        out: list[list[Any]] = []
        for command in commands:
            seq = command.seq
            if seq <= self.machine.last_seq:
                out.append([])
                continue
            append(COMMAND, seq, encode(command))
            events = execute(command)
            append(EVENTS, seq, encode(events))
            out.append(events)
        return out

    def take_snapshot(self) -> int:
        """Write a snapshot at the current position (after a commit); returns its seq."""
        self.journal.commit()
        seq: int = self.machine.last_seq
        self.background.durable(seq)
        self.background.finish()
        self.snapshots.write(seq, self.machine.snapshot())
        self.snapshots.prune(keep=2)
        self._since_snapshot = 0
        return seq

    def close(self) -> None:
        self._flusher.shutdown(wait=True)
        self.background.abort()
        self.journal.close()


class EngineService(JournaledService[Journal]):
    """The matching engine alone behind a journal (a data dir of kind ``engine``)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        markets: Iterable[Market] = DEFAULT_MARKETS,
        fsync: bool = True,
        snapshot_every: int = 250_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__(
            data_dir,
            config=engine_config(markets),
            fsync=fsync,
            snapshot_every=snapshot_every,
            clock=clock,
        )

    @property
    def engine(self) -> MatchingEngine:
        assert isinstance(self.machine, MatchingEngine)
        return self.machine


def describe(data_dir: Path) -> dict[str, object]:
    """Recover a data dir and describe its state (for ``crossbook replay``)."""
    machine, journal, stats = recover(data_dir, verify_events=True, verify_journal=True)
    journal.close()
    engine = machine if isinstance(machine, MatchingEngine) else machine.engine
    books = {
        symbol: {
            "open_orders": len(book.orders),
            "bid_levels": len(book.bids.levels),
            "ask_levels": len(book.asks.levels),
            "trades": book.trade_seq,
            "last_price": book.last_price,
        }
        for symbol, book in sorted(engine.books.items())
    }
    return {
        "kind": load_config(data_dir).kind,
        "state_hash": machine.state_hash(),
        "last_seq": machine.last_seq,
        "snapshot_seq": stats.snapshot_seq,
        "commands_replayed": stats.commands_replayed,
        "events_verified": stats.events_checked,
        "seconds": round(stats.seconds, 3),
        "markets": books,
    }
