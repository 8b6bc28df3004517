"""``python -m crossbook``: the command line."""

from crossbook.cli import app

app()
