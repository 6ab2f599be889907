"""Typed, validated configuration. Hydra composes YAML at the entry point; below it only these frozen values.

Every check raises `ConfigError` naming the full key (e.g. `train.patience`) and what was expected, at
start, before any data is read or any model is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from dnsrec.errors import ConfigError

T = TypeVar("T")

# The choices of the method's config keys: one home, read by the validators below and by dnsrec.nas.
RELAXATIONS = ("softmax", "gumbel", "hard")  # search.relax
TAU_SCHEDULES = ("steps", "search")  # search.tau_schedule
WEIGHT_EXITS = ("mixture", "each")  # search.weight_exits
WEIGHT_WIDTHS = ("mixture", "uniform")  # search.weight_widths
ARCH_EXITS = ("mixture", "each")  # search.arch_exits
# search.method: DNS-Rec, or a NAS baseline over the same supernet (dnsrec.nas.methods; RecNAS is a reconstruction)
SEARCH_METHODS = ("dnsrec", "darts", "proxyless", "recnas")
RETRAIN_SHAPES = ("narrow", "wide")  # retrain.shape
MAX_GATE_LAYERS = 4  # gates.layers in 0..4 (paper section 3.7)
ATTENTIONS = ("linear", "softmax")  # attention, model.attention: LinRec's linear attention or softmax
DEFAULT_ATTENTION = "linear"
DEFAULT_DROPOUT = 0.2  # dropout, model.dropout (paper Table 2)
# The one metric that chooses (docs/method.md): the best epoch of a search or a retraining on validation, and the
# default objective of sweeps and of `dnsrec results` queries, recorded as "valid/" + it.
SELECTION_METRIC = "pop100/ndcg@10"
VALID_SELECTION_METRIC = f"valid/{SELECTION_METRIC}"
# The widths d and D of the transformer baselines (SASRec, FDSA, SASRecF): the paper trains them under one
# setting on every dataset (docs/method.md "Baselines"). Each dataset preset names its baselines' widths
# (`dnsrec.data.presets`, from these), which `dnsrec train` takes; here they are ModelConfig's defaults.
BASELINE_D, BASELINE_INNER = 128, 256


def dotted_keys(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as flat dotted keys (`{"search": {"lam": 0.1}}` -> `{"search.lam": 0.1}`): the one form in
    which configs are compared (resume stamps, reproduce points, `dnsrec results compare`). An empty mapping
    stays a value under its key, so no key vanishes; other values are returned as they are."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(dotted_keys(value, name + "."))
        else:
            out[name] = value
    return out


def check(key: str, ok: bool, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': expected {expected}, got {value!r}")


def positive_int(key: str, v: Any) -> None:
    check(key, isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer", v)


def non_negative_int(key: str, v: Any) -> None:
    check(key, isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0", v)


def positive_float(key: str, v: Any) -> None:
    check(key, isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a number > 0", v)


def one_of(*allowed: str) -> Callable[[str, Any], None]:
    def validate(key: str, v: Any) -> None:
        check(key, v in allowed, "one of " + ", ".join(repr(a) for a in allowed), v)

    return validate


def build(cls: type[T], values: Mapping[str, Any], prefix: str) -> T:
    """Build dataclass `cls` from `values`, refusing unknown keys and running each field's validator.

    A field's validator is `metadata={"check": fn(key, value)}`; fields without a default are required.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; known keys under '{prefix or '.'}': "
            + ", ".join(sorted(fields))
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"config key '{key}' is required")
            continue
        value = values[name]
        if isinstance(value, float) and value.is_integer() and f.type in ("int", "int | None"):
            value = int(value)
        validate = f.metadata.get("check")
        if validate is not None and not (value is None and "None" in str(f.type)):
            validate(key, value)
        kwargs[name] = value
    return cls(**kwargs)


def dropout_rate(key: str, v: Any) -> None:
    check(key, isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)", v)


attention_kind = one_of(*ATTENTIONS)


@dataclass(frozen=True)
class DatasetConfig:
    """The composed `dataset` group: a preset's keys (`dnsrec.data.presets`, their one home), as overridden.
    `dnsrec.config.run` fills keys a mapping leaves out from the named preset; max_len None = the preset's N."""

    name: str = dataclasses.field(metadata={"check": lambda k, v: check(k, isinstance(v, str), "a name", v)})
    max_len: int | None = dataclasses.field(metadata={"check": positive_int})
    d: int = dataclasses.field(metadata={"check": positive_int})
    inner: int = dataclasses.field(metadata={"check": positive_int})
    pruning: tuple[float, ...]


@dataclass(frozen=True)
class ModelConfig:
    # sasrec; fdsa and sasrecf are the feature-aware baselines (item genres; docs/method.md "Baselines")
    family: str = dataclasses.field(default="sasrec", metadata={"check": one_of("sasrec", "fdsa", "sasrecf")})
    attention: str = dataclasses.field(default=DEFAULT_ATTENTION, metadata={"check": attention_kind})
    # `dnsrec train` takes d and inner from the dataset preset's baseline widths unless given (config.run)
    d: int = dataclasses.field(default=BASELINE_D, metadata={"check": positive_int})
    inner: int = dataclasses.field(default=BASELINE_INNER, metadata={"check": positive_int})
    layers: int = dataclasses.field(default=2, metadata={"check": positive_int})
    heads: int = dataclasses.field(default=8, metadata={"check": positive_int})
    dropout: float = dataclasses.field(default=DEFAULT_DROPOUT, metadata={"check": dropout_rate})

    def __post_init__(self) -> None:
        check("model.heads", self.d % self.heads == 0, f"a divisor of model.d={self.d}", self.heads)


@dataclass(frozen=True)
class TrainConfig:
    lr: float = dataclasses.field(default=1e-3, metadata={"check": positive_float})
    batch: int = dataclasses.field(default=2048, metadata={"check": positive_int})
    weight_decay: float = dataclasses.field(
        default=0.0, metadata={"check": lambda k, v: check(k, isinstance(v, (int, float)) and v >= 0, ">= 0", v)}
    )
    max_epochs: int = dataclasses.field(default=200, metadata={"check": positive_int})
    patience: int = dataclasses.field(default=10, metadata={"check": positive_int})
    max_minutes: float | None = dataclasses.field(default=None, metadata={"check": positive_float})
    seed: int = dataclasses.field(default=0, metadata={"check": non_negative_int})
    # window: windows at `window_overlap`; prefix: the per-prefix objective (every target sees its last N items),
    # computed as stride-1 windows (dnsrec.train.batches)
    mode: str = dataclasses.field(default="window", metadata={"check": one_of("window", "prefix")})
    device: str = dataclasses.field(default="auto", metadata={"check": one_of("auto", "cpu", "cuda")})
    precision: str = dataclasses.field(default="auto", metadata={"check": one_of("auto", "fp32", "bf16")})
    eval_batch: int = dataclasses.field(default=256, metadata={"check": positive_int})
    # Logits per chunk of the cross-entropy over the catalogue (dnsrec.train.loss): bounds its memory to about
    # 4 bytes x ce_chunk x 2; 0 = unchunked (all targets x items logits at once, for comparisons).
    ce_chunk: int = dataclasses.field(default=1 << 25, metadata={"check": non_negative_int})
    # The overlap fraction o of consecutive training windows (dnsrec.train.batches): stride floor(N (1 - o)), each
    # target then sees at least min(o N, history) items. 0.5 (the default) gives the windows of before; as o -> 1
    # the work nears the per-prefix formulation's (one window per target).
    window_overlap: float = dataclasses.field(
        default=0.5,
        metadata={
            "check": lambda k, v: check(
                k,
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0.5 <= v < 1,
                "a fraction in [0.5, 1)",
                v,
            )
        },
    )
    bucket: bool = True  # group windows of similar length into a step and trim its padding (speed only)
    progress: bool = True
    # Training engine (dnsrec.train.engine): plain torch, or DeepSpeed with ZeRO stage 0-3. Either runs on one
    # process or on many (torchrun / SLURM tasks), each rank taking its share of every global batch.
    engine: str = dataclasses.field(default="torch", metadata={"check": one_of("torch", "deepspeed")})
    zero_stage: int = dataclasses.field(
        default=2,
        metadata={
            "check": lambda k, v: check(
                k, isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 3, "an integer in 0..3", v
            )
        },
    )
    # Micro-batches per rank per step (gradient accumulation); the step's gradient is the same either way.
    grad_accum: int = dataclasses.field(default=1, metadata={"check": positive_int})
    # Or: at most this many target positions per micro-batch on one rank (grad_accum is then derived).
    micro_batch: int | None = dataclasses.field(default=None, metadata={"check": positive_int})

    def __post_init__(self) -> None:
        check(
            "train.micro_batch",
            self.micro_batch is None or self.grad_accum == 1,
            "null when train.grad_accum is set (give one of the two)",
            self.micro_batch,
        )

    def micro_batches(self, batch: int, world_size: int) -> int:
        """Micro-batches each rank runs per step of `batch` target positions over `world_size` ranks."""
        if self.micro_batch is None:
            return self.grad_accum
        return max(1, -(-batch // (world_size * self.micro_batch)))


def _non_negative_float(key: str, v: Any) -> None:
    check(key, isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0", v)


@dataclass(frozen=True)
class SearchConfig:
    """DNS-Rec search (paper §2.6; docs/method.md "Bilevel search", "Resource constraint")."""

    lam: float = dataclasses.field(default=0.1, metadata={"check": _non_negative_float})  # lambda of Eq. 13
    epochs: int = dataclasses.field(default=10, metadata={"check": positive_int})
    relax: str = dataclasses.field(default="softmax", metadata={"check": one_of(*RELAXATIONS)})
    # Architecture steps on validation users (the paper's bilevel form; measured: the only form whose width
    # commits on Gowalla, and SASRec's accuracy at a quarter of its FLOPs on ML-100K, docs/search-measurements.md,
    # "Making the search commit") or on the weight step's own training batch (the published code).
    arch_batch: str = dataclasses.field(default="valid", metadata={"check": one_of("valid", "train")})
    arch_every: int = dataclasses.field(default=10, metadata={"check": positive_int})  # f
    arch_lr: float = dataclasses.field(default=0.1, metadata={"check": positive_float})
    arch_weight_decay: float = dataclasses.field(default=1e-6, metadata={"check": _non_negative_float})
    weight_decay: float = dataclasses.field(default=1e-6, metadata={"check": _non_negative_float})
    batch: int = dataclasses.field(default=1024, metadata={"check": positive_int})  # target positions per step
    # Validation sequences per architecture step; None = `batch` (the paper's 1,024). Each costs a whole
    # forward of its history for one target; 256 (the size the default was measured at) keeps CPU searches short.
    arch_batch_size: int | None = dataclasses.field(default=256, metadata={"check": positive_int})
    # Positions (sequences x their length) per forward of an architecture step: a memory bound, the step is the
    # same (the parts' gradients add up before the controllers step; dnsrec.nas.arch_step). 0 = the whole batch in
    # one forward: on ML-100K (256 histories of up to 200 items) that peaked at 6 GB.
    arch_part: int = dataclasses.field(default=1 << 12, metadata={"check": non_negative_int})
    layers: int = dataclasses.field(default=4, metadata={"check": positive_int})  # L
    heads: int = dataclasses.field(default=4, metadata={"check": positive_int})
    per_layer_alpha: bool = False
    # Temperature: "steps" = the published max(0.01, 1 - 5e-5 t); "search" = linear from 1 to `tau_final`
    # over the whole search, whatever the dataset's number of steps per epoch.
    tau_schedule: str = dataclasses.field(default="search", metadata={"check": one_of(*TAU_SCHEDULES)})
    tau_final: float = dataclasses.field(default=0.1, metadata={"check": positive_float})
    # The architecture lr scaled by tau: p = softmax(alpha / tau), so a step of the logits moves p 1/tau
    # times further as tau falls; scaling keeps the step in p constant (late steps no longer flip argmaxes).
    arch_lr_follows_tau: bool = True
    # The architecture lr at the search's end, a fraction of its start, falling linearly over the architecture
    # steps (like tau, after the warm-up): 1 = constant. Late steps that keep a constant step in p can still
    # flip an argmax in the last epochs (the depth drifts deeper at low lambda); a falling lr lets the decision
    # settle. Multiplies the tau scaling when both are on.
    arch_lr_final: float = dataclasses.field(default=1.0, metadata={"check": _non_negative_float})
    # The fraction of search epochs (floored) that take weight steps only before the first architecture
    # step (ProxylessNAS-style warm-up: the controllers then compare trained candidates, not random ones).
    # Warm-up epochs are not eligible as the decision epoch. A fraction, so short searches keep their epochs.
    warmup: float = dataclasses.field(default=0.0, metadata={"check": _non_negative_float})
    # The fraction of the architecture steps (after the warm-up) during which only alpha moves and beta stays at
    # its start (q uniform): the width is chosen before the depth. Without it the depth commits within a few
    # epochs while the cheap widths still hold most of p, and the width then grows at that depth (gowalla-1k:
    # depth 2 by search epoch 4 on 8 of 10 seeds, docs/search-measurements.md, "Holding the depth"). This default is
    # DNS-Rec's; a run config that leaves the key null gets its method's own (`depth_hold_of`: the baselines
    # move both).
    depth_hold: float = dataclasses.field(default=0.5, metadata={"check": _non_negative_float})
    # What a weight step trains at the exits: "mixture" = Eq. 10's Y = sum_l q_l T^(l) under the controllers' q
    # (the paper); "each" = every exit depth as its own model, the mean of the L exits' CE whatever q is (deep
    # supervision). Under the mixture a deep exit's weights learn only as much as q holds of it, so once q leans
    # shallow the supernet rates the deeper exits far below what they score alone (ML-100K: depth 3 0.24 against
    # depth 1's 0.31 in the supernet, 0.35 and 0.33 retrained alone; docs/search-measurements.md, "Every
    # architecture of the ML-100K space retrained alone"), and the depth decision is the search's, not the data's.
    weight_exits: str = dataclasses.field(default="mixture", metadata={"check": one_of(*WEIGHT_EXITS)})
    # The widths a weight step trains: "mixture" = the controllers' p, one expected mask per layer (the paper);
    # "uniform" = one width drawn uniformly per weight step, one-hot (per layer with search.per_layer_alpha), so
    # every width's weights train equally often whatever p says (Single-Path One-Shot's uniform sampling). Under
    # the mixture, once p commits to a width the narrower ones are never trained alone: ML-100K's supernet rates
    # width 128 above width 64 (0.32 against 0.29) where retrained alone width 64 is the better (0.338 against
    # 0.315; docs/search-measurements.md, "Training every exit and every width").
    weight_widths: str = dataclasses.field(default="mixture", metadata={"check": one_of(*WEIGHT_WIDTHS)})
    # What an architecture step scores at the exits: "mixture" = the CE of Eq. 10's Y = sum_l q_l T^(l) (the
    # paper); "each" = the expected CE over the depths, sum_l q_l CE(T^(l)), so beta's gradient
    # q_l (CE_l - sum_j q_j CE_j) moves the depth towards the exits that score best alone. The mixture of hidden
    # states from different depths is never what a retrained model computes, and with search.weight_exits=each
    # no weight step trains it either.
    arch_exits: str = dataclasses.field(default="mixture", metadata={"check": one_of(*ARCH_EXITS)})
    # The search method over the supernet (docs/method.md "Baselines"): dnsrec (bilevel controllers, gates, the
    # L_t-scaled FLOPs term), or a NAS baseline without gates: darts (softmax mixture, no resource term), proxyless
    # (one sampled path per step, binarised path gradients, expected-FLOPs term), recnas (a reconstruction:
    # annealed softmax, progressive pruning, FLOPs-bounded selection).
    method: str = dataclasses.field(default="dnsrec", metadata={"check": one_of(*SEARCH_METHODS)})
    # recnas only: the FLOPs bound of the selected architecture, a fraction of the un-pruned supernet's layers.
    flops_budget: float = dataclasses.field(default=0.5, metadata={"check": positive_float})
    # Any method: a hard bound on the decision, a fraction of the un-pruned supernet's FLOPs; the decision is
    # then the most probable architecture within it instead of the argmax (dnsrec.nas.decision). None = the
    # paper's argmax, whose FLOPs lambda steers but does not bound (gowalla-1k seed 4 at the preset's lambda
    # chose 0.50x the supernet, more than SASRec).
    max_flops: float | None = dataclasses.field(default=None, metadata={"check": positive_float})

    @staticmethod
    def depth_hold_of(method: str) -> float:
        """`search.depth_hold` when a run leaves it null: ours for DNS-Rec; the NAS baselines (DARTS,
        ProxylessNAS, RecNAS) move their controllers together from the first architecture step, as published."""
        return SearchConfig.depth_hold if method == "dnsrec" else 0.0

    @property
    def warmup_epochs(self) -> int:
        return int(self.warmup * self.epochs)

    def __post_init__(self) -> None:
        check("search.warmup", self.warmup < 1, "a fraction in [0, 1)", self.warmup)
        check("search.depth_hold", self.depth_hold < 1, "a fraction in [0, 1)", self.depth_hold)
        check("search.tau_final", self.tau_final <= 1, "a number in (0, 1]", self.tau_final)
        check("search.arch_lr_final", self.arch_lr_final <= 1, "a fraction in [0, 1]", self.arch_lr_final)
        check("search.lam", not isinstance(self.lam, bool), "a number >= 0", self.lam)
        check("search.flops_budget", self.flops_budget <= 1, "a fraction in (0, 1]", self.flops_budget)
        bound = self.max_flops
        check("search.max_flops", bound is None or bound <= 1, "null or a fraction in (0, 1]", bound)
        # ProxylessNAS samples its own paths and RecNAS prunes candidates: only the mixture methods take these.
        for key, value, own in (
            ("weight_widths", self.weight_widths, "trains"),
            ("arch_exits", self.arch_exits, "scores"),
        ):
            check(
                f"search.{key}",
                value == "mixture" or self.method in ("dnsrec", "darts"),
                f"mixture with search.method={self.method} (it {own} its own paths)",
                value,
            )
        check(
            "search.relax",
            self.relax == "softmax" or self.method == "dnsrec" or (self.method == "recnas" and self.relax == "gumbel"),
            f"softmax with search.method={self.method} (it relaxes by its own rule)"
            + (" or gumbel" if self.method == "recnas" else ""),
            self.relax,
        )


@dataclass(frozen=True)
class GatesConfig:
    layers: int = dataclasses.field(
        default=2,
        metadata={
            "check": lambda k, v: check(
                k,
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_GATE_LAYERS,
                f"an integer in 0..{MAX_GATE_LAYERS}",
                v,
            )
        },
    )


@dataclass(frozen=True)
class RetrainConfig:
    shape: str = dataclasses.field(default="narrow", metadata={"check": one_of(*RETRAIN_SHAPES)})
    init: str = dataclasses.field(default="scratch", metadata={"check": one_of("transfer", "scratch")})
    max_epochs: int = dataclasses.field(default=200, metadata={"check": positive_int})
    patience: int = dataclasses.field(default=10, metadata={"check": positive_int})
    batch: int = dataclasses.field(default=2048, metadata={"check": positive_int})
    # L_d of the retrained model's data-aware gates; None = the searched architecture's (Table 6 "Retrain Only"
    # retrains with other gates than the search had).
    gate_layers: int | None = dataclasses.field(
        default=None,
        metadata={
            "check": lambda k, v: check(
                k,
                v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_GATE_LAYERS),
                f"null or an integer in 0..{MAX_GATE_LAYERS}",
                v,
            )
        },
    )
