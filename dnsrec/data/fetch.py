"""Fetching an official file (MovieLens zips, SNAP Gowalla) with the standard library, atomically.

A short timeout so an offline machine fails in seconds, not minutes; the caller turns a failure into a
message that says which file to place where.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.request
from pathlib import Path

from dnsrec.errors import DataError


def download(url: str, dest: Path, md5: str | None = None, timeout: float = 10.0) -> Path:
    """Fetch `url` to `dest` (via a temp file + rename), with progress on stderr; check `md5` if given."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the download directory {dest.parent}: {e}") from e
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if done >> 23 != shown:  # every 8 MiB
                    shown = done >> 23
                    of = f" of {total / 2**20:.1f}" if total else ""
                    print(
                        f"\rdownloading {url}: {done / 2**20:.1f}{of} MiB",
                        end="",
                        file=sys.stderr,
                        flush=True,
                    )
            print(file=sys.stderr)
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise DataError(f"{url}: MD5 {digest.hexdigest()} differs from the published {md5}; file deleted")
        os.replace(partial, dest)
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DataError(f"download of {url} failed: {e}") from e
    finally:
        partial.unlink(missing_ok=True)
    return dest
