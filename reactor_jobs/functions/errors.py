"""Errors of functions, their bundles and jobs; branches of the one ReactorError tree."""

from __future__ import annotations

from reactor_jobs.domain.errors import InvalidField as InvalidField
from reactor_jobs.domain.errors import JobNotFound as JobNotFound
from reactor_jobs.domain.errors import NotFound, ReactorError


class FunctionNotFound(NotFound):
    """The function does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"function {name} not found")
        self.name = name


class VersionNotFound(NotFound):
    """The function version does not exist."""

    def __init__(self, name: str, version: int | None) -> None:
        detail = "has no deployed versions" if version is None else f"has no version {version}"
        super().__init__(f"function {name} {detail}")
        self.name = name
        self.version = version


class NotPromoted(ReactorError):
    """The function has no promoted version."""

    code = "conflict"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"function {name} has no promoted version (run `reactor functions promote {name}`)"
        )
        self.name = name


class FunctionInUse(ReactorError):
    """Jobs use the function; delete them or bind them to another function first."""

    code = "conflict"

    def __init__(self, name: str, jobs: list[str]) -> None:
        shown = ", ".join(jobs[:10]) + (f" and {len(jobs) - 10} more" if len(jobs) > 10 else "")
        super().__init__(
            f"function {name} is used by job(s) {shown}; delete them or bind them to another "
            "function (`reactor jobs update JOB --function FN`) first"
        )
        self.name = name
        self.jobs = jobs


class AlreadyExists(ReactorError):
    """The object already exists."""

    code = "conflict"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name} already exists")
        self.kind = kind
        self.name = name


class RuntimeUnavailable(InvalidField):
    """The runtime cannot run on this server (e.g. no bun executable for `bun`)."""

    def __init__(self, runtime: str, how: str) -> None:
        super().__init__("runtime", f"the {runtime} runtime is not available here: {how}")
        self.runtime = runtime


class InvalidPolicy(InvalidField):
    """A job policy setting (retry, concurrency, timeout) is out of range."""


class InvalidManifest(ReactorError):
    """The function manifest (function.json) is invalid."""

    code = "invalid_manifest"

    def __init__(self, reason: str, path: str | None = None) -> None:
        where = f" at {path}" if path else ""
        super().__init__(f"invalid function.json{where}: {reason}")
        self.path = path
        self.reason = reason


class BundleError(ReactorError):
    """The function bundle is invalid or cannot be loaded."""

    code = "bundle_error"


class NonRetryableError(Exception):
    """Raise from a job to skip the remaining retries: the run goes to the dead-letter queue."""
