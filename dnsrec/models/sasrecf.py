"""SASRecF: SASRec with item features fused at the input, as RecBole 1.2's `SASRecF` (the paper's baseline,
§3.2, footnote 4: RecBole), with softmax or LinRec attention.

Input at each position: Linear_{2d -> d}([item embedding ; feature embedding]) + position embedding, then
LayerNorm and dropout, exactly RecBole's `concat_layer` path with one feature field; the transformer layers,
the tied output layer (scores against the ITEM embedding) and the training loss are SASRec's.

Departures, as for SASRec (docs/method.md): attention is causal and padding-masked in both variants. The
feature is one field (MovieLens genres, the mean of an item's genres; or the item id where a dataset has
none, docs/method.md "Baselines"), pooled by the mean where RecBole's SASRecF default is the sum; RecBole
concatenates one embedding per selected field.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dnsrec.models.features import FeatureEmbedding
from dnsrec.models.layers import init_weights
from dnsrec.models.sasrec import SASRec, SASRecConfig


class SASRecF(SASRec):
    """Scores: `score(seqs, lengths) -> (B, n_items + 1)`; training: `forward(seqs) -> (B, N, d)`.

    `feature_table` (n_items + 1, K): each item's feature ids in 1..n_values, 0-padded (`padded_table`).
    """

    def __init__(self, cfg: SASRecConfig, feature_table: Tensor, n_values: int) -> None:
        if cfg.gate_layers or cfg.widths is not None:
            raise ValueError("SASRecF is a fixed baseline: gate_layers must be 0 and widths None")
        if len(feature_table) != cfg.n_items + 1:
            raise ValueError(f"feature_table has {len(feature_table)} rows, expected n_items + 1 = {cfg.n_items + 1}")
        super().__init__(cfg)
        self.features = FeatureEmbedding(feature_table, n_values, cfg.d)
        self.concat = nn.Linear(2 * cfg.d, cfg.d)
        self.features.apply(init_weights)
        self.concat.apply(init_weights)

    def embed(self, seqs: Tensor) -> Tensor:
        """[item ; feature] -> Linear -> + position, LayerNorm, dropout: (B, N) -> (B, N, d)."""
        n = seqs.shape[1]
        assert n <= self.cfg.max_len, f"sequence length {n} > max_len {self.cfg.max_len}"
        fused = self.concat(torch.cat([self.item_emb(seqs), self.features(seqs)], dim=-1))  # (B, N, d)
        pos = torch.arange(n, device=seqs.device)
        return self.drop(self.norm(fused + self.pos_emb(pos)[None]))
