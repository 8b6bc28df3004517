"""Durable I/O for the ordered input logs: CRC-framed segmented journal and snapshots.

The journal is the truth (write-ahead, group commit); snapshots are a cache of the
state at a log position. Restart = ``SnapshotStore.latest()`` + ``Journal.records(seq)``.
"""

from crossbook.journal.framing import (
    COMMAND,
    EVENTS,
    RecordIterator,
    Stop,
    encode_record,
    iter_records,
)
from crossbook.journal.log import Journal, JournalCorrupted, JournalError, Recovery
from crossbook.journal.snapshots import SkippedSnapshot, SnapshotStore

__all__ = [
    "COMMAND",
    "EVENTS",
    "Journal",
    "JournalCorrupted",
    "JournalError",
    "RecordIterator",
    "Recovery",
    "SkippedSnapshot",
    "SnapshotStore",
    "Stop",
    "encode_record",
    "iter_records",
]
