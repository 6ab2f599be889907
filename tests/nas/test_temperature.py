"""Temperature schedules (pure functions of the step) and the search's warm-up epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_runs import TINY_RUN, tiny_outcome, tiny_search

from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.errors import ConfigError, NoBestEpoch
from dnsrec.nas.controllers import TemperatureSchedule


def test_published_schedule_is_the_default() -> None:
    tau = TemperatureSchedule()
    assert [tau(t) for t in (0, 10_000, 10**7)] == [1.0, pytest.approx(0.5), 0.01]


def test_schedule_over_the_search_reaches_its_final_value_at_the_last_step() -> None:
    tau = TemperatureSchedule.over_search(total_steps=200, final=0.1, hold=50)
    assert tau(0) == tau(50) == 1.0  # held while only the weights train
    assert tau(150) == pytest.approx(0.55)  # halfway: (1 + 0.1) / 2
    assert tau(250) == pytest.approx(0.1) and tau(10**6) == pytest.approx(0.1)


def test_warmup_epochs_train_weights_only_and_the_schedule_spans_the_rest() -> None:
    warm, first, last = tiny_search(
        "search.epochs=3", "search.warmup=0.34", "search.tau_schedule=search", "search.tau_final=0.2"
    )
    assert warm["alpha"] == [[0.0, 0.0, 0.0]] and warm["beta"] == [0.0, 0.0] and warm["tau"] == 1.0
    assert first["alpha"] != [[0.0, 0.0, 0.0]]  # architecture steps begin after the warm-up
    # the depth hold (default half) counts the architecture steps after the warm-up: beta moves in epoch 3
    assert first["beta"] == [0.0, 0.0] and last["beta"] != [0.0, 0.0]
    assert 0.2 < first["tau"] < 1.0 and last["tau"] == pytest.approx(0.2)


def test_warmup_is_a_fraction_of_the_search_floored() -> None:
    def epochs(*extra: str) -> int:
        return RunConfig.from_mapping(compose("run", [*TINY_RUN, *extra])).search.warmup_epochs

    assert epochs("search.epochs=10", "search.warmup=0.2") == 2 and epochs("search.epochs=3", "search.warmup=0.2") == 0
    with pytest.raises(ConfigError, match=r"search\.warmup': expected a fraction in \[0, 1\)"):
        epochs("search.warmup=1")


def last_arch_lr(tmp_path: Path, *extra: str) -> float:
    """The architecture optimiser's lr after a tiny 2-epoch search, as its checkpoint saved it."""
    tiny_search("search.arch_lr=0.05", "search.tau_final=0.2", "search.epochs=2", *extra, run_dir=tmp_path)
    saved = torch.load(tmp_path / "search.pt", weights_only=False)
    saved = saved.get("payload", saved)
    return float(saved["a_opt"]["param_groups"][0]["lr"])


# The last architecture step is the search's last weight step, where tau has reached tau_final (0.2) and the
# architecture lr's own fall has reached search.arch_lr_final.
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["search.arch_lr_follows_tau=true"], 0.05 * 0.2),
        (["search.arch_lr_follows_tau=false", "search.arch_lr_final=0.25"], 0.05 * 0.25),
        (["search.arch_lr_follows_tau=true", "search.arch_lr_final=0.5"], 0.05 * 0.2 * 0.5),
        (["search.arch_lr_follows_tau=false", "search.arch_lr_final=0"], 0.0),
    ],
)
def test_last_architecture_step_lr(tmp_path: Path, extra: list[str], expected: float) -> None:
    assert last_arch_lr(tmp_path, *extra) == pytest.approx(expected, abs=1e-12)


def test_arch_lr_scale_falls_linearly_over_the_architecture_steps() -> None:
    # The same linear fall as tau's over_search, after the warm-up's hold: halfway = (1 + final) / 2.
    scale = TemperatureSchedule.over_search(total_steps=100, final=0.0, hold=20)
    assert [scale(t) for t in (0, 20, 70, 120, 500)] == [1.0, 1.0, pytest.approx(0.5), 0.0, 0.0]


def test_arch_lr_final_above_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"search\.arch_lr_final': expected a fraction in \[0, 1\]"):
        RunConfig.from_mapping(compose("run", [*TINY_RUN, "search.arch_lr_final=1.5"]))


def test_depth_hold_moves_only_alpha_until_its_fraction_of_the_architecture_steps() -> None:
    # 4 epochs, no warm-up, depth_hold 0.5: beta is exactly at its start after epochs 1 and 2 (its gradient is
    # dropped, so Adam's weight decay does not touch it either) while alpha moves; it moves from epoch 3 on.
    trajectory = tiny_search("search.epochs=4", "search.depth_hold=0.5")
    assert [e["beta"] == [0.0, 0.0] for e in trajectory] == [True, True, False, False]
    assert trajectory[0]["alpha"] != [[0.0, 0.0, 0.0]]
    assert trajectory[1]["q"] == [0.5, 0.5]  # q uniform while held, whatever tau
    # Without the hold the same search moves beta from its first epoch.
    assert tiny_search("search.epochs=4", "search.depth_hold=0")[0]["beta"] != [0.0, 0.0]


def test_no_decision_is_taken_while_the_depth_is_held() -> None:
    # While beta is held q is uniform, and its argmax (depth 1) is a tie-break, not a decision: a sweep trial at
    # lr 4e-3 peaked on validation in the hold's last epoch and "chose" depth 1, while its search then moved
    # the depth to 3. Here nothing moves (both learning rates 1e-12), so every epoch scores the same and the first
    # epoch allowed to be chosen is the decision: 3 of 4 with depth_hold 0.5, 1 without a hold.
    frozen = ("search.epochs=4", "lr=1e-12", "search.arch_lr=1e-12")
    assert tiny_outcome(*frozen, "search.depth_hold=0.5").best_epoch == 3
    assert tiny_outcome(*frozen, "search.depth_hold=0").best_epoch == 1


def test_no_decision_before_an_architecture_step_has_moved_the_depth() -> None:
    # gowalla-100 at search.batch 512 takes 21 weight steps an epoch; with an architecture step every 30 the
    # first one falls in epoch 2, so epoch 1 ends with alpha and beta untouched (its argmax a tie-break).
    frozen = ("search.epochs=2", "lr=1e-12", "search.arch_lr=1e-12", "search.depth_hold=0", "search.arch_every=30")
    assert tiny_outcome(*frozen).best_epoch == 2
    # with one epoch there is no architecture step at all: no decision, said so, rather than a tie-break recorded
    with pytest.raises(NoBestEpoch, match=r"no search epoch ended after an architecture step.*search\.arch_every=30"):
        tiny_outcome("search.epochs=1", "search.arch_every=30")


def test_depth_hold_of_the_whole_search_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"search\.depth_hold': expected a fraction in \[0, 1\)"):
        RunConfig.from_mapping(compose("run", [*TINY_RUN, "search.depth_hold=1"]))
