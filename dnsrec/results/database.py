"""Where the results database is and how to open it: URL, engine, migrations, schema check.

Why here and not in the store: these are the only places that know about backends. SQLite gets a busy
timeout and `BEGIN IMMEDIATE` transactions (a writer takes the lock when it starts, so concurrent
writers queue instead of failing with "database is locked" when a read turns into a write), and foreign
keys switched on; PostgreSQL gets a short connect timeout. Every message shows the URL with its password
masked.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from dnsrec.results.errors import DatabaseUnavailable
from dnsrec.results.models import PREFIX, Base

DEFAULT_URL = "sqlite:///runs/dnsrec.db"
# The Alembic environment, beside the package like `sweeps/` (override for an installed copy).
DB_DIR = Path(os.environ.get("DNSREC_DB_DIR", Path(__file__).resolve().parents[2] / "db"))
VERSION_TABLE = PREFIX + "alembic_version"  # Optuna owns `alembic_version` in a shared database
CONNECT_TIMEOUT_S = 5
PASSWORD_FILE_ENV = "DNSREC_DB_PASSWORD_FILE"
SQLITE_BUSY_TIMEOUT_S = 60


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic sees only dnsrec's tables: other programs' tables are never altered or dropped."""
    return type_ != "table" or (name or "").startswith(PREFIX)


def resolve_url(url: str | URL | None = None) -> URL:
    """The URL given, else $DNSREC_DB_URL, else a SQLite file under runs/."""
    raw = url if url is not None else os.environ.get("DNSREC_DB_URL") or DEFAULT_URL
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError) as e:  # ValueError: a port that is not a number (`host:x@y`)
        raise DatabaseUnavailable(f"not a database URL: {mask_text(str(raw))}") from e
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
        raise DatabaseUnavailable(f"unsupported database {masked(parsed)}: use sqlite:///FILE or postgresql://...")
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we install
    if parsed.get_backend_name() != "sqlite" and parsed.password is None and os.environ.get(PASSWORD_FILE_ENV):
        parsed = parsed.set(password=read_password_file(Path(os.environ[PASSWORD_FILE_ENV])))
    return parsed


def read_password_file(path: Path) -> str:
    """The database password from a file only its owner can read (like ~/.pgpass): a file others can read
    is refused, since the password would then not be a secret."""
    try:
        info = path.stat()
        text = path.read_text()
    except OSError as e:
        raise DatabaseUnavailable(f"{PASSWORD_FILE_ENV}={path}: cannot read the password file ({e.strerror})") from e
    if info.st_mode & 0o077 or info.st_uid != os.getuid():
        raise DatabaseUnavailable(
            f"{PASSWORD_FILE_ENV}={path}: mode {info.st_mode & 0o777:o}; the password file must be owned by you "
            "and readable by you alone (chmod 600)"
        )
    return text.strip()


def refuse_password_in_argument(url: str | None) -> None:
    """A password typed on a command line is visible to every user (ps, shell history): refuse it there."""
    if url is None:
        return
    try:
        has_password = make_url(url).password is not None
    except (ArgumentError, ValueError):
        return  # resolve_url gives the clear error
    if has_password:
        raise DatabaseUnavailable(
            f"--db {mask_text(url)}: a password on the command line is visible to other users; put the URL in "
            f"DNSREC_DB_URL, or the password in {PASSWORD_FILE_ENV} (a file only you can read), PGPASSWORD or ~/.pgpass"
        )


def masked(url: URL) -> str:
    """The URL with its password masked by text, not by SQLAlchemy's parse: a password holding an unescaped
    `@` is parsed as its part before the `@`, and `hide_password` then showed the rest of it."""
    return mask_text(url.render_as_string(hide_password=True), url)


# `scheme://user:` then everything up to the LAST `@` of the same run of non-blank characters: a password
# may hold `@ : / % #` unescaped, a user name and a host hold no `@`.
_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)\S*@")


def mask_text(text: str, url: URL | None = None) -> str:
    """`text` with any password removed: the URL's own, and anything shaped like `scheme://user:pw@`."""
    if url is not None and url.password:
        secret = str(url.password)
        if url.host and "@" in url.host:
            # A password split at an unescaped `@`: its rest was parsed as the start of the host (which a
            # driver's message quotes: "failed to resolve host 'ss@w0rd@db'"), its first part may be one
            # letter that ordinary words hold too, so only the whole password and that rest are replaced.
            rest = url.host.rsplit("@", 1)[0]
            secret = f"{secret}@{rest}"
            text = text.replace(secret, "***").replace(f"{rest}@", "***@")
        text = text.replace(secret, "***")
    return _PASSWORD.sub(r"\1***@", text)


def create(url: URL) -> Engine:
    serializer = functools.partial(json.dumps, allow_nan=False, sort_keys=True)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, json_serializer=serializer)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    try:
        return create_engine(
            url,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            json_serializer=serializer,
            pool_pre_ping=True,
        )
    except NoSuchModuleError as e:
        raise DatabaseUnavailable(f"no driver for {masked(url)}: install psycopg[binary]") from e


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's `begin` event issues BEGIN IMMEDIATE itself
    dbapi_connection.execute("PRAGMA foreign_keys = ON")


def alembic_config() -> Config:
    if not (DB_DIR / "env.py").is_file():
        raise DatabaseUnavailable(f"Alembic environment {DB_DIR} not found (set DNSREC_DB_DIR)")
    cfg = Config()
    cfg.set_main_option("script_location", str(DB_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "db/versions holds no migration"
    return head


def upgrade(engine: Engine) -> None:
    """`alembic upgrade head` on this engine; then check the tables are exactly the models'."""
    cfg = alembic_config()
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        try:
            command.upgrade(cfg, "head")
        except CommandError as e:
            raise DatabaseUnavailable(
                f"cannot upgrade {masked(engine.url)} to schema {head_revision()}: {e} "
                "(a newer dnsrec may have written it: upgrade dnsrec)"
            ) from e
    verify(engine)


def verify(engine: Engine) -> None:
    with engine.connect() as connection:
        ctx = MigrationContext.configure(
            connection, opts={"include_name": include_name, "compare_type": True, "version_table": VERSION_TABLE}
        )
        diffs = compare_metadata(ctx, Base.metadata)
        current = ctx.get_current_revision()
    if diffs or current != head_revision():
        raise DatabaseUnavailable(
            f"the schema of {masked(engine.url)} (revision {current}) does not match dnsrec's models "
            f"(revision {head_revision()}): {diffs[:3]}"
        )


def describe_db_error(e: DBAPIError, url: URL) -> str:
    """One line: the driver's first line of complaint, without SQL, parameters or password."""
    first = str(e.orig).strip().splitlines()[0] if e.orig is not None else type(e).__name__
    if url.get_backend_name() == "sqlite" and "disk is full" in first:  # SQLITE_FULL
        return f"no space left on device for {url.database} (SQLite: {first})"
    return mask_text(first, url)
