"""Alembic environment of the dnsrec results database.

Why it looks like this: Optuna's storage shares the database and keeps its own `alembic_version` table,
so ours is `dnsrec_alembic_version` and autogenerate only ever sees `dnsrec_` tables (a migration must
never touch another program's tables). `dnsrec.results.store.open_store` runs this programmatically on a
connection it passes in `config.attributes["connection"]`; from a shell it is
`DNSREC_DB_URL=... alembic -c db/alembic.ini upgrade head`. Two processes upgrading at once are
serialised: PostgreSQL by an advisory lock, SQLite by the store's `BEGIN IMMEDIATE` transactions.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, text

from dnsrec.results.database import DEFAULT_URL, VERSION_TABLE, include_name
from dnsrec.results.models import Base

ADVISORY_LOCK = 0x646E_7372  # "dnsr": any constant shared by every dnsrec migrator

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_on(connection: Connection) -> None:
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        _configure(connection=connection)
        context.run_migrations()


def url() -> str:
    return config.get_main_option("sqlalchemy.url") or os.environ.get("DNSREC_DB_URL") or DEFAULT_URL


if context.is_offline_mode():  # `alembic upgrade head --sql`: print the DDL for a DBA
    _configure(url=url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    run_on(given)
else:
    engine = create_engine(url())
    with engine.connect() as connection:
        run_on(connection)
    engine.dispose()
