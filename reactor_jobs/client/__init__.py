"""The Python client of the Reactor Jobs HTTP API (docs/http-api.md), async:

    async with create_client("http://127.0.0.1:8080") as reactor:
        await reactor.auth.sign_in_with_password(email=email, password=password)
        reactor.auth.set_org("acme")
        run = await reactor.jobs.trigger("process-order", payload={"orderId": "ord_123"})

Failures raise ReactorApiError subclasses carrying the API's `code`, the HTTP `status` and
the `request_id`; an unreachable server raises ConnectionFailed.
"""

from reactor_jobs.client.client import Client, create_client
from reactor_jobs.client.errors import (
    BadRequestError,
    ConflictError,
    ConnectionFailed,
    ForbiddenError,
    InvalidFieldError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ReactorApiError,
    ServerError,
    SignInRequired,
    UnauthorizedError,
)
from reactor_jobs.client.types import (
    ApiKey,
    Cause,
    DlqEntry,
    Event,
    Function,
    FunctionCheck,
    Job,
    JournalEvent,
    LineageRun,
    LogEvent,
    LogLine,
    Member,
    Membership,
    Page,
    Policy,
    ReplayResult,
    Run,
    RunEvent,
    RunStateAt,
    Session,
    SleepAt,
    StateChange,
    StateDiff,
    Trigger,
    User,
    Version,
)

__all__ = [
    "ApiKey",
    "BadRequestError",
    "Cause",
    "Client",
    "ConflictError",
    "ConnectionFailed",
    "DlqEntry",
    "Event",
    "ForbiddenError",
    "Function",
    "FunctionCheck",
    "InvalidFieldError",
    "Job",
    "JournalEvent",
    "LineageRun",
    "LogEvent",
    "LogLine",
    "Member",
    "Membership",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "Policy",
    "RateLimitedError",
    "ReactorApiError",
    "ReplayResult",
    "Run",
    "RunEvent",
    "RunStateAt",
    "ServerError",
    "Session",
    "SignInRequired",
    "SleepAt",
    "StateChange",
    "StateDiff",
    "Trigger",
    "UnauthorizedError",
    "User",
    "Version",
    "create_client",
]
