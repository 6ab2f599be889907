"""Synthetic check-ins in the SNAP Gowalla format: a BENCHMARK INPUT for speed and memory at a chosen scale
(e.g. the paper's Gowalla size, which is not available offline), never a substitute for real data in
accuracy claims.

What a generated dataset holds (all of it a pure function of the `SynthSpec`, seed included):
- exactly `users` users, `items` locations and `interactions` check-ins; every user has at least `min_user`
  and every location at least `min_item` check-ins, so the Gowalla presets' 5-core filter (and the
  leave-one-out minimum of 3) keeps every row and the processed dataset has exactly these counts;
- Zipf popularity: location counts are `min_item` each plus a multinomial draw of the rest with
  P(rank r) proportional to r^-zipf, so the head's rank-frequency curve has slope -zipf on log-log axes;
- sequential structure a model can learn: a seeded item-transition graph gives every location
  `successors` out-edges: edge 0 is a "route" (random cycles through bands of locations of similar
  popularity, so every location has a way in), edges 1.. go to locations drawn in proportion to their
  counts; edge k is wanted with probability proportional to 2^-k, or with probability `noise` no edge
  (any location). Each check-in (a token) is then linked to one check-in of the location it wants while
  that location has check-ins left (the rest are linked at random), which makes the links one
  permutation of all check-ins: following it visits every check-in exactly once, so the counts above hold
  exactly, and about `followed` of the steps follow the graph. That walk is cut into the users' sequences
  (log-normal lengths). The last location therefore predicts the next one well, and a sequential model
  beats a popularity ranking (with noise=1 it cannot);
- per user strictly increasing check-in times (a random start in 2009-2010, gaps of a minute plus an
  exponential with a mean of 8 hours) and one fixed coordinate per location, written as SNAP lines
  `user \\t time \\t latitude \\t longitude \\t location id`, users ascending, each user's check-ins newest
  first (as in SNAP's file), gzipped byte-for-byte reproducibly (no time stamp in the gzip header).

Everything is vectorised numpy (the permutation's cycles are found by pointer doubling), so the paper's
Gowalla size (2.0M check-ins) generates in seconds.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from dnsrec.errors import ConfigError, DataError
from dnsrec.files import atomic_write

SYNTH_NOTE = (
    "synthetic data: a benchmark input for speed and memory at a chosen scale, never a substitute for real "
    "data in accuracy claims"
)
_START = np.datetime64("2009-02-04T00:00:00", "s").astype(np.int64)  # Gowalla's first months
_START_SPAN = 16 * 30 * 86_400  # walks start within about 16 months
_MEAN_GAP = 8 * 3_600  # seconds between check-ins: 60 + Exponential(mean 8 h)


@dataclass(frozen=True)
class SynthSpec:
    """Sizes and shape of a synthetic dataset; every value is checked here (ConfigError names the key)."""

    users: int
    items: int
    interactions: int
    zipf: float = 1.0  # popularity exponent s: P(rank r) proportional to r^-s
    noise: float = 0.2  # chance that a step jumps to a popularity-drawn item instead of following an edge
    successors: int = 4  # out-edges per item in the transition graph (edge 0 is the route)
    min_user: int = 5  # check-ins per user, at least (>= 3 for leave-one-out)
    min_item: int = 5  # check-ins per location, at least
    seed: int = 0

    def __post_init__(self) -> None:
        def integer(key: str, value: object, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"synth: '{key}' must be an integer >= {low}, got {value!r}")

        integer("users", self.users, 1)
        integer("items", self.items, 2)
        integer("successors", self.successors, 1)
        integer("min_user", self.min_user, 3)
        integer("min_item", self.min_item, 1)
        integer("seed", self.seed, 0)
        integer("interactions", self.interactions, 1)
        if isinstance(self.zipf, bool) or not isinstance(self.zipf, (int, float)) or not 0 < self.zipf <= 5:
            raise ConfigError(f"synth: 'zipf' must be a number in (0, 5], got {self.zipf!r}")
        if isinstance(self.noise, bool) or not isinstance(self.noise, (int, float)) or not 0 <= self.noise <= 1:
            raise ConfigError(f"synth: 'noise' must be a number in [0, 1], got {self.noise!r}")
        need = max(self.users * self.min_user, self.items * self.min_item)
        if self.interactions < need:
            raise ConfigError(
                f"synth: 'interactions' must be at least max(users x min_user, items x min_item) = {need:,} "
                f"({self.users:,} x {self.min_user}, {self.items:,} x {self.min_item}), got {self.interactions:,}"
            )


# The paper's Table 1 Gowalla: 64,116 users, 164,533 items, 2,018,421 interactions, of which the user and item
# counts include RecBole's padding id (as ML-1M's 6,041 = 6,040 + 1), so the data holds one fewer of each.
SYNTH_PRESETS: Mapping[str, SynthSpec] = MappingProxyType(
    {"synth-gowalla": SynthSpec(users=64_115, items=164_532, interactions=2_018_421)}
)
SYNTH_FILES: Mapping[str, str] = MappingProxyType(
    {name: f"synth/{name}.checkins.txt.gz" for name in SYNTH_PRESETS}
)  # relative to the data directory


@dataclass(frozen=True)
class SynthCheckins:
    """Generated check-ins, one row each, grouped by user (0..users-1), each user's oldest first."""

    spec: SynthSpec
    users: np.ndarray  # int64 (M,)
    items: np.ndarray  # int64 (M,) location id as written (a seeded permutation of 0..items-1)
    times: np.ndarray  # int64 (M,) seconds since the epoch, strictly increasing within a user
    latitude: np.ndarray  # float64 (items,) per location id
    longitude: np.ndarray  # float64 (items,)
    followed: float  # share of check-ins followed by the item their graph edge chose (the rest: noise)

    def item_counts(self) -> np.ndarray:
        """int64 (items,): check-ins per location id."""
        return np.bincount(self.items, minlength=self.spec.items)


def zipf_probabilities(n: int, exponent: float) -> np.ndarray:
    """float64 (n,): P(rank r) proportional to r^-exponent, ranks 1..n."""
    p = np.arange(1, n + 1, dtype=np.float64) ** -float(exponent)
    return p / p.sum()


def item_counts(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """int64 (items,) by popularity rank, summing to `interactions`: min_item each, the rest multinomial
    with Zipf probabilities (so the head's rank-frequency slope is -zipf)."""
    zipf = zipf_probabilities(spec.items, spec.zipf)
    return spec.min_item + rng.multinomial(spec.interactions - spec.items * spec.min_item, zipf).astype(np.int64)


def user_lengths(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """int64 (users,) summing to `interactions`, each >= min_user, spread like real check-in counts
    (log-normal weights on the part above the minimum)."""
    weights = rng.lognormal(0.0, 1.0, spec.users)
    extra = rng.multinomial(spec.interactions - spec.users * spec.min_user, weights / weights.sum())
    return spec.min_user + extra.astype(np.int64)


def route(n_items: int, rng: np.random.Generator, smallest_band: int = 8) -> np.ndarray:
    """int64 (n_items,): each rank's route successor. Ranks are cut into bands of similar popularity
    ([0, 8), [8, 16), [16, 32), ...: doubling, a last band under 8 joining the one before) and each band is
    one random cycle: every item has exactly one route edge in, none points to itself (when a band holds
    >= 2 items), and an item's route successor is about as popular as the item."""
    edges = [0]
    while edges[-1] < n_items:
        edges.append(min(n_items, max(smallest_band, 2 * edges[-1])))
    if len(edges) > 2 and edges[-1] - edges[-2] < smallest_band:
        edges.pop(-2)
    successor = np.empty(n_items, dtype=np.int64)
    for lo, hi in itertools.pairwise(edges):
        cycle = lo + rng.permutation(hi - lo)
        successor[cycle] = np.roll(cycle, -1)
    return successor


def transition_graph(spec: SynthSpec, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int64 (items, successors): edge 0 the route, edges 1.. drawn in proportion to the item counts."""
    graph = np.empty((spec.items, spec.successors), dtype=np.int64)
    graph[:, 0] = route(spec.items, rng)
    if spec.successors > 1:
        cdf = np.cumsum(counts)
        u = rng.integers(0, int(cdf[-1]), (spec.items, spec.successors - 1))
        graph[:, 1:] = np.searchsorted(cdf, u, side="right")
    return graph


def link_tokens(
    item: np.ndarray, counts: np.ndarray, desired: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """A permutation `nxt` of the check-ins (tokens): token t is followed by token nxt[t]. A token whose
    desired next item j (-1: none) still has a free token gets one of j's tokens (in a random order); the
    rest are paired at random with the tokens no one took. Returns nxt and how many tokens got their wish."""
    n = len(item)
    by_desired = rng.permutation(n)
    by_desired = by_desired[np.argsort(desired[by_desired], kind="stable")]  # grouped, random within
    wish = desired[by_desired]
    rank = np.arange(n) - np.searchsorted(wish, wish, side="left")  # place in the queue for its wish
    granted = (wish >= 0) & (rank < counts[np.maximum(wish, 0)])
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = rng.permutation(n)
    slots = slots[np.argsort(item[slots], kind="stable")]  # each item's tokens, in a random order
    nxt = np.empty(n, dtype=np.int64)
    taken = slots[first[wish[granted]] + rank[granted]]
    nxt[by_desired[granted]] = taken
    free = np.ones(n, dtype=bool)
    free[taken] = False
    nxt[by_desired[~granted]] = rng.permutation(np.flatnonzero(free))
    return nxt, int(granted.sum())


def tour(nxt: np.ndarray) -> np.ndarray:
    """All tokens in one order: each cycle of the permutation `nxt` followed from its smallest token,
    cycles in the order of those tokens. Vectorised by pointer doubling (log2(n) rounds of gathers)."""
    n = len(nxt)
    rounds = max(1, int(np.ceil(np.log2(max(n, 2)))) + 1)
    index = np.arange(n, dtype=np.int32)  # int32 halves the memory traffic of the random gathers
    leader, jump = index.copy(), nxt.astype(np.int32)
    for _ in range(rounds):  # leader[t]: the smallest token within 2^k steps of t, in the end of its cycle
        np.minimum(leader, leader[jump], out=leader)
        jump = jump[jump]
    # steps from each token to its cycle's last token (the one whose next is the leader): list ranking
    end = nxt == leader
    step = np.where(end, index, nxt.astype(np.int32))
    to_end = (~end).astype(np.int32)
    for _ in range(rounds):
        to_end += to_end[step]
        step = step[step]
    return np.lexsort((-to_end, leader))


def generate(spec: SynthSpec) -> SynthCheckins:
    """The check-ins of `spec` (see the module docstring); the same spec gives the same arrays."""
    rng = np.random.default_rng([spec.seed, 0x5EED])
    counts = item_counts(spec, rng)  # by popularity rank
    graph = transition_graph(spec, counts, rng)
    item = np.repeat(np.arange(spec.items), counts)  # one token per check-in
    k = spec.successors
    edge_cdf = np.cumsum(0.5 ** np.arange(k))
    edge = np.minimum(np.searchsorted(edge_cdf / edge_cdf[-1], rng.random(len(item)), side="right"), k - 1)
    desired = np.where(rng.random(len(item)) < spec.noise, -1, graph[item, edge])
    nxt, followed = link_tokens(item, counts, desired, rng)
    ranks = item[tour(nxt)]  # the walk through every check-in, cut into users below
    lengths = user_lengths(spec, rng)
    location = rng.permutation(spec.items)  # popularity rank -> location id, so ids say nothing
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    users = np.repeat(np.arange(spec.users, dtype=np.int64), lengths)
    gaps = 60 + rng.exponential(_MEAN_GAP, len(ranks)).astype(np.int64)
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[offsets[:-1]], lengths)  # restart the running sum at each user
    times = _START + rng.integers(0, _START_SPAN, spec.users)[users] + elapsed
    latitude = rng.uniform(-45.0, 65.0, spec.items)
    longitude = rng.uniform(-170.0, 175.0, spec.items)
    return SynthCheckins(spec, users, location[ranks], times, latitude, longitude, followed / len(item))


def checkin_lines(checkins: SynthCheckins) -> str:
    """The SNAP text: users ascending, each user's check-ins newest first, one line each."""
    users, times = checkins.users, checkins.times
    n = len(users)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=checkins.spec.users))])
    rows = np.arange(n)
    newest_first = offsets[users] + offsets[users + 1] - 1 - rows  # mirror each user's block
    stamps = np.datetime_as_string(times[newest_first].astype("datetime64[s]"), unit="s")
    tail = [
        f"{lat:.6f}\t{lon:.6f}\t{item}"
        for lat, lon, item in zip(
            checkins.latitude.tolist(), checkins.longitude.tolist(), range(checkins.spec.items), strict=True
        )
    ]
    tails = np.array(tail, dtype=object)[checkins.items[newest_first]]
    return "".join(map("{}\t{}Z\t{}\n".format, users.tolist(), stamps.tolist(), tails.tolist()))


def write_checkins(checkins: SynthCheckins, path: str | Path) -> Path:
    """Write the check-ins as SNAP lines (gzipped if `path` ends in .gz), atomically (temporary file +
    rename); the same check-ins give the same bytes."""
    path = Path(path)
    data = checkin_lines(checkins).encode("ascii")
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(data))
    except OSError as e:
        raise DataError(f"{path}: cannot write the synthetic check-ins ({e})") from e
    return path


def synth_spec(name: str) -> SynthSpec:
    if name not in SYNTH_PRESETS:
        raise ConfigError(f"synth: unknown synthetic preset {name!r}; known: {', '.join(SYNTH_PRESETS)}")
    return SYNTH_PRESETS[name]


SYNTH_SHAPE = ("users", "items", "interactions", "zipf", "noise", "successors", "seed")  # SynthSpec's fields


def synth_target(
    preset: str | None, given: Mapping[str, Any], out: str | None, data_dir: str | None
) -> tuple[SynthSpec, Path]:
    """What `dnsrec data synth` writes, and where: a preset's spec to the file its preset reads (in
    `data_dir`), or, with `out`, a preset changed by `given` (SYNTH_SHAPE keys) or a spec of `given` alone.
    A preset is never changed in place: its file would no longer hold the preset's data."""
    import dataclasses

    from dnsrec.data.load import data_directory  # load -> presets -> synth: imported at the call

    if preset is not None:
        if given and out is None:
            raise ConfigError(
                f"data synth {preset}: --{', --'.join(given)} would change the preset's data; "
                "write other data to a file of your own with --out FILE"
            )
        spec = dataclasses.replace(synth_spec(preset), **given)
        return spec, Path(out) if out else data_directory(data_dir) / SYNTH_FILES[preset]
    missing = [f"--{key}" for key in ("users", "items", "interactions") if key not in given]
    missing += [] if out else ["--out"]
    if missing:
        raise ConfigError(f"data synth: give a preset ({', '.join(SYNTH_FILES)}) or {', '.join(missing)}")
    assert out is not None
    return SynthSpec(**given), Path(out)
