"""The results database: SQLAlchemy models, Alembic migrations (`db/`), the store and its queries.

Imports no torch or numpy, so it runs wherever results are looked at (login nodes, the sweep driver).
`open_store(url)` is the way in; see `store.ResultStore` for what it can do.
"""

from __future__ import annotations

from dnsrec.results.errors import DatabaseUnavailable, InvalidResult, QueryError, ResultsError
from dnsrec.results.extract import MetricKey
from dnsrec.results.filters import RunFilter
from dnsrec.results.store import DEFAULT_METRIC, Comparison, Lease, Pareto, ResultStore, SlurmInfo, open_store
from dnsrec.results.views import RunView

__all__ = [
    "DEFAULT_METRIC",
    "Comparison",
    "DatabaseUnavailable",
    "InvalidResult",
    "Lease",
    "MetricKey",
    "Pareto",
    "QueryError",
    "ResultStore",
    "ResultsError",
    "RunFilter",
    "RunView",
    "SlurmInfo",
    "open_store",
]
