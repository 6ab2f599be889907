"""Issue 10, weak item: DNSREC_DATA_DIR pointing at a regular file (a data file instead of its folder) was
reported as a folder "which does not exist"; it now says it is a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsrec.data import prepare_dataset
from dnsrec.errors import DataError


def test_a_data_dir_that_is_a_file_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_file = tmp_path / "gowalla-100.checkins.txt.gz"
    data_file.write_bytes(b"not a folder")
    monkeypatch.setenv("DNSREC_DATA_DIR", str(data_file))
    monkeypatch.setenv("DNSREC_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError) as e:
        prepare_dataset("gowalla-100")
    assert f"{data_file} (which is a file, not a folder" in str(e.value)
    assert "does not exist" not in str(e.value)
