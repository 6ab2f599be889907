"""`load_dataset`: preset name -> `SequenceData`, from the data directory, the download cache or the web.

Directories: the data directory (argument, else $DNSREC_DATA_DIR, else ./data) is only ever read; processed
caches and downloads go to the cache directory (argument, else $DNSREC_CACHE_DIR, else ~/.cache/dnsrec).
$DNSREC_OFFLINE=1 disables downloads.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from dnsrec.data import cache
from dnsrec.data.fetch import download
from dnsrec.data.presets import PRESETS, Layout, Preset, get_preset
from dnsrec.data.process import build_sequences
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import ConfigError, DataError


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    max_len: int | None = None,
) -> SequenceData:
    """The preset `name`'s sequences; `max_len` overrides the preset's N."""
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ConfigError(f"max_len: expected a positive integer, got {max_len!r}")
    data = prepare_dataset(name, data_dir, cache_dir).data
    return dataclasses.replace(data, max_len=max_len or data.max_len)


@dataclass(frozen=True)
class Prepared:
    """A dataset processed and in the cache: what was read, where the cache is, whether this call built it."""

    data: SequenceData
    files: tuple[Path, ...]  # the input files read (main file first)
    cache: Path  # the cache's stem: <stem>.npz + <stem>.json
    built: bool  # False: read from a cache another call (or another process) wrote


def prepare_dataset(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Prepared:
    """Find (or download) the preset's files, process them and write the cache, unless a cache of the same
    content exists. Safe to race: builders of the same dataset take turns under a lock on the cache entry,
    so the second one reads what the first wrote (and every write is atomic anyway)."""
    preset = get_preset(name)
    data_path = data_directory(data_dir)
    cache_path = cache_directory(cache_dir)
    layout, main, companions = locate(preset, data_path, cache_path / "downloads")

    params = {"preset": preset.name, "files": layout.files, "filtering": dataclasses.asdict(preset.filtering)}
    key = cache.cache_key(params, (main, *companions))
    stem = cache_path / f"{preset.name}-{key[:24]}"
    files = (main, *(c for c in companions if c is not None))
    data = cache.load(stem)
    if data is not None:
        return Prepared(data, files, stem, built=False)
    with cache.building(stem):
        data = cache.load(stem)  # another preparer may have finished while this one waited
        if data is not None:
            return Prepared(data, files, stem, built=False)
        raw, features = layout.load(main, companions)
        data = build_sequences(raw, features, name=preset.name, max_len=preset.max_len, filtering=preset.filtering)
        cache.save(stem, data)
    return Prepared(data, files, stem, built=True)


def load_file(path: str | Path) -> SequenceData:
    """A dataset file given by path (not through a preset's data directory), read and processed as the preset
    whose layout names a file of the same name (its companions are looked for beside it). Not cached."""
    path = Path(path).expanduser()
    for preset in PRESETS.values():
        for layout in preset.layouts:
            if Path(layout.files[0]).name == path.name:
                if not path.is_file():
                    raise DataError(f"{path}: no such file")
                companions = tuple(p if (p := path.parent / Path(f).name).is_file() else None for f in layout.files[1:])
                raw, features = layout.load(path, companions)
                return build_sequences(
                    raw, features, name=preset.name, max_len=preset.max_len, filtering=preset.filtering
                )
    known = sorted({Path(layout.files[0]).name for preset in PRESETS.values() for layout in preset.layouts})
    raise DataError(f"{path}: not a file name of any dataset preset; expected one of: {', '.join(known)}")


def data_directory(data_dir: str | Path | None = None) -> Path:
    return Path(data_dir or os.environ.get("DNSREC_DATA_DIR") or "data").expanduser()


def cache_directory(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or os.environ.get("DNSREC_CACHE_DIR") or "~/.cache/dnsrec").expanduser()


def offline() -> bool:
    return os.environ.get("DNSREC_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def locate(preset: Preset, data_dir: Path, downloads: Path) -> tuple[Layout, Path, tuple[Path | None, ...]]:
    """The first layout whose main file exists (official ones also in `downloads`), else a fresh download."""
    for layout in preset.layouts:
        candidates = [data_dir / layout.files[0]]
        if layout.download is not None:
            candidates.append(downloads / layout.download.filename)
        for main in candidates:
            if main.is_file():
                companions = tuple(p if (p := data_dir / f).is_file() else None for f in layout.files[1:])
                return layout, main, companions

    official = preset.official
    if official is None or official.download is None:
        why = "no official download exists for this dataset"
    elif offline():
        why = "downloads are disabled (DNSREC_OFFLINE=1)"
    else:
        source = official.download
        try:
            return official, download(source.url, downloads / source.filename, source.md5), ()
        except DataError as e:
            why = f"the download failed ({e})"
    raise DataError(_missing_message(preset, data_dir, downloads, why))


def _missing_message(preset: Preset, data_dir: Path, downloads: Path, why: str) -> str:
    """One line: the files that would do, where to put them, and why nothing was found or fetched."""
    if data_dir.is_dir():
        state = ""
    elif data_dir.exists():  # e.g. DNSREC_DATA_DIR set to a data file instead of its folder
        state = " (which is a file, not a folder: point it at the folder that holds the files)"
    else:
        state = " (which does not exist)"
    where = f"{data_dir.resolve()}{state}"
    options = "; ".join(layout.describe() for layout in preset.layouts)
    hint = f" {preset.hint}" if preset.hint else ""
    if preset.official is not None and preset.official.download is not None:
        hint += f" The official {preset.official.download.filename} may also sit in {downloads.resolve()}."
    return (
        f"dataset {preset.name!r}: no data file found, and {why}. Place one of these in the data directory "
        f"{where} (set it with data_dir= or DNSREC_DATA_DIR): {options}.{hint}"
    )
