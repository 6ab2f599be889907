"""Ad-hoc grids through Hydra's multirun: each grid point one real run, recorded like `dnsrec run`.
(The same grid as ONE SLURM job array, through hydra-submitit-launcher, is in tests/launch. The paper's
grids are `dnsrec reproduce` tables, tested in tests/reproduce.)"""

from __future__ import annotations

import json
from pathlib import Path

from sweep_support import dnsrec, env_for
from tiny_runs import TINY_RUN

from dnsrec.results import RunFilter, open_store


def test_a_command_line_grid_runs_every_point_and_every_point_is_recorded(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    # `dnsrec run -m dataset=... gates.layers=0,1,2,3,4`, narrowed to two points of the tiny gowalla-100 run
    args = ["run", "-m", *TINY_RUN, "gates.layers=0,3", "train.progress=false"]
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
    # each directory holds the run of its own point, as recorded
    by_dir = {r.run_dir: r.gate_layers for r in runs}
    for d in dirs:
        result = json.loads((d / "result.json").read_text())
        assert result["architecture"]["gate_layers"] == by_dir[str(d.resolve())]
