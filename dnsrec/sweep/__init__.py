"""Optuna sweeps over whole DNS-Rec runs: space, driver (ask/tell, leases via job states, resume), status."""

from __future__ import annotations

from dnsrec.config.sweep import SweepConfig, sweep_config
from dnsrec.sweep.driver import Driver, SweepError, SweepInterrupted, SweepSummary
from dnsrec.sweep.run import run_sweep

__all__ = ["Driver", "SweepConfig", "SweepError", "SweepInterrupted", "SweepSummary", "run_sweep", "sweep_config"]
