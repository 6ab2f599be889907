"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with weights_only=True.

Every resume file (`search.pt`, `last.pt`) carries the `ConfigStamp` of the config that made it, and a run
directory holds `run_config.json` with the same stamp: a run never resumes another config's checkpoints
(a directory reused with other settings once printed the old run's numbers under the new settings).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dnsrec.config import dotted_keys
from dnsrec.errors import CheckpointError, ConfigMismatch
from dnsrec.files import atomic_write, atomic_write_text

STAMP_KEY = "run_config"  # the entry of a resume file holding its ConfigStamp
STAMP_FILE = "run_config.json"  # the run directory's stamp, readable without torch (the sweep driver)


@dataclass(frozen=True)
class ConfigStamp:
    """The config a checkpoint belongs to: flat dotted keys -> plain JSON values, and their hash.

    Which keys go in is the caller's decision (`dnsrec.pipeline.run_stamp`): everything that changes what a
    checkpoint holds, and nothing that only says where, how visibly or how far a run goes."""

    values: dict[str, Any]

    @staticmethod
    def of(config: Mapping[str, Any], exclude: frozenset[str] = frozenset()) -> ConfigStamp:
        return ConfigStamp(_plain_json({k: v for k, v in dotted_keys(config).items() if k not in exclude}))

    @property
    def hash(self) -> str:
        text = json.dumps(self.values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def with_values(self, **more: Any) -> ConfigStamp:
        return ConfigStamp(_plain_json({**self.values, **dotted_keys(more)}))

    def entry(self) -> dict[str, Any]:
        return {"hash": self.hash, "values": self.values}

    def check(self, saved: Any, source: Path) -> None:
        """Refuse (ConfigMismatch naming the differing keys, old -> new) a stamp entry of another config;
        `saved` is a resume file's dict or the run directory's stamp entry."""
        entry = saved.get(STAMP_KEY, saved) if isinstance(saved, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
            raise ConfigMismatch(
                f"{source} carries no config hash (written by an older dnsrec), so it cannot be shown to belong "
                "to this config; refusing to resume from it: move it away or choose another run_dir"
            )
        if entry.get("hash") == self.hash and entry["values"] == self.values:
            return
        old, new = entry["values"], self.values
        missing = object()
        diffs = [
            f"{k}: {_show(old.get(k, missing))} -> {_show(new.get(k, missing))}"
            for k in sorted(set(old) | set(new))
            if old.get(k, missing) != new.get(k, missing)
        ]
        raise ConfigMismatch(
            f"{source} was made by another config ({'; '.join(diffs) or 'same values, another hash'}); "
            "refusing to resume from it: rerun with its config, or choose another run_dir"
        )

    def write(self, run_dir: Path) -> None:
        atomic_write_text(run_dir / STAMP_FILE, json.dumps(self.entry(), indent=2, sort_keys=True))


def read_stamp(run_dir: Path) -> dict[str, Any] | None:
    """The run directory's stamp entry, or None where there is none; an unreadable one is 'another config'."""
    path = run_dir / STAMP_FILE
    if not path.exists():
        return None
    try:
        entry = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return entry if isinstance(entry, dict) else {}


def _plain_json(values: dict[str, Any]) -> dict[str, Any]:
    """As JSON gives it back (tuples -> lists), so a stamp read from a file compares equal to a fresh one."""
    plain: dict[str, Any] = json.loads(json.dumps(values, sort_keys=True))
    return plain


def _show(v: Any) -> str:
    return "(absent)" if not isinstance(v, (str, int, float, bool, list, dict, type(None))) else repr(v)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file and rename, so a crash never leaves a half-written checkpoint; a full disk
    is WriteFailed naming the file and "no space left on device" (torch says only "unexpected pos")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


def file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under `directory`, by path relative to it: what a resume file records of the
    ZeRO checkpoint it points at, so only those very files are ever loaded (`check_digests`)."""
    digests = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digests[str(path.relative_to(directory))] = h.hexdigest()
    return digests


def check_digests(directory: Path, expected: Any, source: Path) -> None:
    """CheckpointError unless `directory` holds exactly the files, byte for byte, that `source` (a resume
    file read with weights_only=True and checked against the run's config stamp) recorded."""
    if not isinstance(expected, dict) or not expected:
        raise CheckpointError(
            f"{source} records no digests of the ZeRO checkpoint {directory} (written by an older dnsrec), so it "
            "cannot be shown to be this run's own; refusing to load it: move it away or choose another run_dir"
        )
    found = file_digests(directory) if directory.is_dir() else {}
    if found != expected:
        differ = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
        raise CheckpointError(
            f"ZeRO checkpoint {directory} is not the one {source} recorded ({', '.join(differ[:4])} differ); "
            "refusing to load it (DeepSpeed loads these files as pickles, which can run code)"
        )


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """Load a state dict, turning shape/key mismatches into a CheckpointError naming the file."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path} does not fit this model: {first}") from e
