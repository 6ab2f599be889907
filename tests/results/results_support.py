"""Helpers of the results tests (a plain module, so test files can import them; conftest.py holds the
fixtures): a private PostgreSQL server, fresh databases on every backend, a hand-made RunResult."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.dialects import postgresql
from system_deps import INSTALL_HINT, postgres_bindir

from dnsrec.results.database import alembic_config, create, resolve_url
from dnsrec.run_result import RunResult

BACKENDS = ("sqlite", "postgresql")
DATA_DIR = Path(os.environ.get("DNSREC_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str
    password: str
    ctl: tuple[str, ...] = ()  # pg_ctl of this cluster (with its runuser prefix, data and log options)
    options: str = ""  # the server options it was started with (port, socket directory, no fsync)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut (AdminShutdown), and the server comes back."""
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "-o", self.options, "restart")

    def stop(self) -> None:
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-t", "60", "-o", self.options, "start")

    def _pg_ctl(self, *args: str) -> None:
        done = subprocess.run([*self.ctl, *args], capture_output=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"pg_ctl {' '.join(args)}: {done.stderr.decode()}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            autocommit=True,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the cluster did not start (the tests then fail, never skip)."""


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A private cluster: initdb in a temporary directory, pg_ctl start on a free loopback port with
    password (scram) authentication over TCP; stopped and removed on exit. As root, initdb refuses to
    run, so the cluster belongs to the `postgres` user (created by Debian's postgresql package)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH: "
            f"{INSTALL_HINT}"
        )
    root = Path(tempfile.mkdtemp(prefix="dnsrec-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError as e:
            raise PostgresUnavailable("running as root and there is no `postgres` user to run initdb as") from e
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(0, "dnsrec", secrets.token_urlsafe(12))
    pwfile = root / "pw"
    pwfile.write_text(server.password)
    if as_user:
        shutil.chown(pwfile, "postgres")
    data = root / "data"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", server.user, "--pwfile", str(pwfile)]
    initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"]
    made = subprocess.run([*as_user, *initdb], capture_output=True, stdin=subprocess.DEVNULL)
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {made.stderr.decode()[-2000:]}")
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")]
    for _ in range(3):  # another process may take the free port between choosing and binding it
        port = _free_port()
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -F"  # -F: no fsync, a test server
        started = subprocess.run(
            [*pg_ctl, "-w", "-t", "60", "-o", options, "start"], capture_output=True, stdin=subprocess.DEVNULL
        )
        if started.returncode == 0:
            break
    else:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        raise PostgresUnavailable(f"PostgreSQL did not start: {started.stderr.decode()} {log[-2000:]}")
    try:
        yield dataclasses.replace(server, port=port, ctl=tuple(pg_ctl), options=options)
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, stdin=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def new_database(backend: str, directory: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database: a new SQLite file, or a new database on the session's server."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    if backend == "sqlite":
        return f"sqlite:///{directory / name}.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def runs_at_revision(db_url: str, revision: str, rows: list[dict[str, Any]]) -> None:
    """The database at `db_url` migrated only to `revision`, with `rows` in `dnsrec_runs` as that revision's
    code recorded them: every given column text, except `config` and `environment` (JSON); `recorded_at` is
    now. For testing what a later migration does to older rows (open_store then upgrades to head)."""
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    names = sorted({name for row in rows for name in row} - {"config", "environment"})
    runs = sa.table(
        "dnsrec_runs",
        *(sa.column(name, sa.String()) for name in names),
        sa.column("config", json),
        sa.column("environment", json),
        sa.column("recorded_at", sa.DateTime(timezone=True)),
    )
    engine = create(resolve_url(db_url))
    try:
        cfg = alembic_config()
        with engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as connection:
            connection.execute(
                sa.insert(runs), [{"environment": {}, "config": {}} | row | {"recorded_at": now} for row in rows]
            )
    finally:
        engine.dispose()


def build_result(**changes: Any) -> RunResult:
    """A complete, valid RunResult built by hand; `ndcg`, `flops`, `lam` and `seed` are shortcuts."""
    ndcg, flops = changes.pop("ndcg", 0.3), changes.pop("flops", 100_000)
    lam, seed = changes.pop("lam", 0.1), changes.pop("seed", 0)
    metrics = {
        split: {f"{p}/{m}@10": round(ndcg * (1.0 if p == "pop100" else 0.5) * (1.2 if m == "recall" else 1.0), 6)
                for p in ("pop100", "full") for m in ("recall", "mrr", "ndcg")}
        for split in ("valid", "test")
    }  # fmt: skip
    config = {
        "attention": "linear",
        "dataset": {"name": changes.get("dataset", "ml-100k"), "d": 64, "inner": 256},
        "gates": {"layers": 2},
        "retrain": {"batch": 2048, "init": "transfer", "max_epochs": 200, "patience": 10, "shape": "narrow"},
        "search": {"lam": lam, "epochs": 10, "batch": 1024},
        "train": {"lr": 0.001, "seed": seed, "batch": 2048},
    }
    base: dict[str, Any] = {
        "stage": "run",
        "dataset": "ml-100k",
        "config": config,
        "metrics": metrics,
        "best_epoch": 7,
        "epochs": 17,
        "stopped": "patience",
        "n_params": 12_345,
        "seconds_per_epoch": 1.5,
        "train_seconds": 25.5,
        "eval_seconds": {"valid": 0.5, "test": 0.5},
        "environment": {"host": "node1", "device": "cpu (fp32)", "git_commit": "abc123", "torch": "2.13.0"},
        "started_at": "2026-11-28T05:00:00+00:00",
        "finished_at": "2026-11-28T05:10:00+00:00",
        "flops": {"model": flops, "model_scoring": 5_000, "supernet": 10 * flops, "supernet_scoring": 20_000},
        "supernet_params": 99_999,
        "seconds": {"search": 30.0, "retrain": 26.0, "inference": 0.25},
        "peak_memory_mb": 512.0,
        "inference_memory_mb": 48.5,
        "architecture": {
            "d": 64,
            "inner": 256,
            "head_dim": 16,
            "hidden": [32, 16],
            "inner_widths": [128, 64],
            "gate_layers": 2,
            "candidates": [1, 2],
        },
        "search": {"best_epoch": 3, "steps": 100, "trajectory": []},
    }
    base.update(changes)
    return RunResult(**base)
