"""The client's errors: one class per HTTP status the API documents, each carrying the API's
error `code`, its message and the response's request id. Messages never contain tokens.

The client's own tree, rooted in ClientError: the client imports nothing of the server, so
an application that only talks to a server does not load the engine."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from reactor_jobs.wire.errors import ErrorResponse


class ClientError(Exception):
    """The Reactor client failed."""

    code: ClassVar[str] = "internal"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ReactorApiError(ClientError):
    """The Reactor API refused the request."""

    status_code: ClassVar[int | None] = None

    def __init__(
        self, message: str, *, code: str, status: int, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        # The server's error code, per instance: a 409 may be `conflict` or `invalid_state`.
        self.code = code  # type: ignore[misc]
        self.status = status
        self.request_id = request_id


class BadRequestError(ReactorApiError):
    """400: the request is malformed (not JSON, or not the expected shape)."""

    status_code = 400


class UnauthorizedError(ReactorApiError):
    """401: no token, a bad one, or an expired one that could not be refreshed."""

    status_code = 401


class ForbiddenError(ReactorApiError):
    """403: not a member of the org, or the role is too low."""

    status_code = 403


class NotFoundError(ReactorApiError):
    """404: unknown (or another org's) object."""

    status_code = 404


class ConflictError(ReactorApiError):
    """409: the object exists already, or is not in a state that allows this."""

    status_code = 409


class PayloadTooLargeError(ReactorApiError):
    """413: the request body is larger than the server accepts."""

    status_code = 413


class InvalidFieldError(ReactorApiError):
    """422: a field is invalid; the message names it."""

    status_code = 422


class RateLimitedError(ReactorApiError):
    """429: too many concurrent runs (`concurrency_exceeded`); retry after `retry_after` s."""

    status_code = 429

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, request_id=request_id)
        self.retry_after = retry_after


class ServerError(ReactorApiError):
    """5xx: the server failed; its log has the details under the request id."""


class ConnectionFailed(ClientError):
    """The Reactor server could not be reached."""

    code = "connection_failed"


class SignInRequired(ClientError):
    """Not signed in: this needs a refresh token; sign in with a password first."""

    code = "unauthorized"


class NoOrgChosen(ClientError):
    """No org chosen: call `client.auth.set_org` (the CLI: --org, REACTOR_ORG or `reactor orgs
    use`)."""

    code = "no_org"


class InvalidBundle(ClientError):
    """The folder cannot be packed as a function bundle; the message says why."""

    code = "bundle_error"


_BY_STATUS: dict[int, type[ReactorApiError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        InvalidFieldError,
        RateLimitedError,
    )
    if cls.status_code is not None
}


def error_for(
    status: int, body: bytes, request_id: str | None, retry_after: str | None = None
) -> ReactorApiError:
    """The typed error for a response; a body not in the API's error shape (a proxy's page)
    still gives an error with a code derived from the status."""
    try:
        error = msgspec.json.decode(body, type=ErrorResponse).error
        code, message = error.code, error.message
    except msgspec.DecodeError:
        code = "internal" if status >= 500 else f"http_{status}"
        message = f"HTTP {status}: {body[:200].decode(errors='replace').strip() or 'no body'}"
    if status == 429:
        return RateLimitedError(
            message, code=code, status=status, request_id=request_id,
            retry_after=_seconds(retry_after),
        )  # fmt: skip
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ReactorApiError)
    return cls(message, code=code, status=status, request_id=request_id)


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None  # an HTTP date; the API sends seconds
