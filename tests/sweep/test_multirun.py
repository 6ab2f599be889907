"""Grid experiments through Hydra's multirun: each grid point one real run, recorded like `dnsrec run`.
(The same grid as ONE SLURM job array, through hydra-submitit-launcher, is in tests/launch.)"""

from __future__ import annotations

from pathlib import Path

from sweep_support import dnsrec, env_for
from tiny_runs import TINY_RUN

from dnsrec.results import RunFilter, open_store


def test_an_experiment_file_runs_its_grid_and_every_point_is_recorded(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    # the Table 7 experiment (gates.layers 0..4 on ML-1M), narrowed on the command line to two points of
    # the tiny gowalla-100 run: command-line values win over the experiment's own
    args = ["run", "-m", "+experiment=table7_gate_depth", *TINY_RUN, "gates.layers=0,3", "train.progress=false"]
    done = dnsrec(args, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    dirs = sorted((tmp_path / "runs" / "multirun").glob("*/[0-9]*"))
    assert len(dirs) == 2 and all((d / "result.json").is_file() for d in dirs)
    store = open_store(env["DNSREC_DB_URL"])
    try:
        runs = store.list_runs(RunFilter(dataset="gowalla-100"))
    finally:
        store.close()
    assert sorted(r.gate_layers for r in runs) == [0, 3] and {r.status for r in runs} == {"COMPLETE"}
    assert {r.run_dir for r in runs} == {str(d.resolve()) for d in dirs}
