"""The Data API's errors: each maps to the API's one error shape, `{"error": {"code",
"message"}}`, through the HTTP error table (http/errors.py)."""

from __future__ import annotations

from reactor_jobs.domain.errors import ReactorError


class DataError(ReactorError):
    """The data request cannot be served."""

    code = "bad_request"


class DataBadRequest(DataError):
    """The data request is malformed (unknown column, bad filter, type mismatch)."""

    code = "bad_request"


class DataNotFound(DataError):
    """No such table or function in the org's data."""

    code = "not_found"


class DataConflict(DataError):
    """The write conflicts with a row already there (unique or foreign key)."""

    code = "conflict"


class DataForbidden(DataError):
    """The org's role may not do this."""

    code = "forbidden"


class DataTooLarge(DataError):
    """The request body or result is larger than the limit."""

    code = "payload_too_large"


class DataUnavailable(DataError):
    """The Data service cannot be reached; the call may be retried."""

    code = "database_unavailable"
