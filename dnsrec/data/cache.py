"""The processed-dataset cache: `<key>.npz` (arrays) + `<key>.json` (the rest), keyed by the CONTENT of the
input files, the preset's parameters and `PROCESSING_VERSION`, so a changed file or a changed rule can never
serve stale data. Files are written atomically (`dnsrec.files.atomic_write`), the json last; anything unreadable or
inconsistent is treated as a miss and rebuilt, never a crash. Builders of one entry take turns under a lock
(`<key>.lock`), so processes racing on a fresh cache build it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dnsrec.data.sequences import ItemFeatures, SequenceData
from dnsrec.errors import DataError
from dnsrec.files import atomic_write

PROCESSING_VERSION = 1  # bump whenever parsing or processing changes what a dataset holds

log = logging.getLogger(__name__)


def file_digest(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from e


def cache_key(params: dict[str, Any], files: Sequence[Path | None]) -> str:
    """sha256 of the parameters and each file's content digest (None for an absent optional file)."""
    digests = [None if f is None else file_digest(f) for f in files]
    blob = json.dumps({"version": PROCESSING_VERSION, "params": params, "files": digests}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load(stem: Path) -> SequenceData | None:
    """The cached dataset at `stem`.{npz,json}, or None when absent or unusable."""
    try:
        meta = json.loads(stem.with_suffix(".json").read_text())
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        features = None
        if meta["feature_name"] is not None:
            features = ItemFeatures(
                name=str(meta["feature_name"]),
                values=arrays["feature_values"],
                offsets=arrays["feature_offsets"],
                vocabulary=tuple(str(v) for v in meta["vocabulary"]),
            )
        data = SequenceData(
            name=str(meta["name"]),
            n_items=int(meta["n_items"]),
            max_len=int(meta["max_len"]),
            items=arrays["items"],
            offsets=arrays["offsets"],
            item_features=features,
            item_ids=tuple(arrays["item_ids"].tolist()),
        )
        _check(data)
        return data
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
        log.warning("ignoring the unusable cache %s (%s); rebuilding it", stem, e)
        return None


def save(stem: Path, data: SequenceData) -> None:
    """Write the cache; a cache directory that cannot be written only costs the next load its speed."""
    features = data.item_features
    arrays = {"items": data.items, "offsets": data.offsets, "item_ids": np.array(data.item_ids, dtype=str)}
    if features is not None:
        arrays |= {"feature_values": features.values, "feature_offsets": features.offsets}
    meta = {
        "version": PROCESSING_VERSION,
        "name": data.name,
        "n_items": data.n_items,
        "max_len": data.max_len,
        "feature_name": None if features is None else features.name,
        "vocabulary": [] if features is None else list(features.vocabulary),
    }
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(stem.with_suffix(".npz"), lambda f: np.savez(f, allow_pickle=False, **arrays))
        atomic_write(stem.with_suffix(".json"), lambda f: f.write(json.dumps(meta).encode()))
    except OSError as e:
        log.warning("cannot write the dataset cache %s (%s)", stem, e)


@contextlib.contextmanager
def building(stem: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache entry `stem` while building it, so that preparers racing on one
    dataset (sweep trials, SLURM array tasks) build it once: the others wait, then read it. A cache
    directory where the lock cannot be taken (read-only, a file system without locks) only costs the
    duplicate work: the writes are atomic either way."""
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        lock = open(stem.with_suffix(".lock"), "a")  # noqa: SIM115 (closed below)
    except OSError:
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as e:
            log.warning("cannot lock %s (%s); building without it", lock.name, e)
        yield


def _check(data: SequenceData) -> None:
    """What SequenceData does not check itself but a truncated or foreign cache could break."""
    offsets, features = data.offsets, data.item_features
    if offsets.dtype != np.int64 or data.items.dtype != np.int64 or len(offsets) < 1:
        raise ValueError("wrong dtypes")
    if offsets[0] != 0 or offsets[-1] != len(data.items) or (np.diff(offsets) < 0).any():
        raise ValueError("offsets do not cover the items")
    if len(data.item_ids) != data.n_items:
        raise ValueError("item_ids do not match n_items")
    if features is not None:
        if len(features.offsets) != data.n_items + 2 or features.offsets[-1] != len(features.values):
            raise ValueError("feature offsets do not match")
        if len(features.values) and (features.values.min() < 1 or features.values.max() > features.n_values):
            raise ValueError("feature values out of range")
