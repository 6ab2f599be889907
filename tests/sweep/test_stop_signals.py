"""The sweep driver's stop signals: the first only asks the loop to stop, so nothing is cut in half."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from dnsrec.sweep.driver import _stop_signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_sets_stop_second_interrupts(signum: int) -> None:
    stop = threading.Event()
    before = signal.getsignal(signum)
    with _stop_signals(stop):
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the handler runs between bytecodes of this thread
        assert stop.is_set()  # and no KeyboardInterrupt was raised inside the work
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            time.sleep(1)
    assert signal.getsignal(signum) is before  # the previous handler is back
