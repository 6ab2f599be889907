"""Waiting out a database that is briefly away (a PostgreSQL restart, a fail-over): bounded retries with
backoff, shared by the results store and the sweep's Optuna storage.

Only a lost or refused connection is retried: a query the database rejects (a constraint, a bad value) and
every SQLite error fail at once (an SQLite file is never "away"; its lock waits are the busy timeout's job).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from dnsrec.results.errors import DatabaseUnavailable

T = TypeVar("T")


def is_disconnect(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a database connection lost or refused."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, DBAPIError):
            if type(e.orig).__module__.startswith("sqlite3"):
                return False
            return bool(e.connection_invalidated) or isinstance(e, OperationalError | InterfaceError)
        e = e.__cause__ or e.__context__
    return False


def first_line(error: BaseException) -> str:
    e: BaseException | None = error
    while e is not None and not isinstance(e, DBAPIError):
        e = e.__cause__ or e.__context__
    text = str(e.orig if isinstance(e, DBAPIError) and e.orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclass
class DbGrace:
    """Retry calls that lose the database for up to `seconds` (0: never), backing off from `first_delay`
    to `max_delay`; `say` gets one line when the wait starts and one when the database is back."""

    seconds: float = 0.0
    say: Callable[[str], None] = field(default=lambda _: None)
    what: str = "the database"
    key: str = "sweep.db_grace_seconds"
    first_delay: float = 0.25
    max_delay: float = 5.0

    def call(self, fn: Callable[[], T]) -> T:
        start: float | None = None
        delay = self.first_delay
        while True:
            try:
                value = fn()
            except Exception as e:
                if self.seconds <= 0 or not is_disconnect(e):
                    raise
                now = time.monotonic()
                if start is None:
                    start = now
                    self.say(
                        f"{self.what} is unreachable ({first_line(e)}): waiting up to {self.seconds:.0f} s for it "
                        f"to come back ({self.key})"
                    )
                elif now - start >= self.seconds:
                    raise DatabaseUnavailable(
                        f"{self.what} was unreachable for more than {self.seconds:.0f} s ({self.key}): {first_line(e)}"
                    ) from e
                time.sleep(min(delay, max(0.0, start + self.seconds - now)))
                delay = min(2 * delay, self.max_delay)
                continue
            if start is not None:
                self.say(f"{self.what} is back after {time.monotonic() - start:.0f} s")
            return value


def retried(method: Callable[..., T]) -> Callable[..., T]:
    """A method of an object with a `grace: DbGrace` attribute, retried through it."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        grace: DbGrace | None = getattr(self, "grace", None)
        if grace is None:
            return method(self, *args, **kwargs)
        return grace.call(lambda: method(self, *args, **kwargs))

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper
