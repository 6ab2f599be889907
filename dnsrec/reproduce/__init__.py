"""`dnsrec reproduce TABLE dataset=... seeds=[0,1,2] [launcher=local|slurm|ray]`: one of the paper's tables or
figures, with our numbers beside the paper's.

1. The table's points (rows of `sweeps/experiment/reproduce/<TABLE>.yaml` x seeds) are composed and validated
   (`points`); a row asking for a config key that does not exist yet is unavailable, with the key's name.
2. Each point is looked up among the COMPLETE runs recorded in the results database, by config: a run
   recorded by any earlier command (another table, `dnsrec run`, a sweep) with the same config is reused.
3. The missing points run through the sweep's launchers and are recorded as they finish (`runner`); one
   config shared by several rows (Table 6's "2 layers" in both groups) runs once.
4. The report (`report`) is written from the database: `<out>/<dataset>-<TABLE>.md`, `.csv` (and `.png`).
5. The record of every run it reads is kept beside it, `<records>/<dataset>/<run>/` (`records`; default
   `<out>/records`): each run launched here as it finishes, the reused ones when the report is written.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnsrec.errors import ConfigError
from dnsrec.reproduce.points import Planner, Point
from dnsrec.reproduce.render import write
from dnsrec.reproduce.report import PointResult, Report, build
from dnsrec.reproduce.tables import load_paper, load_table, table_names

__all__ = ["Options", "Outcome", "parse_options", "reproduce", "table_names"]

# The command line's own keys; every other `key=value` is an override of every point that has the key.
OWN_KEYS = ("dataset", "seeds", "parallel", "root", "out", "records", "poll", "launch")


@dataclass(frozen=True)
class Options:
    table: str
    dataset: str
    seeds: tuple[int, ...] = (0, 1, 2)
    overrides: tuple[str, ...] = ()  # applied to every point whose config has the key
    launcher: tuple[str, ...] = ()  # launcher=... and launcher.* overrides (sweeps/launcher/*.yaml)
    parallel: int = 2  # points in flight (local processes, SLURM array tasks, Ray tasks)
    root: Path = Path("runs/reproduce")  # run directories <root>/<dataset>/<stage>-<row>-s<seed>-<hash>
    out: Path = Path("docs/results")
    records: Path | None = Path("docs/results/records")  # each read run's record (dnsrec.reproduce.records)
    poll_seconds: float = 2.0
    launch: bool = True  # false: only write the report from what is recorded


@dataclass
class Outcome:
    report: Report
    written: list[Path]
    reused: int  # points found recorded
    launched: int  # points run now (distinct configs)
    failed: list[tuple[Point, str]] = field(default_factory=list)
    unavailable: int = 0


def parse_options(table: str, args: Sequence[str]) -> Options:
    """From `TABLE key=value ...` as typed after `dnsrec reproduce`."""
    import yaml

    own: dict[str, Any] = {}
    overrides, launcher = [], []
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"expected key=value, got {arg!r}")
        key, value = arg.split("=", 1)
        if key in OWN_KEYS:
            own[key] = value
        elif key == "launcher" or key.startswith("launcher."):
            launcher.append(arg)
        else:
            overrides.append(arg)
    if "dataset" not in own:
        raise ConfigError("dataset=NAME is required (e.g. dataset=ml-100k)")
    seeds: Any = yaml.safe_load(own.get("seeds", "[0,1,2]"))
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"config key 'seeds': expected a list of integers >= 0 such as [0,1,2], got {own['seeds']!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"config key 'seeds': a seed repeats in {seeds}")
    try:
        parallel = int(own.get("parallel", 2))
        poll = float(own.get("poll", 2.0))
    except ValueError as e:
        raise ConfigError(f"parallel must be an integer and poll a number of seconds: {e}") from e
    if parallel < 1 or poll <= 0:
        raise ConfigError("parallel must be >= 1 and poll > 0")
    launch = str(own.get("launch", "true")).lower()
    if launch not in ("true", "false"):
        raise ConfigError(f"config key 'launch': expected true or false, got {launch!r}")
    out_dir = Path(own.get("out", "docs/results"))
    records = own.get("records", str(out_dir / "records"))
    if not records.strip():
        raise ConfigError("config key 'records': expected a directory for the runs' records, or none")
    return Options(
        table=table,
        dataset=str(own["dataset"]),
        seeds=tuple(seeds),
        overrides=tuple(overrides),
        launcher=tuple(launcher),
        parallel=parallel,
        root=Path(own.get("root", "runs/reproduce")),
        out=out_dir,
        records=None if records.lower() == "none" else Path(records),
        poll_seconds=poll,
        launch=launch == "true",
    )


def reproduce(opts: Options, db_url: str | None, command: str, out: Callable[[str], None] = print) -> Outcome:
    from dnsrec.compose import compose
    from dnsrec.launch import launcher_config
    from dnsrec.results import RunFilter, open_store

    spec = load_table(opts.table)
    paper = load_paper()
    launcher_cfg = launcher_config(compose("sweep", list(opts.launcher))["launcher"])  # refused before anything runs
    planner = Planner(opts.dataset, opts.overrides)
    points = planner.points(spec, opts.seeds)
    available = [p for p in points if p.identity is not None]
    store = open_store(db_url)
    try:

        def recorded() -> dict[tuple[str, int], Any]:
            runs = store.list_runs(RunFilter(dataset=opts.dataset, status="COMPLETE"))
            found = {}
            for p in available:
                match = [r for r in runs if planner.matches(p, r.stage, r.config)]
                if match:
                    found[p.key] = max(match, key=lambda r: r.id)  # the latest record of that config
            return found

        runs = recorded()
        todo = _distinct([p for p in available if p.key not in runs])
        reused = len(available) - sum(1 for p in available if p.key not in runs)
        unavailable = len(points) - len(available)
        out(
            f"{spec.paper} ({opts.table}) on {opts.dataset}, seeds {list(opts.seeds)}: {len(points)} points, "
            f"{reused} recorded already, {len(todo)} to run" + (f", {unavailable} unavailable" if unavailable else "")
        )
        failed: list[tuple[Point, str]] = []
        launched = 0
        if todo and opts.launch:
            from dnsrec.data import prepare_dataset
            from dnsrec.reproduce.runner import run_missing

            data_dir = todo[0].config.get("data_dir") if todo[0].config else None
            prepare_dataset(opts.dataset, data_dir)  # once, before any job starts (a missing dataset stops here)
            done = run_missing(
                todo, planner, store, launcher_cfg, root=opts.root, parallel=opts.parallel,
                poll_seconds=opts.poll_seconds, sweep=f"reproduce-{opts.dataset}-{opts.table}", out=out,
                records=opts.records,
            )  # fmt: skip
            failed, launched = done.failed, len(todo)
            runs = recorded()
    finally:
        store.close()
    failures = {_identity_key(p): reason for p, reason in failed}
    results = []
    for p in points:
        if p.identity is None:
            results.append(PointResult(p, None, "unavailable", p.unavailable))
        elif p.key in runs:
            results.append(PointResult(p, runs[p.key], "complete"))
        elif _identity_key(p) in failures:
            results.append(PointResult(p, None, "failed", failures[_identity_key(p)]))
        else:
            why = "launch=false" if not opts.launch else ""
            results.append(PointResult(p, None, "not run", why))
    if opts.records is not None:
        from dnsrec.reproduce.records import keep_record

        kept = {r.run.run_dir: r.run for r in results if r.run is not None}
        lines = [keep_record(run.run_dir, opts.records, opts.dataset, run.result_sha256) for run in kept.values()]
        for line in lines:
            if not line.startswith("record kept"):
                out(line)
        out(f"records of the {len(kept)} runs read kept under {opts.records / opts.dataset}")
    outputs = [opts.out] + ([opts.records] if opts.records is not None else [])
    report = build(spec, opts.dataset, opts.seeds, results, paper, command, git_commit(outputs))
    written = write(report, opts.out)
    return Outcome(report, written, reused, launched, failed, unavailable)


def _identity_key(p: Point) -> str:
    import json

    return json.dumps([p.stage, p.identity], sort_keys=True)


def _distinct(points: list[Point]) -> list[Point]:
    """One point per config: rows that are the same run (a default written out) run it once."""
    seen: dict[str, Point] = {}
    for p in points:
        seen.setdefault(_identity_key(p), p)
    return list(seen.values())


def git_commit(outputs: Sequence[Path] = (), repo: Path | None = None) -> str:
    """The checkout's commit, marked when the working tree differs from it outside `outputs`.

    `outputs` are what reproduce itself writes (the reports' folder, the records): a report or record written
    a moment ago is not a change to the code that wrote the next one, so writing Tables 3, 4 and 5 in turn
    does not mark the second and third as made from uncommitted code. `repo`: the checkout to ask (default:
    the one this package lives in)."""
    here = repo if repo is not None else Path(__file__).resolve().parent
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10, cwd=here
        )
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=here)
        excluded = _pathspec_excludes(Path(top.stdout.strip()), outputs) if top.returncode == 0 else []
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=top.stdout.strip() or here,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = head.stdout.strip()
    return f"{commit} (+ uncommitted changes)" if commit and dirty.stdout.strip() else commit


def _pathspec_excludes(top: Path, outputs: Sequence[Path]) -> list[str]:
    """`:(exclude)` pathspecs for the outputs that lie inside the checkout `top` (others cannot be dirty)."""
    specs = []
    for path in outputs:
        try:
            inside = path.resolve().relative_to(top.resolve())
        except ValueError:
            continue
        if inside != Path("."):
            specs.append(f":(exclude){inside.as_posix()}")
    return specs
