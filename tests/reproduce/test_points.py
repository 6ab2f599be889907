"""Points: the command line's overrides reach the commands that have the key, a row asking for a key the
config lacks is unavailable naming it, and a recorded run matches a point by config."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsrec.errors import ConfigError
from dnsrec.reproduce.points import Planner
from dnsrec.reproduce.tables import Column, Row, TableSpec, load_table, table_names

OURS = Row("Ours", "run")
BASE = Row("SASRec", "train", ("model=sasrec", "attention=softmax"))
FUTURE = Row("Future", "run", ("search.not_yet_a_key=1",))
SPEC = TableSpec("t", "t", "Table 0", "Ours", (Column("c", ("test/pop100/ndcg@10",)),), (OURS, BASE, FUTURE))


def test_every_table_file_loads() -> None:
    assert {"table3", "table4", "table5", "table6", "table7", "figure4", "lr"} <= set(table_names())
    for name in table_names():
        spec = load_table(name)
        assert spec.rows and spec.columns
    with pytest.raises(ConfigError, match="unknown table"):
        load_table("table99")


def test_overrides_are_routed_and_unknown_keys_refused() -> None:
    planner = Planner("gowalla-100", ["train.max_epochs=2", "search.epochs=1", "model.d=16", "dataset.d=16"])
    assert planner.extra["train"] == ["train.max_epochs=2", "model.d=16", "dataset.d=16"]
    assert planner.extra["run"] == ["search.epochs=1", "dataset.d=16"]
    with pytest.raises(ConfigError, match="no_such"):
        Planner("gowalla-100", ["no_such.key=1"])


def test_unavailable_rows_name_the_key_and_seeds_vary_only_the_seed() -> None:
    planner = Planner("gowalla-100", ["search.epochs=1"])
    points = planner.points(SPEC, [0, 1])
    future = [p for p in points if p.row == FUTURE]
    assert len(future) == 2 and all("`search.not_yet_a_key`" in p.unavailable and p.config is None for p in future)
    ours = [p for p in points if p.row == OURS]
    assert [p.seed for p in ours] == [0, 1]
    a, b = (p.identity or {} for p in ours)
    assert {k for k in a if a[k] != b.get(k)} == {"train.seed"}
    assert ours[0].run_dir(Path("r"), "gowalla-100") != ours[1].run_dir(Path("r"), "gowalla-100")


def test_a_recorded_run_matches_by_config() -> None:
    planner = Planner("gowalla-100")
    point = next(p for p in planner.points(SPEC, [0]) if p.row == OURS)
    assert point.identity is not None and point.config is not None
    recorded = _nested(point.identity)
    assert planner.matches(point, "run", recorded)
    assert not planner.matches(point, "train", recorded)  # another stage
    assert not planner.matches(point, "run", _nested(point.identity | {"search.lam": 0.5}))
    assert planner.matches(point, "run", _nested(point.identity | {"train.progress": False}))  # never a number
    # a run recorded before a key existed matches where the point asks for that key's default
    older = {k: v for k, v in point.identity.items() if k != "search.warmup"}
    assert planner.matches(point, "run", _nested(older))
    other = next(p for p in planner.points(SPEC, [1]) if p.row == OURS)
    assert not planner.matches(other, "run", recorded)  # another seed


def test_a_run_recorded_before_the_depth_hold_existed_ran_without_it() -> None:
    # search.depth_hold came with DNS-Rec's default 0.5; runs recorded without the key moved beta from the
    # first architecture step (0), so they are not points of today's default, but are of the baselines'.
    planner = Planner("gowalla-100")
    ours = next(p for p in planner.points(SPEC, [0]) if p.row == OURS)
    darts_row = Row("DARTS", "run", ("search.method=darts",))
    darts = next(p for p in planner.points(TableSpec("t", "t", "T", "Ours", SPEC.columns, (darts_row,)), [0]))
    assert ours.identity is not None and darts.identity is not None
    assert ours.identity["search.depth_hold"] == 0.5 and darts.identity["search.depth_hold"] == 0.0
    for point in (ours, darts):
        older = {k: v for k, v in (point.identity or {}).items() if k != "search.depth_hold"}
        assert planner.matches(point, "run", _nested(older)) == (point is darts)
    assert planner.matches(ours, "run", _nested(ours.identity))


def _nested(flat: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[last] = value
    return out


def test_records_key_defaults_beside_the_reports_and_refuses_an_empty_value() -> None:
    from dnsrec.reproduce import parse_options

    assert parse_options("table3", ["dataset=ml-100k", "out=reports"]).records == Path("reports/records")
    assert parse_options("table3", ["dataset=ml-100k", "records=/scratch/r"]).records == Path("/scratch/r")
    assert parse_options("table3", ["dataset=ml-100k", "records=none"]).records is None
    with pytest.raises(ConfigError, match="records"):
        parse_options("table3", ["dataset=ml-100k", "records="])
