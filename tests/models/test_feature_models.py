"""FDSA and SASRecF (feature-aware baselines): shapes, causality, padding, the feature stream, genre lookup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_support import require_data

from dnsrec.compose import compose
from dnsrec.config.run import TrainRunConfig
from dnsrec.data import load_dataset
from dnsrec.data.features import model_features
from dnsrec.errors import DataError
from dnsrec.models import FDSA, FDSAConfig, FeatureEmbedding, SASRec, SASRecConfig, SASRecF, padded_table
from dnsrec.pipeline import build_model
from dnsrec.train.device import Placement
from dnsrec.train.loop import train_step

N_ITEMS, MAX_LEN = 40, 10
CASES = [(family, attention) for family in ("fdsa", "sasrecf") for attention in ("linear", "softmax")]


def genre_table(n_items: int = N_ITEMS) -> tuple[torch.Tensor, int]:
    """Item i has feature i % 5 + 1 and, for even i, also feature 6: 6 values, up to 2 per item."""
    values, offsets = [], [0, 0]
    for i in range(1, n_items + 1):
        values += [i % 5 + 1] + ([6] if i % 2 == 0 else [])
        offsets.append(len(values))
    return padded_table(np.array(values, dtype=np.int64), np.array(offsets, dtype=np.int64)), 6


def make(family: str, attention: str, table: torch.Tensor | None = None, n_values: int = 6) -> SASRec:
    torch.manual_seed(0)
    if table is None:
        table, n_values = genre_table()
    shape = dict(n_items=N_ITEMS, max_len=MAX_LEN, d=16, inner=24, n_layers=2, n_heads=4, dropout=0.3)
    if family == "fdsa":
        model: SASRec = FDSA(FDSAConfig(**shape, attention=attention), table, n_values)  # type: ignore[arg-type]
    else:
        model = SASRecF(SASRecConfig(**shape, attention=attention), table, n_values)  # type: ignore[arg-type]
    return model.double().eval()


def padded(rows: list[list[int]], n: int = MAX_LEN) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        seqs[i, : len(r)] = torch.tensor(r)
    return seqs, torch.tensor([len(r) for r in rows])


ROWS = [[3, 17, 8, 22, 5, 40, 1], [9, 2, 33], [12]]


@pytest.mark.parametrize(("family", "attention"), CASES)
def test_shapes_and_scores_in_fp32(family: str, attention: str) -> None:
    model = make(family, attention)
    seqs, lengths = padded(ROWS)
    hidden = model(seqs)
    assert hidden.shape == (3, MAX_LEN, 16)
    assert model.score(seqs, lengths).shape == (3, N_ITEMS + 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # trained in bf16, ranked in fp32 (item_scores)
        assert model.float().score(seqs, lengths).dtype == torch.float32
    model.double()
    # the last-position form used for scoring equals the all-positions forward at the last real item
    last = hidden[torch.arange(3), lengths - 1]
    torch.testing.assert_close(model.last_hidden(seqs, lengths), last)


@pytest.mark.parametrize(("family", "attention"), CASES)
def test_a_future_item_never_changes_an_earlier_position(family: str, attention: str) -> None:
    model = make(family, attention)
    seqs, _ = padded([ROWS[0]])
    out = model(seqs)
    for t in range(len(ROWS[0]) - 1):
        changed = seqs.clone()
        changed[0, t + 1 :] = torch.where(changed[0, t + 1 :] > 0, changed[0, t + 1 :] % N_ITEMS + 1, 0)
        other = model(changed)
        torch.testing.assert_close(other[0, : t + 1], out[0, : t + 1])
        assert not torch.allclose(other[0, t + 1], out[0, t + 1])  # the changed position itself does change


@pytest.mark.parametrize(("family", "attention"), CASES)
def test_padding_does_not_change_real_positions(family: str, attention: str) -> None:
    model = make(family, attention)
    alone = [model(padded([row], n=len(row))[0])[0] for row in ROWS]  # no padding at all
    batch = model(padded(ROWS)[0])  # padded to MAX_LEN beside longer batch-mates
    for row, single, out in zip(ROWS, alone, batch, strict=True):
        torch.testing.assert_close(out[: len(row)], single)
    seqs, lengths = padded(ROWS)
    scores = model.score(seqs, lengths)
    for i, row in enumerate(ROWS):
        s, n = padded([row], n=len(row))
        torch.testing.assert_close(scores[i], model.score(s, n)[0])


def test_constant_feature_leaves_no_item_information_in_fdsa_feature_stream() -> None:
    """Every item has the same feature: the feature stream sees only positions and the padding mask, so two
    different item sequences of one length give the same feature-stream output, no gradient reaches the item
    embedding through it, and the item stream (the contrast) does differ. With the item id as the feature the
    same two sequences DO differ in the feature stream, so the check can fail."""
    constant = torch.ones(N_ITEMS + 1, 1, dtype=torch.long)
    constant[0] = 0  # padding item
    a, _ = padded([[3, 17, 8, 22]])
    b, _ = padded([[30, 1, 25, 6]])
    model = make("fdsa", "linear", constant, n_values=1)
    assert isinstance(model, FDSA)
    item_a, feat_a = model.streams(a)
    item_b, feat_b = model.streams(b)
    torch.testing.assert_close(feat_a[0, :4], feat_b[0, :4])
    assert not torch.allclose(item_a[0, :4], item_b[0, :4])
    assert feat_a[0, :4].std(dim=0).sum() > 0  # positions still differ: the stream is not trivially constant
    model.zero_grad()
    feat_a.sum().backward()
    grad = model.item_emb.weight.grad
    assert grad is None or torch.count_nonzero(grad) == 0

    by_id = make("fdsa", "linear", torch.arange(N_ITEMS + 1)[:, None], n_values=N_ITEMS)
    assert isinstance(by_id, FDSA)
    assert not torch.allclose(by_id.streams(a)[1][0, :4], by_id.streams(b)[1][0, :4])


def test_multi_genre_item_is_the_mean_of_its_genres_on_real_movielens() -> None:
    """ml-100k's RecBole .item file, read independently here: the model's feature embedding of each item
    is the mean of its genres' embeddings, and the genres are the file's."""
    data_dir = require_data("ml-100k/ml-100k.item", "ml-100k/ml-100k.inter")
    lines = (data_dir / "ml-100k/ml-100k.item").read_text(encoding="latin-1").splitlines()[1:]
    genres_of = {cols[0]: cols[3].split() for cols in (line.split("\t") for line in lines)}
    data = load_dataset("ml-100k")
    features = model_features(data)
    assert features.name == "genre"
    torch.manual_seed(0)
    emb = FeatureEmbedding(padded_table(features.values, features.offsets), features.n_values, 8).double()
    index = {name: i + 1 for i, name in enumerate(features.vocabulary)}
    multi = 0
    for item in range(1, data.n_items + 1):
        genres = genres_of[data.item_ids[item - 1]]
        assert sorted(features.vocabulary[v - 1] for v in features.of(item)) == sorted(genres)
        expected = emb.emb.weight[[index[g] for g in genres]].mean(dim=0)
        torch.testing.assert_close(emb(torch.tensor([[item]]))[0, 0], expected)
        multi += len(genres) > 1
    assert multi > 500  # 849 of ml-100k's 1,682 movies have several genres
    toy_story = data.item_ids.index("1") + 1
    assert sorted(features.vocabulary[v - 1] for v in features.of(toy_story)) == ["Animation", "Children's", "Comedy"]
    assert torch.count_nonzero(emb(torch.tensor([[0]]))) == 0  # the padding item embeds to zero


def test_item_id_is_the_feature_where_a_dataset_has_no_feature_file() -> None:
    require_data("gowalla/gowalla-100.checkins.txt.gz")
    data = load_dataset("gowalla-100")
    assert data.item_features is None
    features = model_features(data)
    assert features.name == "item_id" and features.n_values == data.n_items
    assert [features.of(i).tolist() for i in (1, 2, data.n_items)] == [[1], [2], [data.n_items]]
    assert len(features.of(0)) == 0


def test_a_movielens_dataset_without_its_genre_file_is_an_error_naming_it(tmp_path: Path) -> None:
    shared = require_data("ml-100k/ml-100k.inter")
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k/ml-100k.inter").symlink_to(shared / "ml-100k/ml-100k.inter")
    data = load_dataset("ml-100k", data_dir=tmp_path)
    assert data.item_features is None
    for family in ("fdsa", "sasrecf"):
        cfg = TrainRunConfig.from_mapping(compose("train", ["dataset=ml-100k", f"model={family}"]))
        with pytest.raises(
            DataError, match=f"model.family={family}.*ml-100k/ml-100k.item beside ml-100k/ml-100k.inter"
        ):
            build_model(cfg.model, data)
    sasrec = TrainRunConfig.from_mapping(compose("train", ["dataset=ml-100k", "model=sasrec"]))
    assert type(build_model(sasrec.model, data)) is SASRec  # SASRec needs no features


@pytest.mark.parametrize(("family", "attention"), CASES)
def test_one_training_step_through_the_shared_loss(family: str, attention: str) -> None:
    model = make(family, attention).float().train()
    seqs, _ = padded(ROWS)
    targets = torch.where(seqs > 0, seqs % N_ITEMS + 1, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = train_step(model, seqs, targets, Placement.resolve("cpu", "fp32"))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.features.emb.weight.grad is not None  # type: ignore[union-attr]
    assert torch.count_nonzero(model.features.emb.weight.grad) > 0  # type: ignore[union-attr]
    opt.step()
    after = model.state_dict()
    assert all(k in after for k in before) and any(not torch.equal(before[k], after[k]) for k in before)
