"""Project a data dir's journal into SQL (the ledger writer's loop, embedded layout).

Reads the journal's events records after the projection's progress for this log and
hands them to :class:`~crossbook.ledger.writer.ProjectionWriter` in batches. Safe to
run any number of times: the writer skips what it has already applied.
"""

from __future__ import annotations

from pathlib import Path

from crossbook.domain.codec import events_decoder
from crossbook.journal.framing import EVENTS
from crossbook.journal.log import Journal
from crossbook.ledger.db import default_url, migrate
from crossbook.ledger.queries import progress
from crossbook.ledger.writer import ProjectionWriter

LOG_NAME = "exchange"


def project(
    data_dir: Path,
    url: str | None = None,
    *,
    journal: Journal | None = None,
    batch: int = 2_000,
) -> int:
    """Bring the SQL projection of ``data_dir`` up to date; returns the items written.

    Pass the running service's ``journal`` when it is open in this process: a
    journal must have one owner (opening it recovers, i.e. may truncate its tail).
    """
    url = url or default_url(data_dir)
    migrate(url)
    writer = ProjectionWriter(url)
    after = progress(url).get(LOG_NAME, 0)
    owned = journal is None
    if journal is None:
        journal = Journal.open(data_dir / "journal", fsync=False)
    written = 0
    pending: list[tuple[int, list[object]]] = []
    try:
        for kind, seq, payload in journal.records(after_seq=after):
            if kind != EVENTS or seq <= after:
                continue
            pending.append((seq, events_decoder.decode(payload)))
            if len(pending) >= batch:
                writer.write(LOG_NAME, pending)
                written += len(pending)
                pending = []
        if pending:
            writer.write(LOG_NAME, pending)
            written += len(pending)
    finally:
        if owned:
            journal.close()
    return written
