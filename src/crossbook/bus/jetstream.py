"""The journal port over NATS JetStream: one file-backed stream per log.

A :class:`JetStreamLog` has the surface the journaled service needs from
``crossbook.journal.log.Journal`` -- ``append(kind, seq, payload)`` buffers, ``commit()``
makes the whole buffer durable, ``records(after_seq, kind)`` reads back in order,
``last_seq`` / ``committed_seq`` -- with JetStream as the storage:

* Log ``NAME`` is the stream ``CB_LOG_NAME`` with the one subject ``cb.log.NAME``
  (file storage; ``replicas`` = 1 for development, 3 in production).
* Group commit: ``commit`` publishes the pending records as **one message** (the
  records CRC-framed exactly as in the file journal, ``crossbook.journal.framing``),
  split into several messages only past ``max_message_bytes``, and returns when the
  stream acknowledged it (stored by a majority of the replicas). One publish and one
  PubAck per batch instead of one per record; a batch is all or nothing.
* Deduplication: the message carries ``Nats-Msg-Id`` = :func:`msg_id` ``(name, first
  (seq, kind), last (seq, kind), writer)``, so re-publishing a batch whose ack was lost
  (a retry of ``commit`` after a timeout or a server restart) stores nothing twice: the
  server answers ``duplicate=True`` with the original's stream sequence, which must be
  the position this writer expected (when the server checks the expected position
  first and rejects the retry, the message found at that position is compared by
  id). ``writer`` is the writer's incarnation (the leader lease's revision in
  production, a random id by default) so two writers never share a message id.
* Fencing: every message carries ``Nats-Expected-Last-Sequence`` = the stream
  sequence of the last message this writer knows. A writer that missed anything
  another writer appended (a deposed leader) is rejected (API error 10071): its
  commit raises :class:`FencedError` and writes nothing; the log refuses further
  commits. ``fence()`` appends an empty marker message so that a new leader's takeover
  alone fences the old writer, before its first real batch. The chunks of a batch too
  big for one message are published one after the other, each fenced the same way.

Why not one message per record with pipelined acks: a position-only check on pipelined
messages can be satisfied by coincidence (the stale writer's first record is rejected,
its j-th lands exactly where another writer's j appends left the stream), and the
chaining header ``Nats-Expected-Last-Msg-Id`` is checked at apply time on a replicated
stream, where a mismatch is a critical write error that leaves the stream without a
leader (seen with nats-server 2.15.1).

The class is asyncio-native (``await log.commit()``, ``async for r in log.records()``);
:class:`SyncJetStreamLog` wraps it for synchronous callers such as the embedded
service loop, running the client on a private event-loop thread.

Not safe for concurrent use by several tasks; one writer per log at a time (fencing
turns a violation into an error rather than a forked log).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from types import TracebackType
from typing import TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from nats.js.errors import (
    APIError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from crossbook.journal.framing import (
    HEADER_SIZE,
    check_record,
    iter_records,
)
from crossbook.journal.framing import encode_record as frame_record

__all__ = [
    "DEFAULT_ACK_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "WRONG_LAST_SEQUENCE",
    "CommitError",
    "CommitResult",
    "FencedError",
    "JetStreamLog",
    "LogError",
    "SyncJetStreamLog",
    "decode_batch",
    "ensure_stream",
    "msg_id",
    "stream_name",
    "subject_name",
]

DEFAULT_ACK_TIMEOUT = 5.0
DEFAULT_DUPLICATE_WINDOW = 120.0
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024
"""Chunk size of a batch (under the server's default 1 MiB max payload)."""
WRONG_LAST_SEQUENCE = 10071
"""JetStream API error: ``Nats-Expected-Last-Sequence`` did not match."""
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_FETCH_BATCH = 256

T = TypeVar("T")


def stream_name(log: str) -> str:
    """The JetStream stream holding log ``log``."""
    return f"CB_LOG_{log}"


def subject_name(log: str) -> str:
    """The one subject of log ``log``."""
    return f"cb.log.{log}"


def msg_id(log: str, first: tuple[int, int], last: tuple[int, int], writer: str) -> str:
    """``Nats-Msg-Id`` of the message holding records ``first..last`` (each a
    ``(seq, kind)``) of ``log``, published by ``writer``."""
    return f"{log}:{first[0]}.{first[1]}-{last[0]}.{last[1]}:{writer}"


def decode_batch(data: bytes) -> list[tuple[int, int, bytes]]:
    """The ``(kind, seq, payload)`` records framed in a message's data."""
    it = iter_records(data)
    out = [(kind, seq, payload) for _off, kind, seq, payload in it]
    if not it.clean:
        raise LogError(f"damaged log message: {it.stop} record at {it.end}: {it.detail}")
    return out


NO_SUITABLE_PEERS = 10005
"""JetStream API error: no peers to place a replicated stream on (yet)."""


class LogError(Exception):
    """The log cannot be used (closed, fenced, or damaged)."""


class StreamUnavailable(LogError):
    """The stream cannot be created right now (its cluster is still forming)."""


class CommitError(LogError):
    """A commit was not fully acknowledged (timeout, no stream, server down).

    The first ``committed`` records of the batch are durable; the rest stay pending,
    and calling ``commit`` again re-publishes them with the same message ids (safe:
    a message that was in fact stored is answered as a duplicate).
    """

    def __init__(
        self, message: str, *, committed: int = 0, cause: BaseException | None = None
    ) -> None:
        super().__init__(message)
        self.committed = committed
        self.cause = cause


class FencedError(CommitError):
    """Another writer appended to the log since this writer last saw it: this writer
    is stale (a deposed leader) and none of its pending records was written. The log
    refuses further commits; open it again (re-reading the tail) to write."""


@dataclasses.dataclass(frozen=True, slots=True)
class CommitResult:
    """What a ``commit`` stored: ``records`` records in ``messages`` messages at stream
    sequences ``first_stream_seq..last_stream_seq`` (0, 0 for an empty commit), of
    which ``duplicates`` messages had already been stored (a re-published batch)."""

    records: int
    messages: int
    duplicates: int
    first_stream_seq: int
    last_stream_seq: int


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    replicas: int,
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
) -> api.StreamInfo:
    """Create the file-backed stream if it does not exist; return its info."""
    try:
        return await js.stream_info(name)
    except NotFoundError:
        pass
    config = api.StreamConfig(
        name=name,
        subjects=subjects,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.NEW,
        num_replicas=replicas,
        duplicate_window=duplicate_window,
        allow_direct=True,
        deny_delete=True,
        deny_purge=True,
    )
    try:
        return await js.add_stream(config)
    except APIError as exc:
        # created concurrently by another process: use it as it is
        try:
            return await js.stream_info(name)
        except NotFoundError:
            if exc.err_code == NO_SUITABLE_PEERS:  # a cluster still forming
                raise StreamUnavailable(f"stream {name}: {exc.description}") from exc
            raise exc from None


_TRANSIENT = (
    ServiceUnavailableError,
    NoRespondersError,
    NoStreamResponseError,
    NatsTimeoutError,
    StreamUnavailable,
)
"""What JetStream answers while a server restarts or a stream elects a leader."""


async def _retrying(op: Callable[[], Awaitable[T]], seconds: float = 30.0) -> T:
    """``op()``, tried again while JetStream is briefly unavailable (a server
    restarting, a stream electing a leader), for about ``seconds``. A commit that
    failed only for that reason is retried too; a fenced writer is not."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await op()
        except FencedError:
            raise
        except (*_TRANSIENT, CommitError):
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.1)


class JetStreamLog:
    """An append-only log of ``(kind, seq, payload)`` records on a JetStream stream.

    Use ``await JetStreamLog.open(...)``. ``append`` buffers (no I/O); ``commit``
    publishes the buffer and returns when it is acknowledged; ``records`` reads
    committed records in order. Seqs never decrease; several records may share one
    (a COMMAND and its EVENTS), as in the file journal.
    """

    def __init__(
        self,
        nc: NATS,
        name: str,
        *,
        writer_id: str,
        owns_connection: bool,
        ack_timeout: float,
        max_message_bytes: int,
    ) -> None:
        """Internal: use ``JetStreamLog.open``."""
        self.name = name
        self.stream = stream_name(name)
        self.subject = subject_name(name)
        self.writer_id = writer_id
        self.ack_timeout = ack_timeout
        self.max_message_bytes = max_message_bytes
        self._nc = nc
        self._js = nc.jetstream()
        self._owns = owns_connection
        # pending records: (kind, seq, framed record)
        self._buf: list[tuple[int, int, bytes]] = []
        self._last_seq = 0  # last appended record's seq (committed or pending)
        self._committed_seq = 0  # last committed record's seq
        self._stream_seq = 0  # stream sequence of the last message this writer knows
        self._closed = False
        self._fenced: FencedError | None = None

    @classmethod
    async def open(
        cls,
        servers: NATS | str | list[str],
        name: str,
        *,
        replicas: int = 1,
        writer_id: str | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        fence: bool = False,
    ) -> JetStreamLog:
        """Open log ``name`` (creating its stream with ``replicas`` if needed).

        ``servers`` is a connected client (left open by ``close``) or server URL(s)
        (a client is connected here, reconnecting forever, and closed by ``close``).
        The tail is read to learn ``last_seq`` and the position fencing starts from.
        ``writer_id`` must be unique per writer incarnation (pass the leader lease's
        revision); by default a random one. With ``fence`` an empty marker is
        appended at once, so that any writer that opened earlier can no longer commit.
        """
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"invalid log name {name!r}: use letters, digits, '_' and '-'")
        if max_message_bytes < HEADER_SIZE:
            raise ValueError("max_message_bytes too small")
        if writer_id is None:
            writer_id = nats.nuid.NUID().next().decode()
        if isinstance(servers, NATS):
            nc, owns = servers, False
        else:
            nc = await nats.connect(
                servers,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.1,
                connect_timeout=5,
            )
            owns = True
        log = cls(
            nc,
            name,
            writer_id=writer_id,
            owns_connection=owns,
            ack_timeout=ack_timeout,
            max_message_bytes=max_message_bytes,
        )
        try:
            await _retrying(
                lambda: ensure_stream(
                    log._js,
                    log.stream,
                    [log.subject],
                    replicas=replicas,
                    duplicate_window=duplicate_window,
                )
            )
            await _retrying(log.refresh)
            if fence:
                await _retrying(log.fence)
        except BaseException:
            await log.close()
            raise
        return log

    # -- state ---------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the last appended record (committed or pending); 0 if none."""
        return self._last_seq

    @property
    def committed_seq(self) -> int:
        """Seq of the last committed record; 0 if none."""
        return self._committed_seq

    @property
    def stream_seq(self) -> int:
        """Stream sequence of the last message this writer knows of (its fencing base)."""
        return self._stream_seq

    @property
    def pending(self) -> int:
        """Records appended but not yet committed."""
        return len(self._buf)

    @property
    def fenced(self) -> bool:
        return self._fenced is not None

    @property
    def connection(self) -> NATS:
        return self._nc

    async def refresh(self) -> None:
        """Re-read the stream's tail: ``last_seq``, ``committed_seq`` and the fencing
        base (nothing may be pending). Clears a fenced state: the writer now writes
        after what it just saw, so its caller must have caught up with it."""
        if self._buf:
            raise LogError("cannot refresh with records pending")
        info = await self._js.stream_info(self.stream)
        first, last = info.state.first_seq, info.state.last_seq
        seq = 0
        pos = last
        while pos >= max(first, 1):  # skip empty fence markers
            records = await self._message(pos)
            if records:
                seq = records[-1][1]
                break
            pos -= 1
        self._stream_seq = last
        self._last_seq = self._committed_seq = seq
        self._fenced = None

    def _check_usable(self) -> None:
        if self._closed:
            raise LogError(f"log {self.name} is closed")
        if self._fenced is not None:
            raise FencedError(
                f"log {self.name}: this writer was fenced off; open the log again",
                cause=self._fenced,
            )

    # -- writing -------------------------------------------------------------------------

    def append(self, kind: int, seq: int, payload: bytes | bytearray | memoryview) -> None:
        """Buffer one record; durable only after ``commit``.

        Raises ``ValueError`` if ``seq < 1``, ``seq < last_seq`` or a field cannot be
        framed (kind 1..255); nothing is buffered then.
        """
        self._check_usable()
        if seq < self._last_seq or seq < 1:
            raise ValueError(f"seq {seq} must be >= 1 and >= last seq {self._last_seq}")
        check_record(kind, seq, len(payload))
        self._buf.append((kind, seq, frame_record(kind, seq, payload)))
        self._last_seq = seq

    def _chunks(self) -> list[list[tuple[int, int, bytes]]]:
        chunks: list[list[tuple[int, int, bytes]]] = []
        size = 0
        for rec in self._buf:
            if not chunks or (size + len(rec[2]) > self.max_message_bytes and chunks[-1]):
                chunks.append([])
                size = 0
            chunks[-1].append(rec)
            size += len(rec[2])
        return chunks

    async def commit(self) -> CommitResult:
        """Publish every pending record and wait until the stream acknowledged them.

        Raises :class:`FencedError` if another writer appended since this one last
        saw the log (nothing pending is written), :class:`CommitError` if an
        acknowledgement did not come (whole chunks acknowledged before it are
        committed; the rest stays pending for a retry).
        """
        self._check_usable()
        if not self._buf:
            return CommitResult(0, 0, 0, 0, 0)
        first_pos = self._stream_seq + 1
        records = messages = duplicates = 0
        for chunk in self._chunks():
            first, last = chunk[0], chunk[-1]
            mid = msg_id(self.name, (first[1], first[0]), (last[1], last[0]), self.writer_id)
            data = b"".join(rec[2] for rec in chunk)
            duplicate = await self._publish(data, mid, committed=records)
            # acknowledged: these records are durable
            del self._buf[: len(chunk)]
            self._committed_seq = last[1]
            records += len(chunk)
            messages += 1
            duplicates += duplicate
        return CommitResult(records, messages, duplicates, first_pos, self._stream_seq)

    async def fence(self) -> int:
        """Append an empty marker message at this writer's position: from then on, a
        writer that has not seen it cannot commit. Returns its stream sequence."""
        self._check_usable()
        if self._buf:
            raise LogError("commit pending records before fencing")
        mid = f"{self.name}:fence:{self._stream_seq}:{self.writer_id}"
        await self._publish(b"", mid, committed=0)
        return self._stream_seq

    async def _publish(self, data: bytes, mid: str, *, committed: int) -> bool:
        """Publish one message at position ``stream_seq + 1``; True if a duplicate."""
        base = self._stream_seq
        headers = {"Nats-Msg-Id": mid, "Nats-Expected-Last-Sequence": str(base)}
        try:
            ack = await self._js.publish(
                self.subject, data, timeout=self.ack_timeout, headers=headers
            )
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE and await self._stored_at(base + 1, mid):
                # a retry of a message whose ack was lost (the server checks the
                # expected position before the message id): it is ours, in place
                self._stream_seq = base + 1
                return True
            if exc.err_code == WRONG_LAST_SEQUENCE:
                err = FencedError(
                    f"log {self.name}: stale writer {self.writer_id} fenced off: it expected "
                    f"the stream to end at {base}, server says {exc.description!r}; "
                    f"nothing of the pending records was written",
                    committed=committed,
                    cause=exc,
                )
                self._fenced = err
                raise err from exc
            raise CommitError(
                f"log {self.name}: publish rejected: {exc}", committed=committed, cause=exc
            ) from exc
        except (TimeoutError, NatsTimeoutError, NoRespondersError, OSError) as exc:
            raise CommitError(
                f"log {self.name}: no acknowledgement within {self.ack_timeout}s ({exc!r}); "
                "commit again to retry (deduplicated)",
                committed=committed,
                cause=exc,
            ) from exc
        except nats.errors.Error as exc:  # connection closed, draining, ...
            raise CommitError(
                f"log {self.name}: publish failed: {exc!r}", committed=committed, cause=exc
            ) from exc
        if ack.stream != self.stream or ack.seq != base + 1:
            raise LogError(
                f"log {self.name}: message {mid} stored at {ack.stream}#{ack.seq}, "
                f"expected {self.stream}#{base + 1}"
                + (" (a duplicate of an earlier message)" if ack.duplicate else "")
            )
        self._stream_seq = base + 1
        return bool(ack.duplicate)

    async def _stored_at(self, stream_seq: int, mid: str) -> bool:
        """True iff the message at ``stream_seq`` has message id ``mid``."""
        try:
            msg = await self._js.get_msg(self.stream, seq=stream_seq, direct=True)
        except NotFoundError:
            return False
        return bool(msg.headers and msg.headers.get("Nats-Msg-Id") == mid)

    # -- reading -------------------------------------------------------------------------

    async def _message(self, stream_seq: int) -> list[tuple[int, int, bytes]]:
        msg = await self._js.get_msg(self.stream, seq=stream_seq, direct=True)
        return decode_batch(msg.data or b"")

    async def _start_after(self, after_seq: int, first: int, last: int) -> int:
        """Smallest stream sequence in ``[first, last]`` holding a record with seq >
        ``after_seq`` (``last + 1`` if none): a binary search over the messages' last
        records (empty fence markers are skipped towards the end)."""
        if after_seq <= 0 or first > last:
            return first
        lo, hi = first, last + 1
        while lo < hi:
            mid = (lo + hi) // 2
            probe = mid
            records: list[tuple[int, int, bytes]] = []
            while probe < hi:
                records = await self._message(probe)
                if records:
                    break
                probe += 1
            if records and records[-1][1] <= after_seq:
                lo = probe + 1
            else:  # the answer is at or before ``probe``, and mid..probe-1 are empty
                hi = mid
        return lo

    async def read_chunks(
        self, after_seq: int = 0, kind: int | None = None
    ) -> AsyncGenerator[list[tuple[int, int, bytes]]]:
        """Like ``records`` but yields the records of each fetched set of messages."""
        if self._closed:
            raise LogError(f"log {self.name} is closed")
        info = await _retrying(lambda: self._js.stream_info(self.stream))
        first, last = info.state.first_seq, info.state.last_seq
        start = await _retrying(lambda: self._start_after(after_seq, first, last))
        if start > last:
            return
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=api.AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=60.0,
        )
        sub = await self._js.pull_subscribe(self.subject, stream=self.stream, config=config)
        try:
            expect = start
            while expect <= last:
                count = min(_FETCH_BATCH, last - expect + 1)
                msgs = await _retrying(partial(sub.fetch, count, timeout=5.0))
                out: list[tuple[int, int, bytes]] = []
                for msg in msgs:
                    sseq = msg.metadata.sequence.stream
                    if sseq != expect:
                        raise LogError(
                            f"log {self.name}: read stream sequence {sseq}, expected {expect}"
                        )
                    expect += 1
                    for rkind, seq, payload in decode_batch(msg.data):
                        if seq > after_seq and (kind is None or rkind == kind):
                            out.append((rkind, seq, payload))
                    if expect > last:
                        break
                if out:
                    yield out
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def records(
        self, after_seq: int = 0, kind: int | None = None
    ) -> AsyncIterator[tuple[int, int, bytes]]:
        """Committed ``(kind, seq, payload)`` with ``seq > after_seq`` in log order
        (only records of ``kind`` if given). Sees what the stream held when called:
        a binary search (direct gets) finds the first message to read, then an
        ephemeral pull consumer reads from there to the stream's last message."""
        async for batch in self.read_chunks(after_seq, kind):
            for record in batch:
                yield record

    async def tail(
        self, after_seq: int = 0, kind: int | None = None
    ) -> AsyncGenerator[list[tuple[int, int, bytes]]]:
        """Committed ``(kind, seq, payload)`` records with ``seq > after_seq``, then those
        of every message stored later, as they are stored; never ends (cancel or close
        the generator to stop). Yields the records of one message at a time (empty
        fence markers are skipped). An ordered push consumer (memory, no acks) reads
        from the first message past ``after_seq`` and, should a message go missing on
        the way (a reconnect), the client recreates it where it left off."""
        if self._closed:
            raise LogError(f"log {self.name} is closed")
        info = await self._js.stream_info(self.stream)
        first, last = info.state.first_seq, info.state.last_seq
        if last == 0 or first > last:
            start = last + 1
        else:
            start = await self._start_after(after_seq, first, last)
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            inactive_threshold=60.0,
        )
        sub = await self._js.subscribe(
            self.subject, stream=self.stream, ordered_consumer=True, config=config
        )
        seen = after_seq
        try:
            while True:
                msg = await sub.next_msg(timeout=None)
                if not msg.data:
                    continue
                out: list[tuple[int, int, bytes]] = []
                for rkind, seq, payload in decode_batch(msg.data):
                    if seq > seen and (kind is None or rkind == kind):
                        out.append((rkind, seq, payload))
                if out:
                    seen = out[-1][1] if kind is not None else seen
                    yield out
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- closing -------------------------------------------------------------------------

    async def close(self) -> None:
        """Close (pending records are dropped, as uncommitted); close the connection
        if the log opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def __aenter__(self) -> JetStreamLog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _LoopThread:
    """A private asyncio event loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="jetstream-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, aw: Awaitable[T], timeout: float | None = None) -> T:
        async def call() -> T:
            return await aw

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class SyncJetStreamLog:
    """Blocking facade of :class:`JetStreamLog` for synchronous callers (the embedded
    service loop): ``append`` / ``commit`` / ``records`` / ``close`` with the file
    journal's shapes. The client runs on a private event-loop thread; the facade is
    not thread-safe (one caller thread, like ``Journal``)."""

    def __init__(self, log: JetStreamLog, runner: _LoopThread) -> None:
        """Internal: use ``SyncJetStreamLog.open``."""
        self.log = log
        self._runner = runner

    @classmethod
    def open(
        cls,
        servers: str | list[str],
        name: str,
        *,
        replicas: int = 1,
        writer_id: str | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        fence: bool = False,
    ) -> SyncJetStreamLog:
        runner = _LoopThread()
        try:
            log = runner.run(
                JetStreamLog.open(
                    servers,
                    name,
                    replicas=replicas,
                    writer_id=writer_id,
                    ack_timeout=ack_timeout,
                    fence=fence,
                )
            )
        except BaseException:
            runner.stop()
            raise
        return cls(log, runner)

    @property
    def last_seq(self) -> int:
        return self.log.last_seq

    @property
    def committed_seq(self) -> int:
        return self.log.committed_seq

    @property
    def pending(self) -> int:
        return self.log.pending

    def append(self, kind: int, seq: int, payload: bytes | bytearray | memoryview) -> None:
        # buffer only, no I/O: safe to call from the caller's thread
        self.log.append(kind, seq, payload)

    def commit(self) -> CommitResult:
        return self._runner.run(self.log.commit())

    def fence(self) -> int:
        return self._runner.run(self.log.fence())

    def refresh(self) -> None:
        self._runner.run(self.log.refresh())

    def records(
        self, after_seq: int = 0, kind: int | None = None
    ) -> Iterator[tuple[int, int, bytes]]:
        """Committed records with ``seq > after_seq`` (see ``JetStreamLog.records``)."""
        agen = self.log.read_chunks(after_seq, kind)
        try:
            while True:
                try:
                    batch: list[tuple[int, int, bytes]] = self._runner.run(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield from batch
        finally:
            with contextlib.suppress(Exception):
                self._runner.run(agen.aclose(), timeout=10)

    def close(self) -> None:
        """Close the log and stop its event-loop thread. Idempotent."""
        if self._runner.loop.is_closed():
            return
        try:
            self._runner.run(self.log.close(), timeout=10)
        finally:
            self._runner.stop()

    def __enter__(self) -> SyncJetStreamLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
