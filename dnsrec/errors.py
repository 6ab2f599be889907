"""The project's error hierarchy: every expected failure is one of these, with a message a user can act on."""

from __future__ import annotations


class DNSRecError(Exception):
    """Base class of every error dnsrec raises on purpose."""

    exit_code = 2  # what the `dnsrec` command returns for it


class ConfigError(DNSRecError, ValueError):
    """A configuration value is missing, of the wrong type or out of range; the message names the key."""


class DataError(DNSRecError):
    """A dataset file is missing, malformed or unusable; the message names the file (and line)."""


class CheckpointError(DNSRecError):
    """A checkpoint file is missing, truncated or does not fit the model."""


class ConfigMismatch(CheckpointError):
    """A run directory holds checkpoints made under another config; the message names the differing keys."""


class Diverged(DNSRecError):
    """Training diverged: a loss or an architecture weight is not finite; the message says which and where.

    Its message starts with MARK, which survives a launcher's report of a job's exception (a sweep does not
    retry the point: the same config diverges again)."""

    MARK = "diverged:"


class NoBestEpoch(DNSRecError):
    """A training or search ended without an epoch it may take as its best (a search whose architecture steps
    never moved the depth has no decision); the message says why. Like Diverged's, its message starts with
    MARK: the same config meets it again, so a sweep does not retry the point."""

    MARK = "no best epoch:"


# Marks of the failures a retry of the same point and seed meets again (a sweep fails them for good).
DETERMINISTIC_MARKS = (Diverged.MARK, NoBestEpoch.MARK)


class RunDirInUse(CheckpointError):
    """Another live process runs in this run directory; the message names it (pid, host) and the directory."""
