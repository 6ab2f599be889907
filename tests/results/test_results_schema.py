"""Migrations and connections, on SQLite and PostgreSQL: only `dnsrec_` tables with their own version table,
beside another program's `alembic_version`; masked passwords and one-line errors when unreachable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from dnsrec.cli import main
from dnsrec.results import DatabaseUnavailable, open_store
from dnsrec.results.database import VERSION_TABLE, alembic_config, head_revision, resolve_url, verify
from dnsrec.results.models import TABLES

DNSREC_TABLES = {*TABLES, VERSION_TABLE}


def _foreign_tables(url: str) -> None:
    """What Optuna's RDB storage leaves in a shared database: its own alembic_version and tables."""
    engine = create_engine(resolve_url(url))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('v3.2.0.a')"))
        conn.execute(text("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name VARCHAR(512))"))
    engine.dispose()


def test_migrations_touch_only_dnsrec_tables(db_url: str) -> None:
    _foreign_tables(db_url)
    store = open_store(db_url)
    store.close()
    again = open_store(db_url)  # opening an up-to-date database changes nothing
    tables = set(inspect(again.engine).get_table_names())
    assert tables == DNSREC_TABLES | {"alembic_version", "studies"}
    with again.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["v3.2.0.a"]
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [head_revision()]
    verify(again.engine)  # the migrated schema is exactly the models (alembic's compare_metadata)

    cfg = alembic_config()  # and downgrading removes ours alone
    with again.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(again.engine).get_table_names()) == {"alembic_version", "studies", VERSION_TABLE}
    again.close()


def test_a_database_from_a_newer_dnsrec_is_refused(db_url: str) -> None:
    open_store(db_url).close()
    engine = create_engine(resolve_url(db_url))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(DatabaseUnavailable, match="9999"):
        open_store(db_url)


def test_unreachable_postgres_is_one_masked_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql://alice:s3cret-Pw@127.0.0.1:1/results"  # nothing listens on port 1
    with pytest.raises(DatabaseUnavailable) as err:
        open_store(url)
    message = str(err.value)
    assert "s3cret-Pw" not in message and "alice:***@127.0.0.1:1/results" in message and "\n" not in message
    monkeypatch.setenv("DNSREC_DB_URL", url)
    assert main(["results", "list"]) == 2
    out = capsys.readouterr()
    assert "s3cret-Pw" not in out.err + out.out and out.err.startswith("dnsrec: error: cannot reach")
    assert main(["results", "list", "--db", url]) == 2  # typed on a command line: refused, never echoed
    out = capsys.readouterr()
    assert "s3cret-Pw" not in out.err + out.out and "a password on the command line" in out.err


def test_wrong_password_on_a_real_server_is_masked(postgres: Any) -> None:
    with pytest.raises(DatabaseUnavailable) as err:
        open_store(f"postgresql://{postgres.user}:Wr0ng-Secret@127.0.0.1:{postgres.port}/postgres")
    assert "Wr0ng-Secret" not in str(err.value) and "***" in str(err.value)
    assert "password authentication failed" in str(err.value)


def test_unusable_sqlite_location_and_bad_urls_are_clear(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DatabaseUnavailable, match="cannot create"):
        open_store(f"sqlite:///{tmp_path / 'file' / 'sub' / 'x.db'}")
    with pytest.raises(DatabaseUnavailable, match="unsupported database"):
        open_store("mysql://bob:pw@localhost/db")
    with pytest.raises(DatabaseUnavailable, match="not a database URL"):
        open_store("nonsense")


def test_default_url_is_a_sqlite_file_under_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DNSREC_DB_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    open_store().close()
    assert (tmp_path / "runs" / "dnsrec.db").is_file()
    monkeypatch.setenv("DNSREC_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    open_store().close()
    assert (tmp_path / "env.db").is_file()
