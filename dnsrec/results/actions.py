"""What each `dnsrec results ACTION` does (ingest, list, show, best, pareto, plot, compare, export), given the
arguments `dnsrec.cli` parsed for it; `status` is the sweep's (`dnsrec.sweep.study`) and stays in the CLI,
since nothing below the CLI imports the sweep driver."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dnsrec.config import SELECTION_METRIC, VALID_SELECTION_METRIC
from dnsrec.errors import DNSRecError
from dnsrec.results.errors import QueryError
from dnsrec.results.filters import RunFilter
from dnsrec.results.report import fmt, render_table, run_detail, runs_table
from dnsrec.results.store import Pareto, ParetoPoint, ResultStore, open_store


def results_action(args: argparse.Namespace) -> int:
    """Run `args.action` on the database `args.db`; the exit status (2: some run directories not ingested)."""
    store = open_store(args.db)
    try:
        where = RunFilter(
            sweep=getattr(args, "sweep", None),
            dataset=getattr(args, "dataset", None),
            status=getattr(args, "status", None),
            stage=getattr(args, "stage", None),
            where=tuple(getattr(args, "where", ())),
        )
        if args.action == "ingest":
            failed = 0
            for run_dir in args.run_dirs:
                try:
                    print(f"recorded {run_dir} as run {store.ingest(run_dir, sweep=args.sweep)}")
                except DNSRecError as e:
                    print(f"dnsrec: error: {e}", file=sys.stderr)
                    failed += 1
            print(f"{len(args.run_dirs) - failed} of {len(args.run_dirs)} run directories recorded in {store.url}")
            return 2 if failed else 0
        if args.action == "list":
            runs = store.list_runs(where, sort=args.sort, descending=args.descending, limit=args.limit)
            print(runs_table(runs, [args.sort] if args.sort else []) if runs else "no runs match")
        elif args.action == "show":
            print(run_detail(store.get_run(args.id)))
        elif args.action == "best":
            shown = selection_columns(args.metric, args.select_on_test)
            best = store.best(args.metric, filters=where)
            print(runs_table([best], shown) + f"\nrun directory: {best.run_dir}" if best else "no runs match")
        elif args.action == "pareto":
            cost_ratio = checked_cost_ratio(args)
            shown = selection_columns(args.metric, args.select_on_test)
            found = store.pareto(args.metric, where, cost=args.cost)
            print(runs_table([p.run for p in found.front], [*shown, args.cost]) if found.points else "no runs match")
            print(f"{len(found.front)} of {len(found.points)} complete runs on the {found.metric} vs {args.cost} front")
            if args.against is not None:
                reference = store.pareto_point(args.against, args.metric, args.cost)
                print(against_text(found, reference, cost_ratio))
            if args.png:
                from dnsrec.results.plot import Point, pareto_figure

                points = [Point(p.cost, p.quality, p.on_front, f"{p.run.id}") for p in found.points]
                pareto_figure(Path(args.png), points, found.metric, args.cost)
                print(f"wrote {args.png}")
        elif args.action == "plot":
            plot(args, store, where)
        elif args.action == "compare":
            comparison = store.compare(args.ids)
            print(render_table(["field", *(f"run {i}" for i in args.ids)], [[n, *v] for n, v in comparison.rows]))
        elif args.action == "export":
            print(f"wrote {store.export(args.file, args.format, where)} runs to {args.file}")
        else:
            raise QueryError(f"unknown results action {args.action!r}")
    except OSError as e:  # a figure to an unwritable place or a directory: one line, not a traceback
        raise DNSRecError(f"cannot write {e.filename or ''}: {e.strerror or e}") from e
    finally:
        store.close()
    return 0


def checked_cost_ratio(args: argparse.Namespace) -> float:
    """`--cost-ratio` (default 0.5): it only means something with `--against`, and only when positive."""
    if args.cost_ratio is None:
        return 0.5
    if args.against is None:
        raise QueryError("--cost-ratio needs --against RUN (the run whose cost it is a ratio of)")
    if not args.cost_ratio > 0:
        raise QueryError(f"--cost-ratio must be a positive number, got {args.cost_ratio}")
    return float(args.cost_ratio)


def against_text(found: Pareto, reference: ParetoPoint, cost_ratio: float) -> str:
    """`pareto --against RUN`: the front points as good as the reference run at <= cost_ratio x its cost,
    or the best front point within that cost and how far below the reference it is."""
    ref = reference
    cost = fmt(int(ref.cost) if ref.cost.is_integer() else ref.cost)  # 108.134M, as `list` shows FLOPs
    head = (
        f"against run {ref.run.id} ({ref.run.method or ref.run.stage}: {found.metric} {ref.quality:.4f}, "
        f"{found.cost} {cost}): front runs with {found.metric} >= {ref.quality:.4f} at <= "
        f"{cost_ratio:g}x its {found.cost}"
    )
    matching = found.matching(ref, cost_ratio)
    if matching:
        listed = "; ".join(f"run {p.run.id} ({p.quality:.4f}, {p.cost / ref.cost:.2f}x)" for p in matching)
        return f"{head}: {listed}"
    within = found.within(ref, cost_ratio)
    if not within:
        return f"{head}: none (no front run costs that little)"
    best = max(within, key=lambda p: p.quality)
    return (
        f"{head}: none; the best front run within that cost is run {best.run.id} "
        f"({best.quality:.4f}, {best.quality - ref.quality:+.4f}, {best.cost / ref.cost:.2f}x)"
    )


def selection_columns(metric: str, select_on_test: bool) -> list[str]:
    """[selection metric, its test counterpart]: select on validation, report test. Selecting on a test
    metric must be asked for with --select-on-test, and says so."""
    split, _, rest = metric.partition("/")
    if split == "test":
        if not select_on_test:
            raise DNSRecError(
                f"--metric {metric} selects on the test split, which makes the reported test value "
                f"optimistic; select on validation (--metric valid/{rest}, the default) or add --select-on-test"
            )
        print(f"selecting on {metric}, a TEST metric (--select-on-test): its values are not held-out estimates")
        return [metric]
    return [metric, f"test/{rest}"] if rest else [metric]


def plot(args: argparse.Namespace, store: ResultStore, where: RunFilter) -> None:
    """`dnsrec results plot RUN --curves` / `dnsrec results plot --lambda [filters]`."""
    from dnsrec.results.plot import LambdaPoint, curves_figure, lambda_figure

    if args.curves:
        if args.run is None:
            raise QueryError("results plot --curves: give the run, as an id or a run directory")
        run_dir = Path(store.get_run(int(args.run)).run_dir) if args.run.isdigit() else Path(args.run)
        try:
            result = json.loads((run_dir / "result.json").read_text())
        except (OSError, ValueError) as e:
            raise QueryError(f"{run_dir / 'result.json'}: cannot read the run's result ({e})") from e
        png = Path(args.png or run_dir / "curves.png")
        curves_figure(png, result)
    else:
        points = [
            LambdaPoint(
                r.lam, r.metrics.get(VALID_SELECTION_METRIC), r.metrics.get(f"test/{SELECTION_METRIC}"), r.flops
            )
            for r in store.list_runs(where)
            if r.status == "COMPLETE" and r.lam is not None
        ]
        png = Path(args.png or "lambda.png")
        lambda_figure(png, points)
        print(f"{len(points)} complete runs with a lambda")
    print(f"wrote {png}")
