"""The engine tests share one torch-extensions cache (see train_support.EXTENSIONS)."""

from __future__ import annotations

import pytest
from train_support import EXTENSIONS


@pytest.fixture(autouse=True)
def _shared_extensions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(EXTENSIONS))
