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


class RunDirInUse(CheckpointError):
    """Another live process runs in this run directory; the message names it (pid, host) and the directory."""
