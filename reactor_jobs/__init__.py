"""Reactor Jobs: durable execution on Postgres, built on an append-only, hash-chained journal."""

__version__ = "0.1.0"


from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers see the real names; at run time they load on first use
    from reactor_jobs.app import App, Retry, RunFailed, cron, event, webhook

__all__ = ["App", "Retry", "RunFailed", "cron", "event", "webhook"]
_APP_NAMES = frozenset(__all__)


def __getattr__(name: str) -> object:
    # Imported on first use: a function host imports this package and must not load the
    # engine (asyncpg, the config) with it.
    if name in _APP_NAMES:
        from reactor_jobs import app

        return getattr(app, name)
    raise AttributeError(f"module 'reactor_jobs' has no attribute {name!r}")
