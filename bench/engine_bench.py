"""Standard engine benchmark: prints one JSON line per mode (engine, journaled, replay).

Usage: python bench/engine_bench.py [--orders N] [--no-fsync] ...  (same options as
``crossbook bench engine``).
"""

from crossbook.cli import app

if __name__ == "__main__":
    import sys

    app(["bench", "engine", "--json", *sys.argv[1:]])
