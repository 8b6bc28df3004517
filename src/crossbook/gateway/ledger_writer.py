"""The embedded ledger writer process: journal -> SQL, beside the exchange process.

Run by the gateway (``python -m crossbook.gateway.ledger_writer DATA_DIR URL``), it
reads on stdin the seqs the exchange has made durable (``D <seq>`` lines), projects
the journal's events up to them into SQL, and answers with the seq it has projected
(``P <seq>`` lines). End of stdin: project what is left, then exit. Writing SQL in its
own process keeps that work off the exchange's interpreter lock.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from crossbook.domain.codec import events_decoder
from crossbook.journal.framing import EVENTS
from crossbook.journal.tail import JournalTail
from crossbook.ledger.db import migrate
from crossbook.ledger.queries import progress
from crossbook.ledger.writer import ProjectionWriter
from crossbook.projection import LOG_NAME


def main(data_dir: Path, url: str) -> None:
    # a Ctrl-C or SIGTERM for the whole process group is the exchange's to handle: this
    # process ends when its stdin does, after projecting what it was told is durable
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    migrate(url)
    writer = ProjectionWriter(url)
    done = progress(url).get(LOG_NAME, 0)
    tail = JournalTail(data_dir / "journal", after_seq=done)
    cond = threading.Condition()
    state = {"durable": 0, "eof": False}

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.startswith("D "):
                with cond:
                    state["durable"] = max(state["durable"], int(line[2:]))
                    cond.notify()
        with cond:
            state["eof"] = True
            cond.notify()

    threading.Thread(target=read_stdin, daemon=True).start()
    print(f"P {done}", flush=True)
    while True:
        with cond:
            cond.wait_for(lambda done=done: state["durable"] > done or state["eof"])  # type: ignore[misc]
            durable, eof = int(state["durable"]), bool(state["eof"])
        if durable > done:
            batch = [
                (seq, events_decoder.decode(payload))
                for kind, seq, payload in tail.read(durable)
                if kind == EVENTS
            ]
            if batch:
                writer.write(LOG_NAME, batch)
            done = durable
            print(f"P {done}", flush=True)
        elif eof:
            writer.engine.dispose()
            return


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
