"""Reports built from hand-made runs (no training, no database): what the report tests feed `report.build`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnsrec.reproduce.points import Point
from dnsrec.reproduce.report import PointResult
from dnsrec.reproduce.tables import Column, Row, TableSpec
from dnsrec.results import RunView

OURS = Row("Ours", "run")
BASE = Row("SASRec (w LinRec)", "train", ("model=sasrec", "attention=linear"))
NAS = Row("DARTS + SASRec", "run", ("search.method=darts",))
COLUMNS = (
    Column("test NDCG@10", ("test/pop100/ndcg@10",)),
    Column("Infer. (s)", ("inference_seconds",), better="lower"),
)


def spec(rows: tuple[Row, ...] = (OURS, BASE, NAS), improvement: str | None = "range") -> TableSpec:
    return TableSpec("table3", "test table", "Table 3", "Ours", COLUMNS, rows, improvement=improvement)


def run(run_id: int, ndcg: float, seconds: float, stage: str = "run", mode: str = "window") -> RunView:
    return RunView(
        id=run_id,
        run_dir=f"/runs/{run_id}",
        status="COMPLETE",
        stage=stage,
        dataset="gowalla-100",
        inference_seconds=seconds,
        device="cpu (fp32)",
        git_commit="abc123",
        metrics={"test/pop100/ndcg@10": ndcg},
        config={"train": {"mode": mode}},
    )


def complete(row: Row, seed: int, view: RunView) -> PointResult:
    return PointResult(Point(row, seed, {}, {}), view, "complete")


def missing(row: Row, seed: int, status: str, reason: str) -> PointResult:
    identity: dict[str, Any] | None = None if status == "unavailable" else {}
    return PointResult(Point(row, seed, None if identity is None else {}, identity, reason), None, status, reason)


def read(path: Path) -> str:
    return path.read_text()
