"""The private PostgreSQL of the test session is really private."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url

from crossbook.ledger import make_engine
from tests.pg import DEFAULT_PORT


def test_postgres_server_is_private(postgres_server: str) -> None:
    url = make_url(postgres_server)
    assert (url.drivername, url.host, url.username) == (
        "postgresql+psycopg",
        "127.0.0.1",
        "postgres",
    )
    assert url.port != DEFAULT_PORT
    engine = make_engine(postgres_server)
    try:
        with engine.connect() as conn:
            data_dir = conn.execute(text("SHOW data_directory")).scalar_one()
            version = conn.execute(text("SHOW server_version_num")).scalar_one()
            listen = conn.execute(text("SHOW listen_addresses")).scalar_one()
    finally:
        engine.dispose()
    assert "/crossbook-pg-" in data_dir
    assert int(version) // 10000 == 15
    assert listen == "127.0.0.1"
