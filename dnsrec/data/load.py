"""`load_dataset`: preset name -> `SequenceData`, from the data directory, the download cache or the web.

Directories: the data directory (argument, else $DNSREC_DATA_DIR, else ./data) is only ever read; processed
caches and downloads go to the cache directory (argument, else $DNSREC_CACHE_DIR, else ~/.cache/dnsrec).
$DNSREC_OFFLINE=1 disables downloads.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from dnsrec.data import cache
from dnsrec.data.fetch import download
from dnsrec.data.presets import Layout, Preset, get_preset
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
    preset = get_preset(name)
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ConfigError(f"max_len: expected a positive integer, got {max_len!r}")
    data_path = data_directory(data_dir)
    cache_path = cache_directory(cache_dir)
    layout, main, companions = locate(preset, data_path, cache_path / "downloads")

    params = {"preset": preset.name, "files": layout.files, "filtering": dataclasses.asdict(preset.filtering)}
    key = cache.cache_key(params, (main, *companions))
    stem = cache_path / f"{preset.name}-{key[:24]}"
    data = cache.load(stem)
    if data is None:
        raw, features = layout.load(main, companions)
        data = build_sequences(
            raw,
            features,
            name=preset.name,
            max_len=preset.max_len,
            filtering=preset.filtering,
        )
        cache.save(stem, data)
    return dataclasses.replace(data, max_len=max_len or preset.max_len)


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
    where = f"{data_dir.resolve()}" + ("" if data_dir.is_dir() else " (which does not exist)")
    options = "\n".join(f"  - {layout.describe()}" for layout in preset.layouts)
    hint = f"\n{preset.hint}" if preset.hint else ""
    if preset.official is not None and preset.official.download is not None:
        hint += f"\nThe official {preset.official.download.filename} may also sit in {downloads.resolve()}."
    return (
        f"dataset {preset.name!r}: no data file found, and {why}.\n"
        f"Place one of these in the data directory {where} (set it with data_dir= or DNSREC_DATA_DIR):\n"
        f"{options}{hint}"
    )
