"""One retry policy for every broker and database call on a job's path.

A Redis or PostgreSQL outage of seconds (a restart, a failover, a dropped connection) must not
error a job: the call is tried again with exponential backoff and full jitter (tenacity) until
it succeeds or ``total_seconds`` have passed, then the last error is raised. Only
infrastructure errors are retried (:func:`is_transient`); anything else (a bug, a refused
input, a constraint violation) is raised at once.

Celery's own publish retry (``task_publish_retry``, kombu's ``Connection.ensure``) stays on
underneath for blips: it reconnects the producer a few times within a second
(:func:`celery_publish_policy`); it counts attempts, has no jitter and no time bound, so the
bound lives here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    wait_random_exponential,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TOTAL_SECONDS = 60.0

_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,  # what Celery raises when a publish gave up
    redis.exceptions.ConnectionError,   # raw redis-py calls (queue inspection, run id)
    redis.exceptions.TimeoutError,
)


def _driver_operational() -> tuple[type[BaseException], ...]:
    """psycopg's OperationalError: connection refused or lost, server shutting down
    (pg_terminate_backend is 57P01 AdminShutdown), deadlock, serialisation failure. All are
    about the server, never about the row a job wanted to write."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return ()
    return (psycopg.OperationalError,)


_DB_DRIVER_ERRORS = _driver_operational()


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection-class failure of the broker or the database."""
    if isinstance(exc, _BROKER_ERRORS):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        # connection_invalidated: SQLAlchemy's dialect recognised a disconnect. SQLite's own
        # OperationalError ("no such table", "database is locked" after busy_timeout) is not
        # a dropped connection and is not retried.
        return bool(exc.connection_invalidated) or isinstance(exc.orig, _DB_DRIVER_ERRORS)
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Retry transient errors for at most ``total_seconds`` (then raise the last one)."""

    total_seconds: float = DEFAULT_TOTAL_SECONDS
    first_wait_seconds: float = 0.1   # the backoff's scale: waits drawn from [0, 0.1 * 2**n]
    max_wait_seconds: float = 5.0     # no single wait longer (a restart is noticed soon)

    def retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(is_transient),
            # Never start a wait that would end past the bound.
            stop=stop_before_delay(self.total_seconds),
            wait=wait_random_exponential(multiplier=self.first_wait_seconds,
                                         max=self.max_wait_seconds),
            before_sleep=_log_retry,
            reraise=True,
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.retrying()(fn, *args, **kwargs)


NO_RETRY = RetryPolicy(total_seconds=0.0)


def retried(method: Callable[..., T]) -> Callable[..., T]:
    """Decorate a method of an object with a ``retry: RetryPolicy`` attribute: the whole
    method (one transaction) is tried again, so it must be safe to repeat."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> T:
        return self.retry.call(method, self, *args, **kwargs)

    return wrapper


def celery_publish_policy() -> dict[str, Any]:
    """Celery's ``task_publish_retry_policy``: a few quick reconnects inside one attempt of
    :class:`RetryPolicy` (Celery's default, written out: it must stay short, or an attempt
    would outlast the bound)."""
    return {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    name = getattr(state.fn, "__qualname__", "call")
    log.warning("%s failed (%s: %s); retry %d in %.2f s", name, type(exc).__name__, exc,
                state.attempt_number, state.upcoming_sleep)
