"""A real single-node SLURM cluster for tests: started with slurm/cluster.sh, shared by the xdist workers of
one pytest run, stopped when its last user is done.

    start_cluster(prefix) -> SlurmCluster     cluster.sh up (idempotent), with fake GPUs
    stop_cluster(cluster)                     cluster.sh down
    shared_cluster(shared_dir)                the context manager behind the `slurm_cluster` fixture
    existing_cluster(conf)                    a cluster someone else runs (DNSREC_SLURM_CONF)

The sharing protocol, all under an exclusive `fcntl.flock` on SHARED_DIR/slurm.lock:
- every user (one per pytest process) writes SHARED_DIR/slurm-users/<pid>, then runs `cluster.sh up`,
  which starts the cluster the first time and only says "already up" afterwards;
- on leaving, a user removes its file and the files of dead processes; the one that leaves no user behind
  stops the cluster. A worker that ends early may stop it while another worker has not asked for it yet:
  that worker then starts it again (same prefix and state, ~3 s), never two at once;
- the first user also starts a watchdog that runs `cluster.sh down` when the pytest process that started
  the run (the xdist controller, else pytest itself) exits without the normal teardown (killed, crashed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from system_deps import INSTALL_HINT, missing_slurm_binaries

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SH = REPO / "slurm" / "cluster.sh"
TEST_GPUS = 2  # fake GPUs of the test cluster, so that GPU requests (--gres=gpu:K) can be tested


class SlurmUnavailable(RuntimeError):
    """The SLURM, munge or MariaDB binaries are not installed, or the cluster does not come up."""


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: clients reach it with `env` (SLURM_CONF) merged into their environment."""

    prefix: Path
    conf: Path
    partition: str = "debug"
    gpus: int = 0
    cpus: int = 1
    memory_mb: int = 0  # the node's RealMemory
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, check: bool = True, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a client command (sbatch, sacct, ...) against this cluster; output captured as text."""
        env = {**os.environ, **self.env}
        done = subprocess.run(
            list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def sbatch(self, *args: str, script: str | None = None, cwd: Path | None = None) -> str:
        """Submit a batch job (a script file among `args`, `--wrap=...`, or `script` text on stdin); its job
        id (the array's job id for an array)."""
        done = subprocess.run(
            ["sbatch", "--parsable", f"--partition={self.partition}", *args],
            input=script,
            env={**os.environ, **self.env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def wait_gone(self, job_id: str, timeout: float = 60) -> None:
        """Wait until the job (all tasks of an array) has left the queue."""
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h", "-j", job_id, "-o", "%i", check=False).stdout.strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still queued after {timeout} s")
            time.sleep(0.3)

    def sacct_states(self, job_id: str) -> dict[str, str]:
        """{job id (array tasks as ID_INDEX): State} from accounting, allocations only (no steps)."""
        out = self.run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State").stdout
        return dict(line.split("|", 1) for line in out.splitlines() if line)

    def wait_states(self, job_id: str, n: int = 1, timeout: float = 30) -> dict[str, str]:
        """Poll sacct until it has `n` records of the job and none is still pending or running (accounting
        lags the queue by a moment); the states, e.g. {"12_0": "COMPLETED", "12_1": "CANCELLED by 0"}."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.sacct_states(job_id)
            live = [s for s in states.values() if s.split()[0] in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING")]
            if (len(states) >= n and not live) or time.monotonic() > deadline:
                return states
            time.sleep(0.3)


def _require_binaries() -> None:
    missing = missing_slurm_binaries()
    if missing:
        raise SlurmUnavailable(f"SLURM test cluster binaries not found: {', '.join(missing)}. {INSTALL_HINT}")


def cluster_from_conf(conf: Path) -> SlurmCluster:
    """Describe the cluster of a slurm.conf written by cluster.sh (partition, fake GPUs, node size)."""
    text = conf.read_text()
    node = re.search(r"^NodeName=.*$", text, re.M)
    default = r"^PartitionName=(\S+).*\bDefault=YES"
    part = re.search(default, text, re.M) or re.search(r"^PartitionName=(\S+)", text, re.M)
    if node is None or part is None:
        raise SlurmUnavailable(f"{conf}: no NodeName= or PartitionName= line; not a slurm.conf of slurm/cluster.sh?")

    def number(key: str) -> int:
        found = re.search(rf"\b{key}=(\d+)", node.group(0))
        return int(found.group(1)) if found else 0

    return SlurmCluster(
        prefix=conf.parent.parent,
        conf=conf,
        partition=part.group(1),
        gpus=_gres_gpus(node.group(0)),
        cpus=number("CPUs"),
        memory_mb=number("RealMemory"),
        env={"SLURM_CONF": str(conf)},
    )


def _gres_gpus(node_line: str) -> int:
    found = re.search(r"\bGres=gpu:(\d+)", node_line)
    return int(found.group(1)) if found else 0


def _cluster_sh(
    action: str, prefix: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLUSTER_SH), action, str(prefix)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cluster(prefix: Path, gpus: int = TEST_GPUS, timeout_s: int = 60) -> SlurmCluster:
    """`cluster.sh up PREFIX` (idempotent: a cluster already up there is returned as it is)."""
    _require_binaries()
    env = {"DNSREC_SLURM_GPUS": str(gpus), "DNSREC_SLURM_UP_TIMEOUT": str(timeout_s)}
    up = _cluster_sh("up", prefix, env, timeout=timeout_s * 3)
    if up.returncode != 0:
        _cluster_sh("down", prefix)
        raise SlurmUnavailable(f"slurm/cluster.sh up {prefix} failed:\n{up.stdout}{up.stderr}")
    return cluster_from_conf(Path(prefix) / "etc" / "slurm.conf")


def stop_cluster(cluster: SlurmCluster) -> None:
    down = _cluster_sh("down", cluster.prefix)
    if down.returncode != 0:
        raise RuntimeError(f"slurm/cluster.sh down {cluster.prefix} failed:\n{down.stdout}{down.stderr}")


def existing_cluster(conf: Path) -> SlurmCluster:
    """A cluster started elsewhere (e.g. `make slurm-up`): must answer; never stopped by the tests."""
    _require_binaries()
    if not conf.is_file():
        raise SlurmUnavailable(f"DNSREC_SLURM_CONF={conf}: no such file")
    cluster = cluster_from_conf(conf)
    ping = cluster.run("sinfo", "-h", "-o", "%T", check=False, timeout=20)
    if ping.returncode != 0:
        raise SlurmUnavailable(f"DNSREC_SLURM_CONF={conf}: the cluster does not answer ({ping.stderr.strip()})")
    return cluster


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _live_users(users: Path) -> list[int]:
    alive = []
    for entry in users.iterdir():
        if entry.name.isdigit() and _alive(int(entry.name)):
            alive.append(int(entry.name))
        else:
            entry.unlink(missing_ok=True)
    return alive


# $1 pid file, $2 the pid to watch, $3 cluster.sh, $4 prefix. The pid file goes before `down` starts, so that a
# late teardown never kills a watchdog half-way through stopping the cluster.
_WATCHDOG = 'echo $$ >"$1"; while kill -0 "$2" 2>/dev/null; do sleep 1; done; rm -f "$1"; exec "$3" down "$4"'


def _start_watchdog(shared: Path, prefix: Path, session_pid: int) -> None:
    """A detached process that stops the cluster once `session_pid` is gone (a crashed or killed run)."""
    pid_file = shared / "slurm-watchdog.pid"
    pid = _read_pid(pid_file)
    if pid and _alive(pid):
        return
    pid_file.unlink(missing_ok=True)
    with open(shared / "slurm-watchdog.log", "a") as log:
        subprocess.run(  # setsid -f: forks, so the watchdog is nobody's child here and no Popen is left over
            [
                "setsid",
                "-f",
                "bash",
                "-c",
                _WATCHDOG,
                "dnsrec-slurm-watchdog",
                *map(str, (pid_file, session_pid, CLUSTER_SH, prefix)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    deadline = time.monotonic() + 5
    while not _read_pid(pid_file) and time.monotonic() < deadline:
        time.sleep(0.05)


def _stop_watchdog(shared: Path) -> None:
    pid_file = shared / "slurm-watchdog.pid"
    pid = _read_pid(pid_file)
    if pid and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)  # the watchdog leads its own session: its `sleep` goes too
    pid_file.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def session_pid() -> int:
    """The pytest process that owns this run: the xdist controller for a worker, else this process."""
    return os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()


@contextlib.contextmanager
def shared_cluster(shared: Path, gpus: int = TEST_GPUS) -> Iterator[SlurmCluster]:
    """The cluster under SHARED/slurm, shared by every process of this pytest run (see the module doc)."""
    shared.mkdir(parents=True, exist_ok=True)
    prefix, users, lock = shared / "slurm", shared / "slurm-users", shared / "slurm.lock"
    users.mkdir(exist_ok=True)
    with _locked(lock):
        (users / str(os.getpid())).touch()
        try:
            cluster = start_cluster(prefix, gpus=gpus)
        except BaseException:
            (users / str(os.getpid())).unlink(missing_ok=True)
            raise
        _start_watchdog(shared, prefix, session_pid())
    try:
        yield cluster
    finally:
        with _locked(lock):
            (users / str(os.getpid())).unlink(missing_ok=True)
            if not _live_users(users):
                _stop_watchdog(shared)
                stop_cluster(cluster)
                shutil.rmtree(prefix / "mysql", ignore_errors=True)  # ~100 MB; the logs stay for a post-mortem
