"""Fixtures for the dataset tests: the real (read-only) files, and writers for small files in real formats."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import pytest

Write = Callable[..., Path]


@pytest.fixture
def shared() -> Path:
    """The real data directory (../shared/data or $DNSREC_DATA_DIR); these files are never written."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    path = Path(os.environ.get("DNSREC_DATA_DIR") or default)
    if not (path / "ml-100k" / "ml-100k.inter").is_file():
        pytest.fail(f"real data not found in {path}; set DNSREC_DATA_DIR to ../shared/data")
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may touch the network."""
    monkeypatch.setenv("DNSREC_OFFLINE", "1")


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """write(relative path, text or bytes, encoding="utf-8") -> its path under tmp_path; .gz gets gzipped."""

    def _write(rel: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode(encoding) if isinstance(content, str) else content
        path.write_bytes(gzip.compress(data) if rel.endswith(".gz") else data)
        return path

    return _write
