"""The `dnsrec` command: parse, call a pipeline function, print. Nothing else lives here.

    dnsrec train dataset=ml-100k model=sasrec attention=linear [key=value ...]
    dnsrec run dataset=ml-100k search.lam=0.1 gates.layers=2 lr=0.001 [key=value ...]
    dnsrec retrain ARCH.json dataset=ml-100k [key=value ...]
    dnsrec decide RUN_DIR --max-flops 0.25 --out ARCH.json   (a finished search's choice under a FLOPs bound)
    dnsrec sweep dataset=gowalla-100 sweep.trials=6 sweep.parallel=2 launcher=local|slurm|ray [key=value ...]
    dnsrec reproduce TABLE dataset=ml-100k seeds=[0,1,2] [launcher=local|slurm|ray] [parallel=2] [key=value ...]
        (TABLE: table3..table7, figure4, lr; the report goes to docs/results/<dataset>-<TABLE>.md/.csv)
    dnsrec results {ingest,list,show,best,pareto,compare,export,status} ...
    dnsrec data {prepare,stats} DATASET
    dnsrec data synth synth-gowalla [--data-dir DIR]   (synthetic check-ins: benchmarks only)
    dnsrec export RUN_DIR --format torchscript|onnx OUT   (the retrained model, standalone, with its item map)
    dnsrec recommend OUT --history "ITEM ITEM ..." [-k 10]

train/run/retrain record their result in the results database ($DNSREC_DB_URL, default
sqlite:///runs/dnsrec.db) after writing result.json; `--no-db` skips that.

Overrides are Hydra's (https://hydra.cc/docs/advanced/override_grammar/basic/); the config tree is
`sweeps/` at the project root (or $DNSREC_CONFIG_DIR).
"""

from __future__ import annotations

# What the commands call (the help text above is the user's; this is the reader's): runs -> dnsrec.pipeline
# with configs from dnsrec.config.run; rank 0 reporting and recording -> dnsrec.recording; --multirun grids ->
# dnsrec.multirun; results actions -> dnsrec.results.actions (status: dnsrec.sweep.study); paper tables ->
# dnsrec.reproduce; sweeps ->
# dnsrec.sweep; data -> dnsrec.data; export and recommend -> dnsrec.export.
import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from dnsrec.compose import compose
from dnsrec.errors import ConfigError, DNSRecError
from dnsrec.recording import DbOptions, run_and_record
from dnsrec.run_result import RunResult


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    names = sorted({k for split in metrics.values() for k in split})
    splits = list(metrics)
    lines = [f"{'metric':<20}" + "".join(f"{s:>10}" for s in splits)]
    for name in names:
        lines.append(f"{name:<20}" + "".join(f"{metrics[s].get(name, float('nan')):>10.4f}" for s in splits))
    return "\n".join(lines)


def cmd_train(overrides: list[str], db: DbOptions) -> int:
    from dnsrec.config.run import TrainRunConfig
    from dnsrec.pipeline import train_run

    raw = compose("train", overrides)
    cfg = TrainRunConfig.from_mapping(raw)
    run_dir = Path(raw.get("run_dir") or f"runs/train/{_stamp()}-{cfg.dataset.name}-{cfg.model.attention}")
    run_and_record(lambda d: train_run(cfg, d), run_dir, cfg.train.device, db, _report)
    return 0


def _report(result: RunResult, run_dir: Path) -> None:
    print(metrics_table(result.metrics))
    if result.architecture:
        a = result.architecture
        print(
            f"architecture: depth {len(a['hidden'])}, widths {a['hidden']}, "
            f"inner {a['inner_widths']}, L_d {a['gate_layers']}"
        )
    flops = result.flops
    line = (
        f"FLOPs {flops['model'] / 1e6:.2f}M (+{flops['model_scoring'] / 1e6:.2f}M scoring), "
        f"{result.n_params:,} parameters"
    )
    if "supernet" in flops:
        line += f"; un-pruned supernet shape {flops['supernet'] / 1e6:.2f}M ({flops['model'] / flops['supernet']:.1%})"
    print(line)
    print(
        "seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())
        + f"; best epoch {result.best_epoch} of {result.epochs} ({result.stopped}); "
        + f"peak memory {result.peak_memory_mb:.0f} MB"
        + ("" if result.inference_memory_mb is None else f", scoring test users {result.inference_memory_mb:.0f} MB")
    )
    print(
        f"{result.seconds_per_epoch:.2f} s/epoch; evaluation {result.eval_seconds['valid']:.2f} s valid, "
        f"{result.eval_seconds['test']:.2f} s test"
    )
    print(f"wrote {run_dir / 'result.json'}")


def cmd_run(overrides: list[str], db: DbOptions) -> int:
    from dnsrec.config.run import RunConfig
    from dnsrec.pipeline import dnsrec_run

    raw = compose("run", overrides)
    cfg = RunConfig.from_mapping(raw)
    run_dir = Path(raw.get("run_dir") or f"runs/run/{_stamp()}-{cfg.dataset.name}")
    run_and_record(lambda d: dnsrec_run(cfg, d), run_dir, cfg.train.device, db, _report)
    return 0


def cmd_multirun(command: str, overrides: list[str], db: DbOptions) -> int:
    """`dnsrec run|train --multirun ...`: a Hydra grid of runs, each recording itself (dnsrec.multirun)."""
    from dnsrec.compose import compose_grid
    from dnsrec.multirun import run_grid

    prepare_data(compose_grid(command, overrides))  # every point's dataset, before any job starts
    run_grid(command, overrides, db, _report)
    return 0


def cmd_sweep(overrides: list[str], db_url: str | None) -> int:
    from dnsrec.config.sweep_space import params_text
    from dnsrec.sweep import run_sweep

    cfg = compose("sweep", overrides)
    prepare_data([cfg])  # before the driver: a missing dataset stops here, with no study created
    summary = run_sweep(cfg, db_url)
    print(summary.status_line)
    two = bool(summary.best) and len(summary.best[0]["values"]) > 1
    what = "Pareto front (validation NDCG@10 up, FLOPs down)" if two else "best trial (validation NDCG@10)"
    print(f"{what}:")
    for row in summary.best:
        values = ", ".join(f"{v:.4g}" for v in row["values"])
        test = _test_ndcg(row["run_dir"])
        print(
            f"  trial {row['trial']}: {values}, test NDCG@10 {test}  ({params_text(row['params'])})  {row['run_dir']}"
        )
    print(
        f"{summary.complete} trials complete, {summary.failed_here} failed in this run, {summary.wall_seconds:.0f} s; "
        f"driver overhead per trial: submit {summary.submit_seconds_per_trial:.3f} s, "
        f"record {summary.record_seconds_per_trial:.3f} s"
    )
    print(f"query them with: dnsrec results list --sweep {summary.name}")
    return 0


def cmd_reproduce(table: str, args: list[str], db_url: str | None) -> int:
    """`dnsrec reproduce`: a paper table's missing points run and recorded, then its report (dnsrec.reproduce)."""
    import shlex

    from dnsrec.reproduce import parse_options, reproduce
    from dnsrec.results.database import masked, resolve_url

    opts = parse_options(table, args)
    # The report names the database its runs came from, so its command regenerates it (a --db URL holds no
    # password: refused above; one from $DNSREC_DB_URL is masked).
    line = shlex.join(["dnsrec", "reproduce", table, *args, "--db", masked(resolve_url(db_url))])
    done = reproduce(opts, db_url, line)
    failed = len(done.failed)
    print(f"{done.reused} points reused, {done.launched} run now, {failed} failed, {done.unavailable} unavailable")
    print("wrote " + ", ".join(map(str, done.written)))
    return 0


def _test_ndcg(run_dir: str | None) -> str:
    """The test pop100 NDCG@10 of a trial's run, shown beside the validation value it was selected on."""
    import json

    try:
        return (
            f"{json.loads((Path(str(run_dir)) / 'result.json').read_text())['metrics']['test']['pop100/ndcg@10']:.4g}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def prepare_data(configs: list[dict[str, Any]]) -> None:
    """Load (or download) and process each dataset the runs of a sweep or grid will read, once, here in the
    driver: a missing or malformed dataset is one error before anything is submitted or recorded, and the
    runs then read the prepared cache ($DNSREC_CACHE_DIR: on a cluster, a directory the nodes share)."""
    from dnsrec.data import prepare_dataset

    for name, data_dir in dict.fromkeys((cfg["dataset"]["name"], cfg.get("data_dir")) for cfg in configs):
        ready = prepare_dataset(name, data_dir)
        data = ready.data
        print(
            f"dataset {name}: {data.n_users:,} users, {data.n_items:,} items, {data.n_interactions:,} interactions "
            f"({'prepared' if ready.built else 'already prepared'}: {ready.cache}.npz)"
        )


def cmd_data(args: argparse.Namespace) -> int:
    from dnsrec.data import DatasetStats, load_file, prepare_dataset, preset_names

    if args.action == "synth":
        return cmd_synth(args)
    if args.action == "stats" and args.dataset not in preset_names():
        if not Path(args.dataset).exists():
            names = ", ".join(preset_names())
            raise DNSRecError(f"{args.dataset}: neither a dataset preset ({names}) nor a file")
        print(DatasetStats.of(load_file(args.dataset)).table())
        return 0
    ready = prepare_dataset(args.dataset, args.data_dir, args.cache_dir)
    if args.action == "prepare":
        print(f"read {', '.join(map(str, ready.files))}")
        print(f"{'prepared' if ready.built else 'already prepared'}: {ready.cache}.npz (+ .json)")
    print(DatasetStats.of(ready.data).table())
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    """`dnsrec data synth`: write synthetic SNAP Gowalla check-ins (dnsrec.data.synth), a preset's or any size."""
    import time

    from dnsrec.data.synth import SYNTH_NOTE, SYNTH_SHAPE, generate, synth_target, write_checkins

    given = {key: getattr(args, key) for key in SYNTH_SHAPE if getattr(args, key) is not None}
    spec, out = synth_target(args.preset, given, args.out, args.data_dir)
    t0 = time.perf_counter()
    checkins = generate(spec)
    write_checkins(checkins, out)
    print(
        f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f} s): {spec.users:,} users, "
        f"{spec.items:,} locations, {spec.interactions:,} check-ins, zipf {spec.zipf}, noise {spec.noise}, seed "
        f"{spec.seed}; {checkins.followed:.0%} of steps follow the transition graph"
    )
    print(f"note: {SYNTH_NOTE}")
    return 0


def cmd_retrain(arch_path: str, overrides: list[str], db: DbOptions) -> int:
    from dnsrec.config.run import RunConfig
    from dnsrec.nas.architecture import Architecture
    from dnsrec.pipeline import retrain_run

    arch = Architecture.read(Path(arch_path))
    raw = compose("run", overrides)
    cfg = RunConfig.from_mapping(raw)
    run_dir = Path(raw.get("run_dir") or f"runs/retrain/{_stamp()}-{cfg.dataset.name}")
    run_and_record(lambda d: retrain_run(arch, cfg, d), run_dir, cfg.train.device, db, _report)
    return 0


def cmd_decide(run_dir: str, max_flops: float | None, out: str | None) -> int:
    from dnsrec.decide import decide, retrain_overrides
    from dnsrec.files import atomic_write_text

    d = decide(Path(run_dir), max_flops)

    def described(arch: Any) -> str:
        flops = d.flops(arch)
        return (
            f"depth {arch.depth}, widths {list(arch.hidden)}, inner {list(arch.inner_widths)}: "
            f"{flops / 1e6:.2f}M FLOPs ({flops / d.supernet_flops:.3f} of the un-pruned supernet's layers)"
        )

    cfg = d.config
    print(
        f"search of {d.run_dir} ({cfg.search.method} on {cfg.dataset.name}, seed {cfg.train.seed}, "
        f"lambda {cfg.search.lam:g}): decision epoch {d.epoch}; "
        f"un-pruned supernet's layers {d.supernet_flops / 1e6:.2f}M"
    )
    print(f"the run chose       {described(d.recorded)}")
    bound = "no bound (the argmax)" if d.bound is None else f"max_flops {max_flops:g} ({d.bound / 1e6:.2f}M)"
    print(f"under {bound}: {described(d.decided)}")
    print("every architecture by probability (softmax of the decision epoch's logits; p(width) q(depth)):")
    print(f"  {'depth':>5} {'widths':<22} {'FLOPs':>9} {'fraction':>8} {'probability':>11}")
    for option in d.options:
        hidden = [d.widths[i] for i in option.candidates]
        marks = [m for m, a in (("decided", d.decided), ("the run's", d.recorded)) if option.candidates == a.candidates]
        mark = f"  <- {', '.join(marks)}" if marks else ""
        print(
            f"  {len(option.candidates):>5} {hidden!s:<22} {option.flops / 1e6:>8.2f}M "
            f"{option.flops / d.supernet_flops:>8.3f} {option.probability:>11.4g}{mark}"
        )
    if out is not None:
        atomic_write_text(Path(out), d.decided.to_json() + "\n")
        print(f"wrote {out}; what the run would have retrained under this bound:")
        print(f"  dnsrec retrain {out} {' '.join(retrain_overrides(cfg))}")
    return 0


def _max_flops(text: str) -> float:
    """--max-flops: a value `search.max_flops` takes (its own check), refused by argparse under the flag's name."""
    from dnsrec.config import SearchConfig, build

    try:
        value = float(text)
        build(SearchConfig, {"max_flops": value}, "search.")
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(
            f"expected a fraction in (0, 1] of the un-pruned supernet's FLOPs, as search.max_flops; got {text!r}"
        ) from None
    return value


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def add_results_parser(sub: Any) -> None:
    """`dnsrec results ...`: ingest run directories and query the results database."""
    from dnsrec.config import VALID_SELECTION_METRIC

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", help="database URL (default $DNSREC_DB_URL or sqlite:///runs/dnsrec.db)")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--sweep", help="only runs of this sweep")
    filters.add_argument("--dataset", help="only runs on this dataset")
    filters.add_argument("--status", help="COMPLETE, FAILED or RUNNING")
    filters.add_argument("--stage", help="train, run or retrain")
    filters.add_argument(
        "--where", action="append", default=[], metavar="EXPR", help="NAME OP VALUE, e.g. test/pop100/ndcg@10>=0.3"
    )
    metric = argparse.ArgumentParser(add_help=False)
    metric.add_argument(
        "--metric",
        default=VALID_SELECTION_METRIC,
        help="what to select by: SPLIT/PROTOCOL/METRIC@K, higher is better (default: the validation metric the "
        "sweep optimises; the test value is shown beside it)",
    )
    metric.add_argument(
        "--select-on-test",
        action="store_true",
        help="allow --metric test/...: selecting on the test split makes its reported value optimistic",
    )
    results = sub.add_parser("results", help="the results database: ingest, list, show, best, pareto, compare, export")
    rsub = results.add_subparsers(dest="action", required=True)
    ingest = rsub.add_parser("ingest", parents=[common], help="record run directories (their result.json)")
    ingest.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ingest.add_argument("--sweep", help="record the runs as part of this sweep")
    ls = rsub.add_parser("list", parents=[common, filters], help="runs as a table")
    ls.add_argument("--sort", metavar="KEY", help="a metric (best first) or a field such as flops (ascending)")
    ls.add_argument("--asc", dest="descending", action="store_false", default=None, help="sort ascending")
    ls.add_argument("--desc", dest="descending", action="store_true", help="sort descending")
    ls.add_argument("--limit", type=int)
    show = rsub.add_parser("show", parents=[common], help="everything about one run")
    show.add_argument("id", type=int)
    rsub.add_parser("best", parents=[common, filters, metric], help="the complete run with the highest metric")
    pareto = rsub.add_parser("pareto", parents=[common, filters, metric], help="the runs on the metric-vs-cost front")
    pareto.add_argument("--cost", default="flops", help="lower is better: flops, total_flops, params, ...")
    pareto.add_argument("--png", metavar="FILE", help="also draw every run and the front into a PNG")
    pareto.add_argument(
        "--against", type=int, metavar="RUN", help="name the front runs as good as run RUN (e.g. SASRec) at less cost"
    )
    pareto.add_argument(
        "--cost-ratio", type=float, metavar="R", help="with --against: at most R x its cost (default 0.5)"
    )
    compare = rsub.add_parser("compare", parents=[common], help="runs side by side (fields that differ, metrics)")
    compare.add_argument("ids", type=int, nargs="+", metavar="ID")
    export = rsub.add_parser("export", parents=[common, filters], help="write runs to a CSV or JSON file")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("file", metavar="FILE")
    plot = rsub.add_parser(
        "plot", parents=[common, filters], help="figures: one run's curves (--curves RUN), lambda trade-off (--lambda)"
    )
    plot.add_argument("run", nargs="?", metavar="RUN", help="a run id or run directory (for --curves)")
    kind = plot.add_mutually_exclusive_group(required=True)
    kind.add_argument("--curves", action="store_true", help="loss and validation NDCG@10 per epoch, search trajectory")
    kind.add_argument("--lambda", dest="lam", action="store_true", help="NDCG@10 and FLOPs vs lambda over the runs")
    plot.add_argument("--png", metavar="FILE", help="where to write (default RUN_DIR/curves.png or lambda.png)")
    status = rsub.add_parser("status", parents=[common], help="one line on a sweep: done, in flight, failed, best, ETA")
    status.add_argument("sweep_name", metavar="SWEEP")


def cmd_results(args: argparse.Namespace) -> int:
    if args.action == "status":  # the sweep's: nothing below the CLI imports the sweep driver
        from dnsrec.sweep.study import sweep_status_line

        print(sweep_status_line(args.sweep_name, args.db))
        return 0
    from dnsrec.results.actions import results_action

    return results_action(args)


def add_synth_parser(dsub: Any) -> None:
    from dnsrec.data.synth import SYNTH_FILES, SYNTH_NOTE

    synth = dsub.add_parser(
        "synth",
        help="write synthetic SNAP Gowalla check-ins (a benchmark input, never for accuracy claims)",
        description=f"Seeded synthetic check-ins in the SNAP Gowalla format: Zipf item popularity and "
        f"sequences that follow an item-transition graph with noise (dnsrec/data/synth.py). This is {SYNTH_NOTE}. "
        f"A preset ({', '.join(SYNTH_FILES)}) is written where the preset of that name reads it, "
        f"DATA_DIR/{next(iter(SYNTH_FILES.values()))}; other sizes need --out.",
    )
    synth.add_argument("preset", nargs="?", choices=list(SYNTH_FILES), help="a synthetic dataset preset")
    synth.add_argument("--data-dir", help="the preset's data directory (default $DNSREC_DATA_DIR, else ./data)")
    synth.add_argument("--out", help="write to this file instead (.gz: gzipped)")
    for key, kind, text in (
        ("users", int, "number of users"),
        ("items", int, "number of locations (items)"),
        ("interactions", int, "number of check-ins"),
        ("zipf", float, "popularity exponent s: P(rank r) ~ r^-s (default 1.0)"),
        ("noise", float, "chance a step ignores the transition graph (default 0.2)"),
        ("successors", int, "out-edges per item in the transition graph (default 4)"),
        ("seed", int, "random seed (default 0)"),
    ):
        synth.add_argument(f"--{key}", type=kind, help=text)


def add_export_parsers(sub: Any) -> None:
    export = sub.add_parser("export", help="write a run's retrained model (best epoch) as a TorchScript or ONNX file")
    export.add_argument("run", metavar="RUN", help="a finished run directory (result.json, best.pt)")
    export.add_argument("out", metavar="OUT", help="the file to write")
    export.add_argument("--format", required=True, help="torchscript or onnx (onnx: pip install 'dnsrec[export]')")
    export.add_argument("--data-dir", help="where the run's dataset is, for its item map (default: as the run)")
    rec = sub.add_parser("recommend", help="top-k next items from an exported model (no training code)")
    rec.add_argument("model", metavar="OUT", help="a file written by dnsrec export")
    rec.add_argument("--history", required=True, help='the user\'s items, oldest first: "ITEM ITEM ..."')
    rec.add_argument("-k", type=int, default=10, help="how many items (default 10)")


def cmd_export(args: argparse.Namespace) -> int:
    from dnsrec import export

    if args.command == "export":
        meta = export.export_run(Path(args.run), args.format, Path(args.out), args.data_dir)
        print(f"wrote {args.out}: {meta['format']}, {meta['dataset']}, {meta['n_items']:,} items, N={meta['max_len']}")
    else:
        for rank, (item, score) in enumerate(export.recommend(Path(args.model), args.history.split(), args.k), 1):
            print(f"{rank:>3} {item} {score:.4f}")
    return 0


def cmd_measure_memory(run_dirs: list[str], data_dir: str | None, db: DbOptions) -> int:
    """Each run: measured, result.json rewritten, its database row re-recorded (keeping its sweep, trial and
    launcher; also for a run measured already, as another database may record it without the figure); 2 if any
    run could not be measured."""
    from dnsrec.remeasure import measure_inference_memory
    from dnsrec.results import open_store

    store = None if db.skip else open_store(db.url)
    failed = 0
    try:
        for run_dir in map(Path, run_dirs):
            try:
                result, measured = measure_inference_memory(run_dir, data_dir)
                done = "needs" if measured else "has its inference memory already (result.json left as it is):"
                print(f"{run_dir}: scoring the test users {done} {result.inference_memory_mb:.1f} MB")
                if store is not None:
                    print(f"recorded as run {store.record(result, run_dir)} in {store.url}")
            except DNSRecError as e:
                print(f"dnsrec: error: {e}", file=sys.stderr)
                failed += 1
    finally:
        if store is not None:
            store.close()
    print(f"{len(run_dirs) - failed} of {len(run_dirs)} run directories have their inference memory")
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dnsrec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    recording = argparse.ArgumentParser(add_help=False)
    recording.add_argument("--no-db", action="store_true", help="do not record the result in the results database")
    recording.add_argument("--db", metavar="URL", help="results database (default $DNSREC_DB_URL or runs/dnsrec.db)")
    train = sub.add_parser(
        "train", parents=[recording], help="train one fixed model (SASRec, softmax or linear attention) and evaluate it"
    )
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=ml-1m attention=softmax")
    train.add_argument("-m", "--multirun", action="store_true", help="a Hydra grid, e.g. lr=0.001,0.0005")
    run = sub.add_parser("run", parents=[recording], help="a whole DNS-Rec run: search, derive, retrain, evaluate")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. search.lam=0.01 gates.layers=3")
    run.add_argument("-m", "--multirun", action="store_true", help="a Hydra grid, e.g. gates.layers=0,1,2")
    retrain = sub.add_parser(
        "retrain", parents=[recording], help="retrain a given architecture (architecture.json or result.json)"
    )
    retrain.add_argument("architecture", help="path of an architecture.json (or a run's result.json)")
    retrain.add_argument("overrides", nargs="*", help="Hydra overrides of sweeps/run.yaml")
    decide = sub.add_parser(
        "decide",
        help="a finished search's architecture under a FLOPs bound (search.max_flops), without searching again",
    )
    decide.add_argument("run_dir", metavar="RUN_DIR", help="a finished `dnsrec run` directory")
    decide.add_argument(
        "--max-flops",
        type=_max_flops,
        metavar="B",
        help="as search.max_flops: a fraction of the un-pruned supernet's layers",
    )
    decide.add_argument("--out", metavar="ARCH.json", help="write the decided architecture here (for dnsrec retrain)")
    sweep = sub.add_parser("sweep", help="an Optuna sweep of whole DNS-Rec runs (continues the study of the same name)")
    sweep.add_argument("--db", metavar="URL", help="results database and Optuna storage (default $DNSREC_DB_URL)")
    sweep.add_argument("overrides", nargs="*", help="Hydra overrides of sweeps/sweep.yaml, e.g. sweep.trials=6")
    reproduce = sub.add_parser(
        "reproduce", help="a paper table or figure: run what is not recorded yet, write the report beside the paper's"
    )
    reproduce.add_argument("table", metavar="TABLE", help="table3, table4, table5, table6, table7, figure4 or lr")
    reproduce.add_argument("args", nargs="*", help="dataset=NAME seeds=[0,1,2] launcher=local parallel=2 out=DIR ...")
    reproduce.add_argument("--db", metavar="URL", help="results database (default $DNSREC_DB_URL or runs/dnsrec.db)")
    add_results_parser(sub)
    memory = sub.add_parser(
        "measure-memory",
        parents=[recording],
        help="add the inference memory (Table 4) to finished runs recorded before every run measured it",
    )
    memory.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished run directories")
    memory.add_argument("--data-dir", help="where the runs' datasets are (default: as each run)")
    data = sub.add_parser("data", help="datasets: prepare the cache once, print the paper's Table 1 statistics")
    dsub = data.add_subparsers(dest="action", required=True)
    for action, text in (("prepare", "read and process a preset's files into the cache"), ("stats", "Table 1")):
        one = dsub.add_parser(action, help=text)
        one.add_argument("dataset", metavar="DATASET" if action == "prepare" else "DATASET|FILE")
        one.add_argument("--data-dir", help="where the files are (default $DNSREC_DATA_DIR, else ./data)")
        one.add_argument("--cache-dir", help="where the cache goes (default $DNSREC_CACHE_DIR or ~/.cache/dnsrec)")
    add_synth_parser(dsub)
    add_export_parsers(sub)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "db", None):
            from dnsrec.results.database import refuse_password_in_argument

            refuse_password_in_argument(args.db)
        if args.command == "results":
            return cmd_results(args)
        if args.command == "sweep":
            return cmd_sweep(args.overrides, args.db)
        if args.command == "reproduce":
            return cmd_reproduce(args.table, args.args, args.db)
        if args.command == "data":
            return cmd_data(args)
        if args.command in ("export", "recommend"):
            return cmd_export(args)
        if args.command == "decide":
            return cmd_decide(args.run_dir, args.max_flops, args.out)
        if args.command == "measure-memory":
            return cmd_measure_memory(args.run_dirs, args.data_dir, DbOptions(args.db, args.no_db))
        if args.command in ("train", "run") and args.multirun:
            return cmd_multirun(args.command, args.overrides, DbOptions(args.db, args.no_db))
        db = DbOptions(args.db, args.no_db)
        if args.command == "train":
            return cmd_train(args.overrides, db)
        if args.command == "run":
            return cmd_run(args.overrides, db)
        if args.command == "retrain":
            return cmd_retrain(args.architecture, args.overrides, db)
    except DNSRecError as e:
        print(f"dnsrec: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if args.command == "sweep":
            print("dnsrec: sweep interrupted; rerun the same command to continue it", file=sys.stderr)
            return 130
        print("dnsrec: interrupted; finished epochs are kept in the run directory (rerun to resume)", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
