"""The tiny but real configurations the tests run: gowalla-100 (100 users of the real Gowalla check-ins)
with small models, so a whole run takes seconds on one core. One place, so every test means the same run."""

from __future__ import annotations

# `dnsrec train`: a 1-layer SASRec, d = 16
TINY_TRAIN = [
    "dataset=gowalla-100",
    "model.d=16",
    "model.inner=16",
    "model.layers=1",
    "model.heads=2",
    "batch=1024",
    "train.progress=false",
]

# `dnsrec run`: a 2-layer supernet, d = 16, 1 search epoch, 2 retraining epochs
TINY_RUN = [
    "dataset=gowalla-100",
    "dataset.d=16",
    "dataset.inner=32",
    "search.layers=2",
    "search.epochs=1",
    "search.batch=512",
    "retrain.max_epochs=2",
    "retrain.batch=1024",
    "train.progress=false",
]
