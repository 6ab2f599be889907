"""benchmarks/space_oracle.py on a tiny space: every depth at every width retrained alone, the table's numbers
read back from each run's result.json, the rank and the front recomputed here, and the searched choice's
standalone retraining equal to the searched run's own (a whole run retrains its architecture from scratch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tiny_runs import TINY_RUN

from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.pipeline import dnsrec_run
from dnsrec.results.pareto import dominated
from dnsrec.run_result import RESULT_FILE, RunResult

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "space_oracle.py"
TINY_SPACE = [o for o in TINY_RUN if not o.startswith("dataset=")]


def test_every_architecture_of_the_space_is_retrained_and_ranked(tmp_path: Path) -> None:
    searched = tmp_path / "searched"
    dnsrec_run(RunConfig.from_mapping(compose("run", TINY_RUN)), searched, log=lambda _: None)
    out_dir = tmp_path / "space"
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--dataset", "gowalla-100", "--seeds", "0", "--jobs", "1", "--out",
         str(out_dir), "--searched", str(searched), "--", *TINY_SPACE],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    rows = {line.split(" | ")[0]: line.split(" | ") for line in out.splitlines() if line.startswith("d")}
    # The tiny space: d 16 with pruning {0, 50, 75}% (widths 16, 8, 4), 2 layers: six architectures.
    assert sorted(rows) == ["d1w16", "d1w4", "d1w8", "d2w16", "d2w4", "d2w8"]
    results = {name: RunResult.read(out_dir / f"{name}-seed0" / RESULT_FILE) for name in rows}
    for name, r in results.items():
        assert {len(r.architecture["hidden"])} == {int(name[1])} and set(r.architecture["hidden"]) == {int(name[3:])}
        assert rows[name][1] == f"{r.flops['model'] / 1e6:.2f}"
        assert rows[name][2].startswith(f"{r.metrics['valid']['pop100/ndcg@10']:.4f} ")
        assert rows[name][4].startswith(f"{r.metrics['test']['pop100/ndcg@10']:.4f} ")
    valid = {name: r.metrics["valid"]["pop100/ndcg@10"] for name, r in results.items()}
    for name in rows:
        assert int(rows[name][3]) == 1 + sum(v > valid[name] for v in valid.values())
    flops = {name: r.flops["model"] for name, r in results.items()}
    undominated = {a for a in rows if not any(dominated((valid[a], flops[a]), (valid[b], flops[b])) for b in rows)}
    front_line = next(line for line in out.splitlines() if line.startswith("validation Pareto front"))
    assert set(front_line.split(": ", 1)[1].split(", ")) == undominated
    # The searched run's choice: counted once, and its standalone retraining is the searched run's own.
    chosen = RunResult.read(searched / RESULT_FILE)
    name = f"d{len(chosen.architecture['hidden'])}w{chosen.architecture['hidden'][0]}"
    assert rows[name][6] == "1" and sum(int(r[6]) for r in rows.values()) == 1
    assert results[name].metrics == chosen.metrics
    assert f"searched choice {name} (1 of 1 runs): validation rank {rows[name][3]} of 6" in out
