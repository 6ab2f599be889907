"""Datasets: files in their published formats -> chronological, filtered, remapped user sequences.

`load_dataset("ml-1m")` is the one entry point; it returns a `SequenceData` and caches it.
"""

from __future__ import annotations

from dnsrec.data.load import Prepared, load_dataset, load_file, prepare_dataset
from dnsrec.data.presets import PRESETS, Preset, get_preset, preset_names
from dnsrec.data.sequences import ItemFeatures, SequenceData, Split
from dnsrec.data.stats import DatasetStats

__all__ = [
    "PRESETS",
    "DatasetStats",
    "ItemFeatures",
    "Prepared",
    "Preset",
    "SequenceData",
    "Split",
    "get_preset",
    "load_dataset",
    "load_file",
    "prepare_dataset",
    "preset_names",
]
