"""Synthetic check-ins (dnsrec.data.synth, `dnsrec data synth`): seeded, the requested counts, Zipf popularity,
a file the project's own Gowalla loader reads, and structure a sequential model learns beyond popularity."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from dnsrec.cli import main
from dnsrec.config import ModelConfig, TrainConfig
from dnsrec.data import load_dataset
from dnsrec.data.formats import read_gowalla
from dnsrec.data.presets import GOWALLA_FILTER, get_preset
from dnsrec.data.process import build_sequences
from dnsrec.data.sequences import SequenceData
from dnsrec.data.synth import SYNTH_FILES, SYNTH_PRESETS, SynthSpec, generate, tour, write_checkins
from dnsrec.errors import ConfigError, DataError
from dnsrec.evaluate import Evaluator
from dnsrec.pipeline import build_model
from dnsrec.train.loop import fit

SMALL = SynthSpec(users=120, items=300, interactions=6_000, seed=7)


def processed(path: Path, name: str = "synth-test", max_len: int = 50) -> SequenceData:
    """The file through the project's own SNAP Gowalla reader and the Gowalla presets' processing."""
    return build_sequences(read_gowalla(path), None, name=name, max_len=max_len, filtering=GOWALLA_FILTER)


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a = write_checkins(generate(SMALL), tmp_path / "a.checkins.txt.gz")
    b = write_checkins(generate(SMALL), tmp_path / "b.checkins.txt.gz")
    c = write_checkins(generate(SynthSpec(users=120, items=300, interactions=6_000, seed=8)), tmp_path / "c.txt.gz")
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()) != gzip.decompress(c.read_bytes())


@pytest.mark.parametrize(
    "spec",
    [SMALL, SynthSpec(users=37, items=91, interactions=2_345, zipf=1.4, noise=0.0, successors=1, seed=3)],
)
def test_the_requested_counts_survive_the_gowalla_processing(tmp_path: Path, spec: SynthSpec) -> None:
    checkins = generate(spec)
    assert len(checkins.items) == spec.interactions
    assert np.bincount(checkins.users).min() >= spec.min_user
    assert checkins.item_counts().min() >= spec.min_item
    data = processed(write_checkins(checkins, tmp_path / "s.checkins.txt.gz"))
    assert (data.n_users, data.n_items, data.n_interactions) == (spec.users, spec.items, spec.interactions)
    # the processed sequences are the generated ones, oldest first: times strictly increase per user
    assert np.all(np.diff(checkins.times)[np.diff(checkins.users) == 0] > 0)
    ids = np.array(data.item_ids)[data.items - 1].astype(np.int64)
    assert np.array_equal(ids, checkins.items)


def test_the_file_is_snap_gowalla_lines_newest_first(tmp_path: Path) -> None:
    checkins = generate(SMALL)
    path = write_checkins(checkins, tmp_path / "s.txt")  # no .gz: plain text
    lines = path.read_text().splitlines()
    assert len(lines) == SMALL.interactions
    user, time, lat, lon, location = lines[0].split("\t")
    assert user == "0" and time.endswith("Z") and len(time) == len("2010-10-19T23:55:27Z")
    assert -90 <= float(lat) <= 90 and -180 <= float(lon) <= 180 and int(location) in range(SMALL.items)
    first_user = [line.split("\t")[1] for line in lines if line.split("\t")[0] == "0"]
    assert first_user == sorted(first_user, reverse=True)  # newest first, as SNAP's file
    raw = read_gowalla(path)
    assert raw.newest_first and len(raw) == SMALL.interactions


@pytest.mark.parametrize("exponent", [0.8, 1.3])
def test_popularity_is_zipf_with_the_requested_exponent(exponent: float) -> None:
    """Least squares of log(count) on log(rank) over the 100 most popular items (the floor of min_item
    check-ins is negligible there): an independent fit of the rank-frequency slope."""
    spec = SynthSpec(users=1_000, items=2_000, interactions=200_000, zipf=exponent, seed=1)
    counts = np.sort(generate(spec).item_counts())[::-1][:100].astype(np.float64)
    ranks = np.arange(1, 101, dtype=np.float64)
    x, y = np.log(ranks) - np.log(ranks).mean(), np.log(counts) - np.log(counts).mean()
    slope = float((x * y).sum() / (x * x).sum())
    assert slope == pytest.approx(-exponent, abs=0.06)


def test_tour_follows_every_cycle_of_the_permutation() -> None:
    nxt = np.array([2, 0, 1, 3, 5, 4, 7, 8, 6])  # cycles (0 2 1), (3), (4 5), (6 7 8)
    assert tour(nxt).tolist() == [0, 2, 1, 3, 4, 5, 6, 7, 8]
    rng = np.random.default_rng(0)
    nxt = rng.permutation(10_000)
    order = tour(nxt)
    assert sorted(order.tolist()) == list(range(10_000))
    seen, n_cycles = set(), 0  # cycles counted the plain way
    for start in range(len(nxt)):
        n_cycles += start not in seen
        t = start
        while t not in seen:
            seen.add(t)
            t = int(nxt[t])
    follows = nxt[order[:-1]] == order[1:]
    assert int((~follows).sum()) == n_cycles - 1  # only a cycle's last token is followed by another cycle


def popularity_ndcg(data: SequenceData, evaluator: Evaluator) -> float:
    pop = torch.from_numpy(data.popularity()).float()
    return evaluator.evaluate(lambda seqs, lengths: pop.expand(len(seqs), -1), "valid")["pop100/ndcg@10"]


@pytest.mark.parametrize("noise", [0.2, 1.0])
def test_a_small_sasrec_learns_more_than_popularity_only_when_there_is_structure(tmp_path: Path, noise: float) -> None:
    """Structure a model can learn: a 1-layer SASRec trained 5 epochs beats popularity on validation pop100
    NDCG@10 by a wide margin; with noise=1 (no graph: next items drawn by popularity alone) it cannot."""
    torch.set_num_threads(1)
    spec = SynthSpec(users=200, items=300, interactions=8_000, noise=noise, seed=1)
    data = processed(write_checkins(generate(spec), tmp_path / "s.checkins.txt.gz"))
    evaluator = Evaluator(data, batch_size=256)
    torch.manual_seed(0)
    model = build_model(ModelConfig(d=32, inner=32, layers=1, heads=2, dropout=0.1), data)
    cfg = TrainConfig(lr=0.01, batch=512, max_epochs=5, patience=5, progress=False, device="cpu")
    learned = fit(model, data, evaluator, cfg, log=lambda _: None).best_valid["pop100/ndcg@10"]
    baseline = popularity_ndcg(data, evaluator)
    if noise < 1:
        assert learned > baseline + 0.15, (learned, baseline)  # measured: 0.63 vs 0.37
    else:
        assert learned < baseline + 0.03, (learned, baseline)  # measured: 0.41 vs 0.41


def test_the_synth_gowalla_preset_is_the_papers_gowalla_size() -> None:
    """Table 1: 64,116 users, 164,533 items (both with RecBole's padding id), 2,018,421 interactions."""
    spec = SYNTH_PRESETS["synth-gowalla"]
    assert (spec.users + 1, spec.items + 1, spec.interactions) == (64_116, 164_533, 2_018_421)
    assert spec.interactions / spec.users == pytest.approx(31.48, abs=0.01)
    assert spec.interactions / spec.items == pytest.approx(12.27, abs=0.01)
    preset = get_preset("synth-gowalla")
    assert preset.layouts[0].files == (SYNTH_FILES["synth-gowalla"],)
    assert preset.filtering == GOWALLA_FILTER and preset.max_len == 100


def test_the_preset_reads_what_the_command_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dnsrec data synth synth-gowalla` writes where the preset reads; here with the preset's spec shrunk
    (the real size takes seconds, measured in the README)."""
    from dnsrec.data import synth

    small = dict(SYNTH_PRESETS) | {"synth-gowalla": SMALL}
    monkeypatch.setattr(synth, "SYNTH_PRESETS", small)
    monkeypatch.setenv("DNSREC_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["data", "synth", "synth-gowalla", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "never a substitute for real data" in out
    data = load_dataset("synth-gowalla", data_dir=tmp_path / "data")
    assert (data.n_users, data.n_items, data.n_interactions) == (SMALL.users, SMALL.items, SMALL.interactions)


def test_a_missing_preset_file_says_how_to_make_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNSREC_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"synth-gowalla.checkins.txt.gz.*dnsrec data synth synth-gowalla"):
        load_dataset("synth-gowalla", data_dir=tmp_path)


def test_the_command_with_sizes_writes_a_file_and_refuses_a_changed_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine.checkins.txt.gz"
    args = ["data", "synth", "--users", "40", "--items", "60", "--interactions", "1500", "--seed", "2"]
    assert main([*args, "--out", str(out)]) == 0
    assert processed(out).n_interactions == 1500
    assert main(["data", "synth", "synth-gowalla", "--users", "10", "--data-dir", str(tmp_path)]) == 2
    assert main(["data", "synth", "--users", "10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--users would change the preset's data" in err and "--items, --interactions" in err


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"interactions": 100}, "interactions"),
        ({"zipf": 0.0}, "zipf"),
        ({"noise": 1.5}, "noise"),
        ({"min_user": 2}, "min_user"),
        ({"users": True}, "users"),
    ],
)
def test_bad_specs_name_the_key(change: dict, key: str) -> None:
    values = {"users": 50, "items": 60, "interactions": 1_000} | change
    with pytest.raises(ConfigError, match=f"'{key}'"):
        SynthSpec(**values)
