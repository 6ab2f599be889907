"""Real sweeps on the local launcher: every trial a real DNS-Rec run on real data in its own process,
recorded in the results database, with crashes, interruptions and restarts of the driver."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sweep_support import dnsrec, env_for, start_dnsrec, states, study_trials, sweep_args, wait_for_line

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.results import RunFilter, open_store
from dnsrec.run_result import RunResult
from dnsrec.sweep import run_sweep


def test_local_sweep_of_six_trials_two_in_flight_is_recorded_and_queryable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'results.db'}"
    raw = compose("sweep", sweep_args("local6", 6, 2, f"sweep.root={tmp_path / 'sweeps'}"))
    summary = run_sweep(raw, db, out=lambda _: None)
    assert summary.complete == 6 and summary.failed_here == 0

    trials = study_trials(tmp_path / "results.db", "local6")
    assert states(trials) == {"COMPLETE": 6}
    store = open_store(db)
    try:
        runs = store.list_runs(RunFilter(sweep="local6"))
    finally:
        store.close()
    assert len(runs) == 6 and {r.status for r in runs} == {"COMPLETE"}
    assert len({r.run_dir for r in runs}) == 6
    by_trial = {r.trial: r for r in runs}
    for t in trials:  # each row holds the point Optuna asked for and the values it was told
        row = by_trial[t.number]
        assert row.lam == pytest.approx(t.params["search.lam"]) and row.gate_layers == t.params["gates.layers"]
        assert row.lr == pytest.approx(t.params["lr"])
        assert row.flops == pytest.approx(t.values[1])
        assert Path(row.run_dir, "result.json").is_file()
    assert all(r.launcher == "local" for r in runs)

    assert main(["results", "list", "--db", db, "--sweep", "local6"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 7 and all("local6" in line for line in listed[1:])
    assert main(["results", "status", "--db", db, "local6"]) == 0
    assert "6/6 done, 0 in flight, 0 failed" in capsys.readouterr().out
    assert main(["results", "pareto", "--db", db, "--sweep", "local6", "--metric", "valid/pop100/ndcg@10"]) == 0
    front = capsys.readouterr().out
    assert "of 6 complete runs on the valid/pop100/ndcg@10 vs flops front" in front


def test_a_crashed_worker_fails_its_trial_with_the_reason_and_is_retried(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    proc = start_dnsrec(["sweep", *sweep_args("crash", 3, 2)], tmp_path, env)
    seen: list[str] = []
    pid = int(wait_for_line(proc, r"trial 0 submitted as job (\d+)", seen).group(1))
    os.kill(pid, signal.SIGKILL)  # a real crash of the worker process (out of memory, node trouble)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, "".join(seen) + out

    trials = study_trials(tmp_path / "results.db", "crash")
    assert states(trials) == {"COMPLETE": 3, "FAIL": 1}
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert "killed by signal SIGKILL" in failed.user_attrs["fail_reason"]
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == failed.number)
    assert retry.state.name == "COMPLETE" and retry.params == failed.params
    assert retry.user_attrs["run_dir"] == failed.user_attrs["run_dir"] and retry.user_attrs["attempt"] == 2
    assert "FAILED: worker process killed by signal SIGKILL" in out and "retried as attempt 2" in out


def test_interrupted_and_killed_drivers_continue_to_exactly_the_requested_trials(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    # a short lease: the killed driver's expires soon, and the rerun takes the sweep over (case 3 of issue 10)
    args = ["sweep", *sweep_args("resume", 4, 2, "sweep.lease_seconds=2")]
    db = tmp_path / "results.db"

    # Ctrl-C: jobs cancelled, their trials FAILED with the reason and queued again, nothing RUNNING
    proc = start_dnsrec(args, tmp_path, env)
    seen: list[str] = []
    wait_for_line(proc, r"trial 1 submitted", seen)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + out
    trials = study_trials(db, "resume")
    assert "RUNNING" not in states(trials)
    interrupted = [t for t in trials if t.state.name == "FAIL"]
    assert interrupted and all("interrupted" in t.user_attrs["fail_reason"] for t in interrupted)
    assert states(trials).get("WAITING") == len(interrupted)  # the same points, queued for the next start

    # kill -9 after one trial completes: its in-flight trials stay RUNNING in the study ...
    proc = start_dnsrec(args, tmp_path, env)
    seen = []
    wait_for_line(proc, r"trial \d+ complete", seen, timeout=180)
    proc.kill()
    proc.communicate(timeout=60)
    killed = study_trials(db, "resume")
    assert states(killed).get("COMPLETE", 0) >= 1
    orphans = [t.number for t in killed if t.state.name == "RUNNING"]

    # ... and the same command again, once the dead driver's lease has expired, completes exactly 4 trials,
    # nothing left RUNNING, no duplicate rows
    time.sleep(2.5)
    done = dnsrec(args, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    final = study_trials(db, "resume")
    assert states(final).get("COMPLETE") == 4 and "RUNNING" not in states(final)
    for number in orphans:  # completed from a result.json its job wrote in time, or failed as lost
        t = final[number]
        assert t.state.name == "COMPLETE" or "lost: the sweep driver stopped" in t.user_attrs["fail_reason"]
    store = open_store(f"sqlite:///{db}")
    try:
        rows = store.list_runs(RunFilter(sweep="resume"))
    finally:
        store.close()
    assert len({r.run_dir for r in rows}) == len(rows)
    assert sum(r.status == "COMPLETE" for r in rows) == 4 and not [r for r in rows if r.status == "RUNNING"]
    # every point that completed in a retry resumed in its first attempt's run directory
    complete = [t for t in final if t.state.name == "COMPLETE"]
    assert {t.user_attrs["run_dir"] for t in complete} == {r.run_dir for r in rows if r.status == "COMPLETE"}


def test_single_objective_with_a_flops_budget_records_the_constraint(tmp_path: Path) -> None:
    budget = 5.0e5
    extra = [f"sweep.root={tmp_path / 'sweeps'}", "sweep.objectives=[ndcg]", f"sweep.flops_budget={budget}"]
    summary = run_sweep(compose("sweep", sweep_args("budget", 3, 2, *extra)), f"sqlite:///{tmp_path / 'r.db'}")
    assert summary.complete == 3
    within = []
    for t in study_trials(tmp_path / "r.db", "budget"):
        result = RunResult.read(Path(t.user_attrs["run_dir"]) / "result.json")
        assert t.values == [result.metrics["valid"]["pop100/ndcg@10"]]
        assert t.constraints == {"flops_over_budget": pytest.approx(result.flops["model"] - budget)}
        if result.flops["model"] <= budget:
            within.append(t)
    # the best trial is the best of those within the budget (none: no best, and the status line says so)
    expected = [max(within, key=lambda t: t.values[0]).number] if within else []
    assert [row["trial"] for row in summary.best] == expected
    if not within:
        assert "no trial within the FLOPs budget yet" in summary.status_line


def test_a_trial_asking_for_two_ranks_is_one_two_rank_deepspeed_run(tmp_path: Path) -> None:
    """`launcher.resources.ranks=2` (on GPUs: `gpus=2`) with `train.engine=deepspeed`: the trial's job is two
    processes with torchrun's variables, one gloo process group, ZeRO-2; rank 0's result is the trial's."""
    extra = [f"sweep.root={tmp_path / 'sweeps'}", "launcher.resources.ranks=2", "train.engine=deepspeed"]
    summary = run_sweep(compose("sweep", sweep_args("ranks", 1, 1, *extra)), f"sqlite:///{tmp_path / 'r.db'}")
    assert summary.complete == 1
    (trial,) = study_trials(tmp_path / "r.db", "ranks")
    result = RunResult.read(Path(trial.user_attrs["run_dir"]) / "result.json")
    assert result.environment["ranks"] == "2" and result.config["train"]["engine"] == "deepspeed"
    log = next((tmp_path / "sweeps" / "ranks" / "jobs").glob("*.log")).read_text()
    assert "2 ranks, engine deepspeed ZeRO-2" in log
