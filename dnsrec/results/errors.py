"""Errors of the results store: each message names the file, the database (password masked) or the
filter, and what is wrong, so a user can act on it without a traceback."""

from __future__ import annotations

from dnsrec.errors import DNSRecError


class ResultsError(DNSRecError):
    """Base class of the results store's expected failures."""


class InvalidResult(ResultsError, ValueError):
    """A result file or RunResult is malformed, of another schema version, or holds non-finite numbers."""


class DatabaseUnavailable(ResultsError):
    """The database cannot be reached, or its schema is not one this dnsrec knows."""


class QueryError(ResultsError, ValueError):
    """A filter, metric or sort key is not valid; the message lists the valid ones."""
