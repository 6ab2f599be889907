"""`run_sweep`: from the composed `sweeps/sweep.yaml` mapping to a finished (or continued) sweep.

Everything that can be refused is refused before the database is opened: the sweep settings and search
space, the launcher and what a trial asks of it, and the base run config. Nothing is written for a bad
command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dnsrec.config.sweep import SweepConfig, sweep_config
from dnsrec.config.sweep_space import apply
from dnsrec.launch import launcher_config, make_launcher
from dnsrec.launch.folders import check_if_present
from dnsrec.sweep.driver import Driver, SweepSummary, validate_run_config

NOT_RUN_KEYS = ("sweep", "launcher", "run_dir")


def prepare(raw: Mapping[str, Any]) -> tuple[SweepConfig, dict[str, Any], Any]:
    """The typed sweep settings, the base run config (trial parameters not yet applied) and the launcher
    config, all validated."""
    sweep_raw = dict(raw.get("sweep") or {})
    base = {k: v for k, v in raw.items() if k not in NOT_RUN_KEYS}
    if sweep_raw.get("name") is None:
        sweep_raw["name"] = f"{base.get('dataset', {}).get('name', 'sweep')}-dnsrec"
    cfg = sweep_config(sweep_raw)
    launcher = launcher_config(raw.get("launcher") or "local")
    validate_run_config(base)
    apply(base, {p.key: None for p in cfg.space})  # every swept key exists in the run config
    return cfg, base, launcher


def run_sweep(raw: Mapping[str, Any], db_url: str | None = None, out: Callable[[str], None] = print) -> SweepSummary:
    from dnsrec.results import open_store
    from dnsrec.results.retry import DbGrace
    from dnsrec.sweep.lease import holding_lease
    from dnsrec.sweep.study import open_study

    cfg, base, launcher_cfg = prepare(raw)
    # The sweep's folder (run directories, and job files unless launcher.folder says otherwise) is this
    # user's alone: a folder others can write is refused before anything is written or loaded.
    check_if_present(cfg.directory, "sweep folder (sweep.root/sweep.name)")
    launcher = make_launcher(launcher_cfg, cfg.directory / "jobs", cfg.parallel, cfg.poll_seconds)
    launcher.check()
    store = open_store(db_url)
    try:
        # One driver per sweep, decided before the study is touched: a second one refuses here (SweepBusy).
        with holding_lease(store, cfg.name, cfg.lease_seconds, out) as lease:
            store.grace = DbGrace(cfg.db_grace_seconds, out, f"the results database {store.url}")
            study = open_study(cfg, base, db_url, DbGrace(cfg.db_grace_seconds, out, "the study's database"))
            space = "; ".join(p.describe() for p in cfg.space)
            out(
                f"sweep {cfg.name}: {cfg.trials} trials, {cfg.parallel} in flight on launcher={launcher.name}, "
                f"objectives {' & '.join(cfg.objectives)}; space: {space}; results in {store.url}"
            )
            return Driver(cfg, base, store, study, launcher, out=out, lease=lease).run()
    finally:
        store.close()
