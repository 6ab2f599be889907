"""One driver per sweep: a lease row in the results database, taken at start, kept by a heartbeat thread,
released at exit.

Two drivers on one sweep once both ran its trials: the second declared the first one's live trial lost,
retried it into the same directory while the first worker still wrote there, and the first then died. Now
the second refuses, before it opens the Optuna study, with one line naming the holder's host and pid. A
driver that dies without releasing (kill -9, a lost node) stops renewing; its lease expires after
`sweep.lease_seconds` and the next driver takes over.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dnsrec.errors import DNSRecError
from dnsrec.results import Lease, ResultsError, ResultStore


class SweepBusy(DNSRecError):
    """Another live driver holds the sweep's lease."""


class LeaseLost(DNSRecError):
    """This driver's lease expired and another driver took the sweep over."""


def describe(lease: Lease) -> str:
    now = dt.datetime.now(dt.UTC)
    age = (now - lease.heartbeat_at).total_seconds()
    left = max(0.0, (lease.expires_at - now).total_seconds())
    return f"pid {lease.pid} on host {lease.host} (last heartbeat {age:.0f} s ago; lease expires in {left:.0f} s)"


class LeaseKeeper:
    """This driver's lease on a sweep, renewed every `seconds / 4` by a daemon thread."""

    def __init__(self, store: ResultStore, sweep: str, seconds: float, out: Callable[[str], None]) -> None:
        self.store, self.sweep, self.seconds, self.out = store, sweep, seconds, out
        self.token = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.lost: str | None = None  # why, once another driver has taken the sweep over
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{sweep}", daemon=True)

    def take(self) -> None:
        holder = self.store.take_lease(self.sweep, self.token, self.host, self.pid, self.seconds)
        if holder.token != self.token:
            raise SweepBusy(
                f"sweep {self.sweep} is already driven by {describe(holder)}: stop that driver, or rerun when its "
                "lease has expired"
            )
        self._thread.start()

    def check(self) -> None:
        """Raise LeaseLost once another driver holds the sweep: this one must not touch it any more."""
        if self.lost is not None:
            raise LeaseLost(self.lost)

    def _beat(self) -> None:
        interval = max(0.1, self.seconds / 4)
        while not self._stop.wait(interval):
            try:
                if self.store.renew_lease(self.sweep, self.token, self.seconds):
                    continue
                holder = self.store.take_lease(self.sweep, self.token, self.host, self.pid, self.seconds)
            except ResultsError:  # the database is away: the expiry leaves room for the next beats
                continue
            if holder.token != self.token:
                self.lost = (
                    f"sweep {self.sweep}: this driver's lease expired (no heartbeat for {self.seconds:.0f} s, "
                    f"sweep.lease_seconds) and {describe(holder)} took the sweep over; this driver stops"
                )
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self.lost is None:
            try:
                self.store.release_lease(self.sweep, self.token)
            except ResultsError as e:  # it expires by itself
                self.out(f"sweep {self.sweep}: could not release its lease ({e}); it expires in {self.seconds:.0f} s")


@contextmanager
def holding_lease(store: ResultStore, sweep: str, seconds: float, out: Callable[[str], None]) -> Iterator[LeaseKeeper]:
    """The sweep's lease for the duration of the block, or SweepBusy naming the driver that holds it."""
    keeper = LeaseKeeper(store, sweep, seconds, out)
    keeper.take()
    try:
        yield keeper
    finally:
        keeper.release()
