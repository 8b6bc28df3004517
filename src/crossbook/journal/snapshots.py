"""Atomic, CRC-checked snapshot files.

A snapshot of the state covering the input log up to ``seq`` is the file
``snapshot-{seq:020d}.snap`` = header ``SNAP_HEADER = struct.Struct("<8sQQI")`` =
``(MAGIC, seq, length, crc)`` followed by ``length`` bytes of data, where ``crc`` is
the CRC32 of the header's ``seq`` and ``length`` fields and the data.

Invariants:

* A snapshot file is either absent or complete: it is written under a temporary
  name in the same directory, fsynced, renamed into place with ``os.replace``, and
  the directory is fsynced. Temporary files are never read; they carry their
  writer's pid and are deleted when found unless that writer is alive (it may be
  staging one, see :mod:`crossbook.journal.background`).
* ``latest`` only returns a snapshot whose magic, seq (equal to the name's), length
  (equal to the data's) and CRC are valid; others are skipped and listed in
  ``skipped``.

One writer per directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
import tempfile
import zlib
from pathlib import Path

__all__ = [
    "MAGIC",
    "SNAP_HEADER",
    "SkippedSnapshot",
    "SnapshotStore",
    "decode_snapshot",
    "encode_snapshot",
    "snapshot_name",
]

MAGIC = b"CBSNAP01"
SNAP_HEADER = struct.Struct("<8sQQI")
_SEQ_LEN = struct.Struct("<QQ")
_SNAP_RE = re.compile(r"snapshot-(\d{20})\.snap")
_TMP_PREFIX = ".snapshot-"
_TMP_SUFFIX = ".tmp"
_TMP_PID = re.compile(r"(\d+)-")


def snapshot_name(seq: int) -> str:
    """File name of the snapshot covering the log up to ``seq``."""
    return f"snapshot-{seq:020d}.snap"


@dataclasses.dataclass(frozen=True, slots=True)
class SkippedSnapshot:
    """A snapshot file ``latest`` could not use, and why."""

    path: Path
    seq: int
    reason: str


def _crc(seq: int, data: bytes | bytearray | memoryview) -> int:
    return zlib.crc32(data, zlib.crc32(_SEQ_LEN.pack(seq, len(data))))


def encode_snapshot(seq: int, data: bytes | bytearray | memoryview) -> bytes:
    """A snapshot as one self-checking blob (the file format: header, then the data), to
    keep elsewhere than in a store's directory (an object store)."""
    return SNAP_HEADER.pack(MAGIC, seq, len(data), _crc(seq, data)) + bytes(data)


def decode_snapshot(blob: bytes) -> tuple[int, bytes]:
    """``(seq, data)`` of a blob made by :func:`encode_snapshot`; ``ValueError`` if it is
    damaged (short, bad magic, wrong length or CRC)."""
    if len(blob) < SNAP_HEADER.size:
        raise ValueError(f"short snapshot header: {len(blob)} bytes")
    magic, seq, length, crc = SNAP_HEADER.unpack_from(blob)
    data = blob[SNAP_HEADER.size :]
    if magic != MAGIC:
        raise ValueError("bad snapshot magic")
    if length != len(data):
        raise ValueError(f"snapshot length {len(data)}, header says {length}")
    if _crc(seq, data) != crc:
        raise ValueError("snapshot CRC mismatch")
    return seq, data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotStore:
    """Snapshots in one directory (created if needed); stale temp files are removed.

    ``skipped`` lists the invalid snapshots met by the last ``latest``/``prune``.
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.skipped: list[SkippedSnapshot] = []
        self._fsync = fsync
        self.remove_temp_files()

    def write(self, seq: int, data: bytes | bytearray | memoryview) -> Path:
        """Atomically store ``data`` as the snapshot at ``seq`` (replacing one at the same seq)."""
        return self.publish(self.stage(seq, data), seq)

    def stage(self, seq: int, data: bytes | bytearray | memoryview) -> Path:
        """Write the snapshot at ``seq`` under a temporary name (complete and fsynced, but
        invisible to :meth:`latest` until :meth:`publish`); returns the temporary path."""
        if not 0 <= seq < 2**64:
            raise ValueError(f"snapshot seq must be in 0..2**64-1, got {seq}")
        header = SNAP_HEADER.pack(MAGIC, seq, len(data), _crc(seq, data))
        prefix = f"{_TMP_PREFIX}{os.getpid()}-"
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=_TMP_SUFFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                f.write(data)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    def publish(self, staged: Path, seq: int) -> Path:
        """Rename a snapshot written by :meth:`stage` into place, atomically."""
        final = self.directory / snapshot_name(seq)
        try:
            os.replace(staged, final)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        if self._fsync:
            _fsync_dir(self.directory)
        return final

    def seqs(self) -> list[int]:
        """Seqs of the snapshot files present (valid or not), ascending."""
        return [seq for seq, _ in self._files()]

    def latest(self) -> tuple[int, bytes] | None:
        """``(seq, data)`` of the newest valid snapshot, or ``None`` if there is none.

        Newer invalid snapshots are skipped and recorded in ``skipped``.
        """
        self.skipped = []
        for seq, path in reversed(self._files()):
            data = self._load(seq, path)
            if data is not None:
                return seq, data
        return None

    def prune(self, keep: int = 2) -> list[Path]:
        """Keep the ``keep`` newest valid snapshots; delete every other snapshot file.

        Invalid snapshots are deleted too (and recorded in ``skipped``), as are temp
        files. Returns the deleted snapshot paths.
        """
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.skipped = []
        kept = 0
        deleted: list[Path] = []
        for seq, path in reversed(self._files()):
            if kept < keep and self._load(seq, path) is not None:
                kept += 1
                continue
            path.unlink(missing_ok=True)
            deleted.append(path)
        self.remove_temp_files()
        if deleted and self._fsync:
            _fsync_dir(self.directory)
        return deleted

    def _files(self) -> list[tuple[int, Path]]:
        found = [
            (int(m.group(1)), self.directory / m.group(0))
            for m in (_SNAP_RE.fullmatch(e.name) for e in os.scandir(self.directory))
            if m is not None
        ]
        found.sort()
        return found

    def _load(self, seq: int, path: Path) -> bytes | None:
        """The data of a valid snapshot file, else ``None`` (recorded in ``skipped``)."""
        try:
            with path.open("rb") as f:
                head = f.read(SNAP_HEADER.size)
                data = f.read()  # the rest, without copying the header along
        except FileNotFoundError:
            return None
        if len(head) < SNAP_HEADER.size:
            reason = f"short header: {len(head)} bytes"
        else:
            magic, hseq, length, crc = SNAP_HEADER.unpack(head)
            if magic != MAGIC:
                reason = "bad magic"
            elif hseq != seq:
                reason = f"header seq {hseq} differs from the file name's"
            elif length != len(data):
                reason = f"length {len(data)}, header says {length}"
            elif _crc(seq, data) != crc:
                reason = "CRC mismatch"
            else:
                return data
        self.skipped.append(SkippedSnapshot(path, seq, reason))
        return None

    def remove_temp_files(self) -> None:
        """Delete what :meth:`stage` left unpublished: temporary files of this process or of
        processes that are gone (another live process may be staging one right now)."""
        me = os.getpid()
        for entry in os.scandir(self.directory):
            name = entry.name
            if not (name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)):
                continue
            writer = _TMP_PID.match(name, len(_TMP_PREFIX))
            if writer is None or int(writer.group(1)) == me or not _alive(int(writer.group(1))):
                Path(entry.path).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
