"""The worker side of the local launcher: `python -m dnsrec.launch.runner CALL OUT` runs one pickled call.

Why a fresh process per job: a crash, an out-of-memory kill or a hung library takes down that job alone,
the driver can kill it, and each job gets its own thread settings. The outcome is written atomically:
OUT holds ("ok", value) or ("error", message); no OUT means the process died before it could say.
Only rank 0 of a multi-rank job writes OUT.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from pathlib import Path

from dnsrec.files import WriteFailed, atomic_write


def main(call_path: str, out_path: str) -> int:
    with open(call_path, "rb") as f:
        fn, args = pickle.load(f)
    try:
        outcome = ("ok", fn(*args))
        code = 0
    except BaseException as e:  # the whole point is to report any failure of the job to the driver
        lines = traceback.format_exception_only(type(e), e)
        outcome = ("error", "".join(lines).strip())
        traceback.print_exc()
        code = 1
    if os.environ.get("RANK", "0") == "0":
        try:  # whole or not at all; on a full disk nothing is left, and the driver says the disk is full
            atomic_write(Path(out_path), lambda f: pickle.dump(outcome, f), mode=0o600)
        except WriteFailed as e:
            print(f"dnsrec: error: {e}", file=sys.stderr)
            return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
