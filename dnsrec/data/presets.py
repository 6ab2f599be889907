"""The named datasets, each in one place: the files it reads (relative to the data directory) and how, the
paper's filtering and max length N, the DNS-Rec supernet's widths d and D with the pruning intensities, and
the widths its transformer baselines train at (docs/method.md, "Datasets and filtering", "Baselines").

Everything else reads a preset from here: the loaders (`dnsrec.data.load`), the Hydra group `dataset`
(generated from `PRESETS` by `dnsrec.compose`: `dataset=NAME` selects one, `dataset.d=...` overrides a key),
and `dnsrec train`'s model widths. Layouts are listed official-first: the first one whose main file exists
wins, so a downloaded `ml-1m.zip` beats the offline SASRec copy. To add a dataset, add a `Preset` to
`_PRESETS` (README, "Development").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from dnsrec.config import BASELINE_D, BASELINE_INNER
from dnsrec.data import formats
from dnsrec.data.process import Filter
from dnsrec.data.raw import RawInteractions, RawItemFeatures
from dnsrec.data.synth import SYNTH_FILES
from dnsrec.errors import ConfigError

Loaded = tuple[RawInteractions, RawItemFeatures | None]
Loader = Callable[[Path, tuple[Path | None, ...]], Loaded]  # (main file, companions or None if absent)


@dataclass(frozen=True)
class Download:
    """An official file a preset may fetch into `<cache_dir>/downloads/` (and looks for there)."""

    url: str
    md5: str | None = None  # as the publisher lists it; None when nothing is published

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Layout:
    """One on-disk form of a dataset: files[0] must exist for it to be chosen; the rest are optional
    companions (e.g. the genres) read when present."""

    files: tuple[str, ...]
    load: Loader
    download: Download | None = None

    def describe(self) -> str:
        text = self.files[0]
        if len(self.files) > 1:
            text += f", optionally with {' and '.join(self.files[1:])}"
        if self.download is not None:
            text += f"  (official: {self.download.url})"
        return text


@dataclass(frozen=True)
class Widths:
    """A transformer's widths: d, the hidden (residual) width, and D, the feed-forward (inner) width."""

    d: int
    inner: int


@dataclass(frozen=True)
class Preset:
    name: str
    layouts: tuple[Layout, ...]
    max_len: int  # N (`dataset.max_len`)
    supernet: Widths  # DNS-Rec's supernet d and D (`dataset.d`, `dataset.inner`)
    pruning: tuple[float, ...]  # the candidates' pruning intensities gamma_i = gamma'_i (`dataset.pruning`)
    # `dnsrec train`'s model widths (`model.d`, `model.inner` when not given): SASRec, FDSA and SASRecF
    baseline: Widths
    filtering: Filter = field(default_factory=Filter)
    hint: str = ""  # added to the missing-file message (e.g. where to get a file that needs a login)
    # The search's lambda when `search.lam` is null (the default): the paper's 0.1 unless measured otherwise
    lam: float = 0.1

    @property
    def official(self) -> Layout | None:
        return next((layout for layout in self.layouts if layout.download is not None), None)

    def run_keys(self) -> dict[str, object]:
        """The keys of the composed `dataset` group (`dnsrec.config.DatasetConfig`), in the order shown."""
        d, inner = self.supernet.d, self.supernet.inner
        return {"name": self.name, "max_len": self.max_len, "d": d, "inner": inner, "pruning": list(self.pruning)}


def _movielens_zip(main: Path, _: tuple[Path | None, ...]) -> Loaded:
    return formats.read_movielens_zip(main)


def _ratings_dat(main: Path, companions: tuple[Path | None, ...]) -> Loaded:
    (movies,) = companions
    return formats.read_ratings_dat(main), None if movies is None else formats.read_movies_dat(movies)


def _u_data(main: Path, companions: tuple[Path | None, ...]) -> Loaded:
    u_item, u_genre = companions
    return formats.read_u_data(main), None if u_item is None else formats.read_u_item(u_item, u_genre)


def _sasrec(main: Path, companions: tuple[Path | None, ...]) -> Loaded:
    (item,) = companions
    return formats.read_sasrec_txt(main), None if item is None else formats.read_item(item)


def _recbole(main: Path, companions: tuple[Path | None, ...]) -> Loaded:
    (item,) = companions
    return formats.read_inter(main), None if item is None else formats.read_item(item)


def _gowalla(main: Path, _: tuple[Path | None, ...]) -> Loaded:
    return formats.read_gowalla(main), None


def _douban(main: Path, _: tuple[Path | None, ...]) -> Loaded:
    return formats.read_dmsc_csv(main), None


GROUPLENS = "https://files.grouplens.org/datasets/movielens"
GOWALLA_URL = "https://snap.stanford.edu/data/loc-gowalla_totalCheckins.txt.gz"
GOWALLA = "loc-gowalla_totalCheckins.txt"
KAGGLE_DOUBAN = "https://www.kaggle.com/datasets/utmhikari/doubanmovieshortcomments"
GOWALLA_FILTER = Filter(min_user=5, min_item=5)
# The transformer baselines train under one setting on every dataset, the paper's (docs/method.md "Baselines"):
# d 128, D 256, also on Gowalla, whose supernet is d 64.
BASELINE = Widths(BASELINE_D, BASELINE_INNER)

# N, the supernet's d / D and the pruning intensities are the paper's (docs/method.md "Datasets and filtering").
_PRESETS = (
    Preset(
        "ml-1m",
        (
            Layout(
                ("ml-1m.zip",),
                _movielens_zip,
                Download(f"{GROUPLENS}/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906"),
            ),
            Layout(("ml-1m/ratings.dat", "ml-1m/movies.dat"), _ratings_dat),
            Layout(("ml-1m/ml-1m.txt.gz", "ml-1m/ml-1m.item"), _sasrec),
            Layout(("ml-1m/ml-1m.txt", "ml-1m/ml-1m.item"), _sasrec),
        ),
        max_len=200,
        supernet=Widths(128, 256),
        pruning=(0.0, 0.25, 0.5),
        baseline=BASELINE,
    ),
    Preset(  # not in the paper: our small real set, with ML-1M's settings
        "ml-100k",
        (
            Layout(
                ("ml-100k.zip",),
                _movielens_zip,
                Download(f"{GROUPLENS}/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723"),
            ),
            Layout(("ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.genre"), _u_data),
            Layout(("ml-100k/ml-100k.inter", "ml-100k/ml-100k.item"), _recbole),
        ),
        max_len=200,
        supernet=Widths(128, 256),
        pruning=(0.0, 0.25, 0.5),
        baseline=BASELINE,
    ),
    Preset(
        "gowalla",
        (
            Layout((f"{GOWALLA}.gz",), _gowalla, Download(GOWALLA_URL)),
            Layout((f"gowalla/{GOWALLA}.gz",), _gowalla),
            Layout((GOWALLA,), _gowalla),
            Layout((f"gowalla/{GOWALLA}",), _gowalla),
        ),
        max_len=100,
        supernet=Widths(64, 256),
        pruning=(0.0, 0.5, 0.75),
        baseline=BASELINE,
        filtering=GOWALLA_FILTER,
    ),
    Preset(  # the first 1,000 users of Gowalla, for quick runs: Gowalla's settings
        "gowalla-1k",
        (Layout(("gowalla/gowalla-1k.checkins.txt.gz",), _gowalla),),
        max_len=100,
        supernet=Widths(64, 256),
        pruning=(0.0, 0.5, 0.75),
        baseline=BASELINE,
        filtering=GOWALLA_FILTER,
        # at 0.1 the validation-batch search (seed 1) kept width 64 at depth 2 (56.5M FLOPs, above SASRec 54.1M);
        # at 0.3 it chose 14-28M models, 0.0064 pop100 NDCG@10 below SASRec over seeds 0-2, but 56.5M on four of
        # ten seeds (docs/search-measurements.md, "Making the search commit" and "Ten seeds"; `search.max_flops`
        # bounds it)
        lam=0.3,
    ),
    Preset(  # the first 100 users of Gowalla, for tests and tiny runs: Gowalla's settings
        "gowalla-100",
        (Layout(("gowalla/gowalla-100.checkins.txt.gz",), _gowalla),),
        max_len=100,
        supernet=Widths(64, 256),
        pruning=(0.0, 0.5, 0.75),
        baseline=BASELINE,
        filtering=GOWALLA_FILTER,
    ),
    Preset(
        "synth-gowalla",
        (Layout((SYNTH_FILES["synth-gowalla"],), _gowalla),),
        max_len=100,
        supernet=Widths(64, 256),
        pruning=(0.0, 0.5, 0.75),
        baseline=BASELINE,
        filtering=GOWALLA_FILTER,  # a no-op: the generator guarantees 5 check-ins per user and item
        hint="synth-gowalla is SYNTHETIC check-ins at the paper's Gowalla size (a benchmark input for speed and "
        "memory, never for accuracy claims): write it with `dnsrec data synth synth-gowalla --data-dir DIR`.",
    ),
    Preset(
        "douban",
        (Layout(("DMSC.csv",), _douban), Layout(("douban/DMSC.csv",), _douban)),
        max_len=100,
        supernet=Widths(128, 256),
        pruning=(0.0, 0.5, 0.75),
        baseline=BASELINE,
        filtering=Filter(min_user=5, min_item=5, drop_full_users=True),
        hint=f"DMSC.csv is Kaggle's dataset utmhikari/doubanmovieshortcomments ({KAGGLE_DOUBAN}); Kaggle "
        "needs a login, so dnsrec never downloads it: fetch it by hand.",
    ),
)
PRESETS: Mapping[str, Preset] = MappingProxyType({preset.name: preset for preset in _PRESETS})


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset `name`; the one error for an unknown name, wherever it is given (`dataset=NAME`,
    `dataset.name=NAME`, `load_dataset(NAME)`, `dnsrec data prepare NAME`)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"dataset: unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
