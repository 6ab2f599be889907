"""The paper's Table 1 columns of a processed dataset: users, items, interactions, mean actions per user
(UA) and per item (IA), and sparsity.

Counts are of real users and items only. The paper's counts come from RecBole, which adds the padding id to
each (6,041 users and 3,707 items for ML-1M's 6,040 and 3,706); its averages divide by the real counts
(1,000,209 / 6,040 = 165.60).
"""

from __future__ import annotations

from dataclasses import dataclass

from dnsrec.data.sequences import SequenceData

# Table 1 of the paper (users and items as printed there, i.e. with RecBole's padding id).
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "ml-1m": {"users": 6041, "items": 3707, "ua": 165.60, "ia": 269.89, "interactions": 1_000_209},
    "gowalla": {"users": 64_116, "items": 164_533, "ua": 31.48, "ia": 12.27, "interactions": 2_018_421},
    "douban": {"users": 110_091, "items": 29, "ua": 10.55, "ia": 41_496.71, "interactions": 2_125_056},
}


@dataclass(frozen=True)
class DatasetStats:
    name: str
    users: int
    items: int
    interactions: int
    mean_per_user: float  # the paper's UA (AVE): mean sequence length
    mean_per_item: float  # the paper's IA (AVE)
    sparsity: float  # 1 - interactions / (users * items); repeated interactions count once each

    @classmethod
    def of(cls, data: SequenceData) -> DatasetStats:
        users, items, n = data.n_users, data.n_items, data.n_interactions
        return cls(
            name=data.name,
            users=users,
            items=items,
            interactions=n,
            mean_per_user=n / users if users else 0.0,
            mean_per_item=n / items if items else 0.0,
            sparsity=1.0 - n / (users * items) if users and items else 0.0,
        )

    def table(self) -> str:
        """Our numbers beside the paper's, one column each (the paper's only for its three datasets)."""
        paper = PAPER_TABLE1.get(self.name)
        rows = [
            ("users", f"{self.users:,}", "users", "{:,.0f}"),
            ("items", f"{self.items:,}", "items", "{:,.0f}"),
            ("interactions", f"{self.interactions:,}", "interactions", "{:,.0f}"),
            ("mean per user (UA)", f"{self.mean_per_user:.2f}", "ua", "{:,.2f}"),
            ("mean per item (IA)", f"{self.mean_per_item:.2f}", "ia", "{:,.2f}"),
            ("sparsity", f"{self.sparsity:.2%}", "", ""),
        ]
        head = f"{'dataset ' + self.name:<22}{'here':>14}" + (f"{'paper (Table 1)':>18}" if paper else "")
        lines = [head]
        for label, ours, key, fmt in rows:
            theirs = fmt.format(paper[key]) if paper and key else ("-" if paper else "")
            lines.append(f"{label:<22}{ours:>14}" + (f"{theirs:>18}" if paper else ""))
        if paper:
            lines.append("(the paper counts RecBole's padding id among users and items)")
        return "\n".join(lines)
