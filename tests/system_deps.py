"""The system binaries some tests need, checked once when a test session starts (`pytest_sessionstart` in
tests/conftest.py): a run that would need a missing one stops at once with ONE message naming the binaries
and the install command, instead of an error in every test that uses the SLURM cluster or PostgreSQL.

Which tests need what is decided by folder, before collection: tests/launch starts the SLURM test cluster,
tests/results a PostgreSQL server. DNSREC_TEST_BINARY_PATH (a PATH-like list) replaces every place the
binaries are looked for; the tests of this check use it to stand for a machine without them.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SLURM_TESTS = TESTS / "launch"
POSTGRES_TESTS = TESTS / "results"
INSTALL_HINT = "`make install` as root on Debian/Ubuntu installs them (or only them: `sudo slurm/install-deps.sh`)"
SLURM_BINARIES = (
    *("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd"),
    *("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel", "sacct", "sacctmgr"),
    *("munge", "mariadb", "mariadb-install-db"),
)


def search_path() -> str:
    override = os.environ.get("DNSREC_TEST_BINARY_PATH")
    if override is not None:
        return override
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def missing_slurm_binaries() -> list[str]:
    path = search_path()
    return [name for name in SLURM_BINARIES if shutil.which(name, path=path) is None]


def postgres_bindir() -> Path | None:
    """The directory of PostgreSQL's initdb and pg_ctl (Debian's /usr/lib/postgresql/<version>/bin first)."""
    if os.environ.get("DNSREC_TEST_BINARY_PATH") is None:
        for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
            if (Path(found) / "initdb").is_file() and (Path(found) / "pg_ctl").is_file():
                return Path(found)
    initdb = shutil.which("initdb", path=search_path())
    return Path(initdb).parent if initdb and shutil.which("pg_ctl", path=search_path()) else None


def _overlaps(selected: Path, folder: Path) -> bool:
    return selected == folder or folder in selected.parents or selected in folder.parents


def missing_for(selected: Iterable[Path]) -> str | None:
    """One message about the binaries the selected test paths need and this machine lacks, or None."""
    selected = [p.resolve() for p in selected]
    problems = []
    if any(_overlaps(p, SLURM_TESTS) for p in selected) and (missing := missing_slurm_binaries()):
        problems.append(f"the SLURM tests ({SLURM_TESTS.name}/) need {', '.join(missing)}")
    if any(_overlaps(p, POSTGRES_TESTS) for p in selected) and postgres_bindir() is None:
        problems.append(f"the PostgreSQL tests ({POSTGRES_TESTS.name}/) need the server binaries initdb and pg_ctl")
    if not problems:
        return None
    return f"system binaries not found: {'; '.join(problems)}. {INSTALL_HINT}."
