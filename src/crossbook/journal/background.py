"""Snapshots taken in a forked child, so that the writer pauses only for ``fork()``.

Encoding a large state takes tens of milliseconds and grows with it; done in the
writer's loop, every snapshot was a latency spike for everything in flight. Here the
writer forks: the child sees the state exactly as of the fork (copy-on-write), encodes
it and stages it (a complete, fsynced temporary file) while the parent goes on.

Invariants:

* A snapshot becomes visible only once (1) the child staged it completely and (2) the
  owner declared its log durable through the snapshot's seq (:meth:`durable`), so a
  snapshot never covers a command the log could still lose. The child waits for that
  word on a pipe; if the parent dies or gives up first, the pipe reads end-of-file and
  the child removes what it staged and exits.
* At most one child runs at a time; :meth:`start` refuses (returns ``False``) while one
  runs, and the owner simply tries again later.
* The child never touches the parent's sockets or event loop: it closes every file it
  inherited (but stdio and its pipe), resets the signal handlers, and leaves with
  ``os._exit``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from crossbook.journal.snapshots import SnapshotStore

__all__ = ["BackgroundSnapshots", "SnapshotOutcome"]

_GO = b"1"
_EXIT_PUBLISHED = 0
_EXIT_ABANDONED = 3
_CHILD_NICENESS = 10


@dataclass(frozen=True, slots=True)
class SnapshotOutcome:
    """How the last background snapshot ended."""

    seq: int
    published: bool
    seconds: float


def _forget_signal_handlers() -> None:
    """The parent's handlers (its event loop's wake-up fd) are not the child's business."""
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
    except ValueError:  # not the main thread: no handlers of the parent's run here
        pass


def _close_inherited_files(keep: int) -> None:
    """The parent's sockets and files (all but stdio and ``keep``): held open here, a
    killed parent's connections would stay open until this child ends."""
    limit = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65_536
    os.closerange(3, keep)
    os.closerange(keep + 1, limit)


class BackgroundSnapshots:
    """Forked snapshot writer for one :class:`SnapshotStore` (one per writer process)."""

    def __init__(self, store: SnapshotStore, *, keep: int = 2) -> None:
        self.store = store
        self.keep = keep
        self.last: SnapshotOutcome | None = None
        self.taken = 0
        self._lock = threading.Lock()
        self._pid = 0
        self._seq = 0
        self._go: int | None = None
        self._started = 0.0
        self._durable_through = -1

    @property
    def running(self) -> bool:
        self.poll()
        return self._pid != 0

    def start(self, seq: int, produce: Callable[[], bytes]) -> bool:
        """Fork a child that snapshots ``produce()`` as of now, at ``seq``.

        ``False`` (and nothing started) while the previous child still runs.
        """
        with self._lock:
            self._reap(block=False)
            if self._pid:
                return False
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child
                os.close(write_end)
                self._child(seq, produce, read_end)
            os.close(read_end)
            self._pid, self._seq, self._go = pid, seq, write_end
            self._started = time.monotonic()
            self._release_if_durable()
            return True

    def durable(self, seq: int) -> None:
        """The owner's log is durable through ``seq``: a snapshot at or before it (running
        now or started later) may publish."""
        with self._lock:
            self._durable_through = max(self._durable_through, seq)
            self._release_if_durable()

    def poll(self) -> SnapshotOutcome | None:
        """Reap a child that has ended (without waiting); its outcome, if one just ended."""
        with self._lock:
            return self._reap(block=False)

    def finish(self, timeout: float = 30.0) -> SnapshotOutcome | None:
        """Wait (bounded) for the running child; one still running then is killed and
        what it staged is discarded. For stopping: call :meth:`durable` first if the
        snapshot in progress may still be published."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pid:
                    return self.last
                outcome = self._reap(block=False)
                if outcome is not None:
                    return outcome
            time.sleep(0.005)
        return self.abort()

    def abort(self) -> SnapshotOutcome | None:
        """Stop the running child, if any; it publishes nothing."""
        with self._lock:
            if not self._pid:
                return None
            self._close_go()  # a child waiting for the word reads end-of-file and leaves
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            return self._reap(block=True)

    # -------------------------------------------------------------------------------------

    def _reap(self, *, block: bool) -> SnapshotOutcome | None:
        if not self._pid:
            return None
        pid, status = os.waitpid(self._pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return None
        published = os.waitstatus_to_exitcode(status) == _EXIT_PUBLISHED
        outcome = SnapshotOutcome(self._seq, published, time.monotonic() - self._started)
        self.last = outcome
        self.taken += published
        self._pid = 0
        self._close_go()
        if not published:
            self.store.remove_temp_files()  # whatever a killed child left half-written
        return outcome

    def _release_if_durable(self) -> None:
        if self._go is not None and self._durable_through >= self._seq:
            with contextlib.suppress(OSError):  # a child gone already: poll() sees how it ended
                os.write(self._go, _GO)
            self._close_go()

    def _close_go(self) -> None:
        if self._go is not None:
            os.close(self._go)
            self._go = None

    def _child(self, seq: int, produce: Callable[[], bytes], go: int) -> None:
        code = _EXIT_ABANDONED
        try:
            _forget_signal_handlers()
            _close_inherited_files(keep=go)
            os.nice(_CHILD_NICENESS)  # the writer's own work comes first on a busy machine
            staged = self.store.stage(seq, produce())
            if os.read(go, 1) == _GO:
                self.store.publish(staged, seq)
                self.store.prune(self.keep)
                code = _EXIT_PUBLISHED
            else:
                staged.unlink(missing_ok=True)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
