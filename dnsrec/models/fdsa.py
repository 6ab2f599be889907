"""FDSA (Zhang et al., IJCAI 2019: Feature-level Deeper Self-Attention Network), with softmax or LinRec attention.

Two self-attention streams over the same positions, as RecBole 1.2's `FDSA` (the reference setup of the
paper's baselines, §3.2):
- item level: item embedding + position embedding, LayerNorm, dropout, L transformer layers;
- feature level: each item's feature embedding + the same position embedding, the same LayerNorm, dropout,
  L transformer layers of the same shape (own weights);
then at each position Linear_{2d -> d}([item stream ; feature stream]), the same LayerNorm again, dropout.
Scores use the tied item embedding; training is SASRec's loss path (`forward(seqs) -> (B, N, d)`).

Departures (docs/method.md): attention is causal and padding-masked in both variants (window training);
one feature field (MovieLens genres as the mean of an item's genres, or the item id where a dataset has
none), so RecBole's vanilla attention over feature FIELDS, a softmax over one field, is the identity and
is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dnsrec.models.features import FeatureEmbedding
from dnsrec.models.layers import init_weights
from dnsrec.models.sasrec import SASRec, SASRecConfig


@dataclass(frozen=True)
class FDSAConfig(SASRecConfig):
    """The shape of ONE stream (n_layers layers of width d, inner D); FDSA runs two.

    `layer_widths()` lists the transformer layers of both streams, item stream first, so the model's blocks
    and its FLOPs (the transformer layers' FLOPs, docs/method.md) cover both; `stream_widths()` is one stream.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gate_layers or self.widths is not None:
            raise ValueError("FDSA is a fixed baseline: gate_layers must be 0 and widths None")

    def stream_widths(self) -> tuple[tuple[int, int], ...]:
        return ((self.d, self.inner),) * self.n_layers

    def layer_widths(self) -> tuple[tuple[int, int], ...]:
        return self.stream_widths() * 2


class FDSA(SASRec):
    """Scores: `score(seqs, lengths) -> (B, n_items + 1)`; training: `forward(seqs) -> (B, N, d)`.

    `self.blocks` holds the item stream's n_layers blocks, then the feature stream's.
    `feature_table` (n_items + 1, K): each item's feature ids in 1..n_values, 0-padded (`padded_table`).
    """

    cfg: FDSAConfig

    def __init__(self, cfg: FDSAConfig, feature_table: Tensor, n_values: int) -> None:
        if len(feature_table) != cfg.n_items + 1:
            raise ValueError(f"feature_table has {len(feature_table)} rows, expected n_items + 1 = {cfg.n_items + 1}")
        super().__init__(cfg)  # item embedding, position embedding, LayerNorm, dropout, both streams' blocks
        self.features = FeatureEmbedding(feature_table, n_values, cfg.d)
        self.concat = nn.Linear(2 * cfg.d, cfg.d)
        self.features.apply(init_weights)
        self.concat.apply(init_weights)

    @property
    def item_blocks(self) -> nn.ModuleList:
        return self.blocks[: self.cfg.n_layers]  # type: ignore[return-value]

    @property
    def feature_blocks(self) -> nn.ModuleList:
        return self.blocks[self.cfg.n_layers :]  # type: ignore[return-value]

    def embed_features(self, seqs: Tensor) -> Tensor:
        """The feature stream's input: feature + position embedding, LayerNorm, dropout. (B, N) -> (B, N, d)."""
        pos = torch.arange(seqs.shape[1], device=seqs.device)
        return self.drop(self.norm(self.features(seqs) + self.pos_emb(pos)[None]))

    def streams(self, seqs: Tensor, last: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Both streams' outputs (B, N, d) each, or with `last` (B,) only those positions: (B, 1, d) each.

        With `last`, each stream's last layer runs only for that position (the O(N d^2) LinRec form)."""
        key_mask = seqs > 0
        outputs = []
        for x, blocks in ((self.embed(seqs), self.item_blocks), (self.embed_features(seqs), self.feature_blocks)):
            for i, block in enumerate(blocks):
                x = block(x, key_mask, last=last if i == len(blocks) - 1 else None)
            outputs.append(x)
        return outputs[0], outputs[1]

    def fuse(self, item: Tensor, feature: Tensor) -> Tensor:
        """[item ; feature] -> Linear 2d -> d, LayerNorm, dropout (RecBole's FDSA output)."""
        return self.drop(self.norm(self.concat(torch.cat([item, feature], dim=-1))))

    def forward(self, seqs: Tensor) -> Tensor:
        """Hidden state at every position (causal): (B, N) right-padded ids -> (B, N, d)."""
        return self.fuse(*self.streams(seqs))

    def last_hidden(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        """Hidden state at each sequence's last real position: (B, d)."""
        return self.fuse(*self.streams(seqs, last=lengths - 1))[:, 0]
