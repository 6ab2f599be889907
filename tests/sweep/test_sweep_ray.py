"""The same sweep through the Ray launcher: a private local Ray (`ray.init()`), one Ray task per trial."""

from __future__ import annotations

from pathlib import Path

from sweep_support import dnsrec, env_for, states, study_trials, sweep_args

from dnsrec.results import RunFilter, open_store


def test_ray_sweep_of_six_trials_two_in_flight_is_recorded(tmp_path: Path) -> None:
    env = env_for(tmp_path, RAY_ENABLE_UV_RUN_RUNTIME_ENV="0")
    done = dnsrec(["sweep", *sweep_args("ray6", 6, 2, "launcher=ray")], tmp_path, env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on launcher=ray" in done.stdout and "6/6 done" in done.stdout
    assert states(study_trials(tmp_path / "results.db", "ray6")) == {"COMPLETE": 6}
    store = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    try:
        runs = store.list_runs(RunFilter(sweep="ray6"))
    finally:
        store.close()
    assert len(runs) == 6 and {r.status for r in runs} == {"COMPLETE"} and {r.launcher for r in runs} == {"ray"}
