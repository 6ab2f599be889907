"""Datasets: files in their published formats -> chronological, filtered, remapped user sequences.

`load_dataset("ml-1m")` is the one entry point; it returns a `SequenceData` and caches it.
"""

from __future__ import annotations

from dnsrec.data.load import load_dataset
from dnsrec.data.presets import PRESETS, Preset, get_preset, preset_names
from dnsrec.data.sequences import ItemFeatures, SequenceData, Split

__all__ = [
    "PRESETS",
    "ItemFeatures",
    "Preset",
    "SequenceData",
    "Split",
    "get_preset",
    "load_dataset",
    "preset_names",
]
