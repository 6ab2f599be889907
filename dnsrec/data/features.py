"""The item feature the feature-aware baselines (FDSA, SASRecF) read (docs/method.md "Baselines").

MovieLens presets: the genres their files carry (`movies.dat`, `u.item`, RecBole `.item`). Presets whose
formats carry no item feature (Gowalla, Douban): the item id itself is the feature, as in the reference
setup. A MovieLens dataset read without its genre file is an error naming the file, never a silent fallback.
"""

from __future__ import annotations

import numpy as np

from dnsrec.data.presets import get_preset
from dnsrec.data.sequences import ItemFeatures, SequenceData
from dnsrec.errors import DataError


def item_id_feature(n_items: int) -> ItemFeatures:
    """Item i's one feature value is i (the reference setup's feature for datasets without a feature file)."""
    return ItemFeatures(
        name="item_id",
        values=np.arange(1, n_items + 1, dtype=np.int64),
        offsets=np.concatenate([[0], np.arange(n_items + 1)]).astype(np.int64),  # row 0 = padding, empty
        vocabulary=tuple(str(i) for i in range(1, n_items + 1)),
    )


def model_features(data: SequenceData, who: str = "a feature-aware model") -> ItemFeatures:
    """`data`'s item feature for FDSA / SASRecF: its genres, or the item id where its preset has no feature file.

    Raises DataError naming the feature file when the preset has one but `data` was read without it.
    """
    if data.item_features is not None:
        return data.item_features
    layouts = [layout.files for layout in get_preset(data.name).layouts if len(layout.files) > 1]
    if not layouts:
        return item_id_feature(data.n_items)
    where = " or ".join(f"{files[1]} beside {files[0]}" for files in layouts)
    raise DataError(
        f"dataset {data.name!r}: {who} needs the item genres, but the dataset was read without its genre file; "
        f"place {where} in the data directory (data_dir= or DNSREC_DATA_DIR; the official zip carries them too)"
    )
