"""Errors of auth: bad input, conflicts and unknown users, orgs or keys; branches of the one
ReactorError tree (401 and 403 are `Unauthorized` and `Forbidden` in principal.py)."""

from __future__ import annotations

from reactor_jobs.domain.errors import NotFound, ReactorError


class BadRequest(ReactorError):
    """The request is malformed."""

    code = "bad_request"


class InvalidAuthField(ReactorError):
    """A field has an invalid value."""

    code = "invalid_field"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class AuthConflict(ReactorError):
    """The object already exists."""

    code = "conflict"


class UserNotFound(NotFound):
    """The user does not exist."""

    def __init__(self, who: str) -> None:
        super().__init__(f"user {who} not found")
        self.who = who


class OrgNotFound(NotFound):
    """The org does not exist."""

    def __init__(self, org: str) -> None:
        super().__init__(f"org {org} not found")
        self.org = org


class ApiKeyNotFound(NotFound):
    """The API key does not exist."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} not found")
        self.key_id = key_id


class InvitationNotFound(NotFound):
    """The invitation does not exist, has expired, or is addressed to someone else."""

    def __init__(self, invitation_id: str) -> None:
        super().__init__(f"invitation {invitation_id} not found")
        self.invitation_id = invitation_id
