"""The one error tree of Reactor Jobs: each class's docstring is its default message.

The HTTP layer maps each class to a status and an error `code` in one table.
"""

from __future__ import annotations

from typing import ClassVar


class ReactorError(Exception):
    """Reactor Jobs failed."""

    code: ClassVar[str] = "internal"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class NotFound(ReactorError):
    """The object does not exist."""

    code = "not_found"


class RunNotFound(NotFound):
    """The run does not exist."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} not found")
        self.run_id = run_id


class ConcurrencyError(ReactorError):
    """The stream moved on: another writer appended first."""

    code = "conflict"

    def __init__(self, run_id: str, expected: int, actual: int | None) -> None:
        actual_text = "no stream" if actual is None else f"position {actual}"
        super().__init__(
            f"run {run_id}: expected stream at position {expected}, found {actual_text}"
        )
        self.run_id = run_id
        self.expected = expected
        self.actual = actual


class IdempotencyConflict(ReactorError):
    """The idempotency key already started another run; this one was not created."""

    code = "idempotency_conflict"

    def __init__(self, run_id: str, org: str, job: str, key: str, holder: str) -> None:
        super().__init__(
            f"run {run_id} not created: job {job} already has run {holder} for idempotency"
            f" key {key!r}"
        )
        self.run_id, self.org, self.job, self.key, self.holder = run_id, org, job, key, holder


class FenceError(ReactorError):
    """The attempt no longer owns the run; its append was refused."""

    code = "fenced"

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"run {run_id}: append refused, {reason}")
        self.run_id = run_id
        self.reason = reason


class InvalidEvent(ReactorError):
    """The event cannot be stored."""

    code = "invalid_event"


class JournalTampered(ReactorError):
    """The journal's hash chain does not match its contents."""

    code = "journal_tampered"


class ConcurrencyExceeded(ReactorError):
    """Too many concurrent runs for this job."""

    code = "concurrency_exceeded"

    def __init__(self, job: str, limit: int, retry_after: int = 1) -> None:
        super().__init__(
            f"job {job} already has {limit} runs queued or running (maxConcurrency {limit});"
            " increase maxConcurrency or queue triggers across time"
        )
        self.job, self.limit, self.retry_after = job, limit, retry_after


class InvalidState(ReactorError):
    """The run is not in a state that allows this."""

    code = "invalid_state"


class DlqEntryNotFound(NotFound):
    """The dead-letter entry does not exist."""

    def __init__(self, dlq_id: str) -> None:
        super().__init__(f"dead-letter entry {dlq_id} not found")
        self.dlq_id = dlq_id


class SchemaTooNew(ReactorError):
    """The database was migrated by a newer Reactor Jobs than this one."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"the database schema is at version {found}; this Reactor Jobs knows versions up "
            f"to {supported}: upgrade Reactor Jobs, or point it at another database"
        )
        self.found, self.supported = found, supported


class Nondeterministic(ReactorError):
    """The code's calls differ from the run's recorded history."""

    code = "nondeterministic"

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class JobNotFound(NotFound):
    """The job does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"job {name} not found")
        self.name = name


class InvalidField(ReactorError):
    """A field has an invalid value."""

    code = "invalid_field"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
