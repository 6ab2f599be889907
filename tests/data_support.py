"""Where the tests find the real datasets (../shared/data beside the checkout, or $DNSREC_DATA_DIR).

A module of its own, not conftest: `from conftest import ...` resolves to whichever of the several
conftest.py files was imported first (under xdist, often a subfolder's), so helpers live here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA_DIR = Path(os.environ.get("DNSREC_DATA_DIR", SHARED_DATA))


def require_data(*relative: str) -> Path:
    """The shared data directory, failing loudly if a real file is absent (never in CI: .ci/run checks)."""
    for rel in relative:
        if not (DATA_DIR / rel).exists():
            pytest.fail(f"real data file {DATA_DIR / rel} is missing; set DNSREC_DATA_DIR to ../shared/data")
    return DATA_DIR
