"""How much do finished runs lean on item popularity? Scores each run's test users with its best weights and
prints the popularity of what it recommends beside its test metrics.

    .venv/bin/python benchmarks/popularity_bias.py RUN_DIR [RUN_DIR ...] [--k 10]

RUN_DIR is any finished `dnsrec train|run|retrain` directory of a SASRec-shaped model (result.json and best.pt,
as `dnsrec export` reads them). For each test user the model scores every item; items of the model's input
(the user's last `max_len` history items) and the padding id are left out, and the k best-scoring items are
its recommendations. Each item's popularity percentile is the share of items with a strictly smaller
popularity count (`SequenceData.popularity`, the counts pop100 draws its negatives by), so 1.0 is the most
popular item. Printed per run: the mean percentile of the recommended items over users, and the share of
them among the 100 most popular items, beside the run's own recorded test NDCG@10 (pop100, full).

Why it matters: pop100 ranks the target against 100 negatives drawn by popularity, while full ranking ranks
it against every unseen item. A model that ranks popular items high is rewarded by full ranking (most
targets are popular) and penalised by pop100 (its negatives are popular too); two models can therefore
trade places between the protocols, and this script shows whether popularity is why.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dnsrec.data import SequenceData, load_dataset
from dnsrec.errors import DNSRecError
from dnsrec.evaluate import split_inputs
from dnsrec.export import config_key, run_model

TOP_POPULAR = 100  # "among the most popular items": this many


def popularity_percentile(popularity: np.ndarray) -> np.ndarray:
    """Per item id (index 0 the padding): the share of real items (ids 1..n) whose count is strictly smaller."""
    real = popularity[1:]
    below = np.searchsorted(np.sort(real), popularity, side="left")
    return below / len(real)


def recommended(scores: Tensor, seqs: Tensor, k: int) -> Tensor:
    """The k best-scoring item ids per row of `scores` (B, n_items + 1), leaving out the padding id 0 and
    every item of the row's input `seqs` (B, N; right-padded with 0)."""
    masked = scores.float().clone()
    masked.scatter_(1, seqs, float("-inf"))  # padding entries hit column 0, left out anyway
    masked[:, 0] = float("-inf")
    return masked.topk(k, dim=1).indices


def popularity_of_recommendations(
    model: torch.nn.Module, data: SequenceData, k: int, batch: int = 256
) -> tuple[float, float]:
    """(mean popularity percentile, share among the TOP_POPULAR most popular items) of the model's top-k
    recommendations for the test users."""
    inputs = split_inputs(data, "test")
    popularity = data.popularity()
    percentile = torch.from_numpy(popularity_percentile(popularity))
    ranked = np.argsort(-popularity[1:], kind="stable") + 1
    top = torch.zeros(data.n_items + 1, dtype=torch.bool)
    top[torch.from_numpy(ranked[:TOP_POPULAR])] = True
    pct_sum, top_sum = 0.0, 0
    with torch.no_grad():
        for lo in range(0, data.n_users, batch):
            seqs = torch.from_numpy(inputs.seqs[lo : lo + batch])
            lengths = torch.from_numpy(inputs.lengths[lo : lo + batch])
            items = recommended(model.score(seqs, lengths), seqs, k)  # type: ignore[operator]
            pct_sum += float(percentile[items].sum())
            top_sum += int(top[items].sum())
    n = data.n_users * k
    return pct_sum / n, top_sum / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", type=Path, nargs="+")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    datasets: dict[tuple[str, int | None], SequenceData] = {}
    measured: dict[tuple[str, int | None], list[tuple[float, float, float, float]]] = {}  # pct, top, pop100, full
    print(f"run | model | test pop100 NDCG@10 | test full NDCG@10 | top-{args.k} popularity percentile | "
          f"top-{args.k} among the {TOP_POPULAR} most popular")  # fmt: skip
    try:
        for run_dir in args.run_dirs:
            rm = run_model(run_dir)
            cfg, source = rm.result.config, run_dir / "result.json"
            name, max_len = config_key(cfg, source, "dataset", "name"), config_key(cfg, source, "dataset", "max_len")
            if (name, max_len) not in datasets:
                datasets[name, max_len] = load_dataset(name, data_dir=cfg.get("data_dir"), max_len=max_len)
            data = datasets[name, max_len]
            pct, top = popularity_of_recommendations(rm.model, data, args.k)
            test = rm.result.metrics["test"]
            arch = rm.result.architecture
            what = (
                f"depth {len(arch['hidden'])}, width {arch['hidden'][0]}"
                if arch
                else f"{rm.result.stage} {config_key(cfg, source, 'model', 'family')}"
            )
            metrics = f"{test['pop100/ndcg@10']:.4f} | {test['full/ndcg@10']:.4f}"
            print(f"{run_dir} | {what} | {metrics} | {pct:.4f} | {top:.4f}")
            measured.setdefault((name, max_len), []).append((pct, top, test["pop100/ndcg@10"], test["full/ndcg@10"]))
    except DNSRecError as e:
        raise SystemExit(f"popularity_bias: error: {e}") from e
    for key, data in datasets.items():
        summarise(key[0], data, np.array(measured[key]))


def summarise(name: str, data: SequenceData, rows: np.ndarray) -> None:
    """One dataset's runs together (`rows`: percentile, top share, test pop100, test full per run): the mean
    and sd of the popularity figures and, from three runs on, the percentile's Pearson correlation with each
    protocol's NDCG@10 across the runs; and the test targets' own mean percentile, for scale."""
    sd = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1])
    print(
        f"{name}, {len(rows)} runs: popularity percentile {rows[:, 0].mean():.4f} ± {sd[0]:.4f}, "
        f"among the {TOP_POPULAR} most popular {rows[:, 1].mean():.4f} ± {sd[1]:.4f}"
    )
    if len(rows) >= 3:
        pop100, full = (float(np.corrcoef(rows[:, 0], rows[:, j])[0, 1]) for j in (2, 3))
        print(f"{name}: correlation of the percentile with test pop100 NDCG@10 {pop100:+.2f}, with full {full:+.2f}")
    targets = popularity_percentile(data.popularity())[split_inputs(data, "test").targets]
    print(f"{name}: the test targets' own mean popularity percentile {targets.mean():.4f}")


if __name__ == "__main__":
    main()
