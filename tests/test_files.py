"""dnsrec.files.atomic_write: a file is written whole or not at all, under its own temporary name.

The temporary name used to be `.NAME.PID.tmp`: two writers of one path in one process (threads) or on two
hosts with the same pid (a shared file system) opened the same temporary file, so one truncated the other's
half-written bytes and its rename then failed. The concurrency test below failed on that code."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import IO

import pytest

from dnsrec import files
from dnsrec.files import WriteFailed, atomic_write, atomic_write_text


def test_writes_whole_file_with_umask_mode_or_the_given_one(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    old = os.umask(0o027)
    try:
        atomic_write_text(target, "hello")
    finally:
        os.umask(old)
    assert target.read_text() == "hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    atomic_write_text(target, "again", mode=0o600)
    assert target.read_text() == "again"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_reading_the_umask_never_changes_it_while_a_thread_creates_files(tmp_path: Path) -> None:
    """Reading the umask by setting it (os.umask twice) leaves a window of umask 0 in which another thread's
    new file comes out world-writable; read from /proc there is none. One thread reads it in a loop while
    another creates files under umask 0o077: every file must be 0o600."""
    old = os.umask(0o077)
    try:
        assert files._umask() == 0o077
        stop = threading.Event()

        def read_in_a_loop() -> None:
            while not stop.is_set():
                files._umask()

        reader = threading.Thread(target=read_in_a_loop)
        reader.start()
        try:
            made = [tmp_path / f"f{i}" for i in range(2000)]
            for path in made:
                path.touch()
        finally:
            stop.set()
            reader.join()
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in made} == {0o600}


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")

    def failing(f: IO[bytes]) -> None:
        f.write(b"partial")
        raise OSError(5, "Input/output error")

    with pytest.raises(WriteFailed, match=r"cannot write .*a\.txt: Input/output error"):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_two_writers_of_one_path_never_share_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "shared.json"
    first_started, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow(f: IO[bytes]) -> None:
        f.write(b"first:")
        first_started.set()
        assert second_done.wait(10)
        f.write(b"whole")

    def first() -> None:
        try:
            atomic_write(target, slow)
        except BaseException as e:  # collected for the main thread's assertion
            errors.append(e)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_started.wait(10)
    atomic_write_text(target, "second")  # completes while the first writer is half-way
    assert target.read_text() == "second"
    second_done.set()
    thread.join(10)
    assert errors == []
    assert target.read_text() == "first:whole"  # the last rename wins, whole, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.json"]
