"""Password hashing with argon2id (argon2-cffi's maintained defaults) and the password rules."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from reactor_jobs.auth.errors import InvalidAuthField

MIN_PASSWORD_LENGTH = 8
# argon2 takes any length; a cap keeps one request from hashing megabytes.
MAX_PASSWORD_LENGTH = 1024

_HASHER = PasswordHasher()
# Verified against when the email is unknown, so a miss costs what a wrong password costs.
_DUMMY_HASH = _HASHER.hash("reactor-jobs-dummy-password")


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidAuthField("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidAuthField("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) of a password that meets the rules."""
    check_password_rules(password)
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if the password matches; argon2 compares in constant time."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_dummy(password: str) -> None:
    """Spend the time of a real verification, for an email that has no user."""
    verify_password(_DUMMY_HASH, password)


def needs_rehash(password_hash: str) -> bool:
    """True if the hash was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(password_hash)
