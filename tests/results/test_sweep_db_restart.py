"""Issue 10 case 4: a PostgreSQL restart during a sweep (`pg_ctl restart -m fast`) used to kill the driver
(AdminShutdown, then Optuna's misleading "invalid data in the commit", exit 1, workers killed). The study's
storage now has `pool_pre_ping` and, like the results store, retries with backoff for up to
`sweep.db_grace_seconds`, saying so in a status line; a database away for longer stops the driver with one
line. A real server of its own, restarted and stopped under a real driver of tiny trials."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from results_support import running_postgres
from sweep_support import start_dnsrec, states, sweep_args, wait_for_line


def _trials(url: str, name: str) -> list[Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def test_a_postgresql_restart_during_a_sweep_is_waited_out(tmp_path: Path) -> None:
    with running_postgres() as server:
        with server.connect() as conn:
            conn.execute('CREATE DATABASE "sweeps"')
        url = server.url("sweeps")
        env = {**os.environ, "DNSREC_DB_URL": url, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

        proc = start_dnsrec(["sweep", *sweep_args("restart", 3, 1)], tmp_path, env)
        seen: list[str] = []
        wait_for_line(proc, r"trial 0 submitted as job", seen, timeout=180)
        server.restart()  # as the issue did it: every connection of the driver is cut
        wait_for_line(proc, r"trial 1 submitted as job", seen, timeout=180)
        server.stop()  # away for 3 s, well within sweep.db_grace_seconds (120 s)
        time.sleep(3)
        server.start()
        out, _ = proc.communicate(timeout=300)
        text = "".join(seen) + out
        assert proc.returncode == 0, text
        assert "Traceback" not in text
        assert "is unreachable (" in text and "waiting up to 120 s for it to come back (sweep.db_grace_seconds)" in text
        assert "is back after" in text
        assert states(_trials(url, "restart")) == {"COMPLETE": 3}  # exactly the requested trials, none lost

        # Away for longer than the grace: one line, exit 2 (the sweep continues when started again).
        proc = start_dnsrec(["sweep", *sweep_args("gone", 2, 1, "sweep.db_grace_seconds=2")], tmp_path, env)
        seen = []
        wait_for_line(proc, r"trial 0 submitted as job", seen, timeout=180)
        server.stop()
        try:
            out, _ = proc.communicate(timeout=120)
        finally:
            server.start()
        text = "".join(seen) + out
        assert proc.returncode == 2, text
        assert "Traceback" not in text
        errors = [line for line in text.splitlines() if line.startswith("dnsrec: error:")]
        assert len(errors) == 1 and "was unreachable for more than 2 s (sweep.db_grace_seconds)" in errors[0], text
