"""Process-level settings for long-running engine processes."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Move everything alive now out of the collector's sight and make collections rare.

    The engine's long-lived objects (resting orders) would otherwise be re-scanned by
    every full collection, which shows up as latency spikes; garbage with cycles is
    rare on the hot path (orders unlink themselves when they leave the book).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
