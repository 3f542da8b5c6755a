"""Reactor Jobs: durable execution on Postgres, built on an append-only, hash-chained journal."""

__version__ = "0.1.0"


_APP_NAMES = frozenset({"App", "Retry", "RunFailed", "cron", "event", "webhook"})


def __getattr__(name: str) -> object:
    # Imported on first use: a function host imports this package and must not load the
    # engine (asyncpg, the config) with it.
    if name in _APP_NAMES:
        from reactor_jobs import app

        return getattr(app, name)
    raise AttributeError(f"module 'reactor_jobs' has no attribute {name!r}")
