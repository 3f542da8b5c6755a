"""Secrets that prove who is calling: access JWTs (HS256, pinned), opaque refresh tokens and
service API keys (both stored as sha256 only), and the JWT signing secret itself."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import time
from pathlib import Path

import jwt

from reactor_jobs.auth.principal import Unauthorized
from reactor_jobs.config import ConfigError, JobsConfig

ALGORITHM = "HS256"
REFRESH_PREFIX = "rt_"
API_KEY_PREFIX = "rk_"
SECRET_FILE = "jwt_secret"
# HS256 keys shorter than the hash output weaken it (RFC 7518 §3.2).
MIN_SECRET_LENGTH = 32
_REQUIRED_CLAIMS = ["sub", "iss", "aud", "iat", "exp", "jti"]


class AccessTokens:
    """Issues and verifies access JWTs; only HS256 is accepted, so `alg: none` and key
    confusion (an RS256 header with the secret as a public key) are refused."""

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl_s: int) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def __repr__(self) -> str:
        # The secret stays out of reprs and so out of logs and tracebacks.
        return f"AccessTokens(issuer={self.issuer!r}, audience={self.audience!r})"

    def issue(self, user_id: str, *, now: int | None = None) -> str:
        issued_at = int(time.time()) if now is None else now
        claims = {
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued_at,
            "exp": issued_at + self.ttl_s,
            "jti": secrets.token_hex(16),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> str:
        """The user id (`sub`) of a valid, unexpired token from this issuer for this audience."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired; refresh it or sign in again") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is invalid") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.startswith("usr_"):
            raise Unauthorized("the token is invalid")
        return subject


def token_hash(token: str) -> bytes:
    """What is stored for a refresh token or API key: its sha256 (they carry 256 random bits,
    so a fast hash is enough and lookups stay indexable)."""
    return hashlib.sha256(token.encode()).digest()


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def is_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def jwt_secret(jobs: JobsConfig) -> str:
    """The configured secret, else the one kept in <data_dir>/jwt_secret (made on first use)."""
    configured = jobs.auth.jwt_secret
    if configured is not None:
        if len(configured) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"config error: jobs.auth.jwt_secret: must be at least {MIN_SECRET_LENGTH} "
                "characters"
            )
        return configured
    return load_or_create_secret(Path(jobs.data_dir))


def load_or_create_secret(data_dir: Path) -> str:
    path = data_dir / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)  # readable by others: a copied or hand-made file; tighten it
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"config error: {path}: the JWT secret must be at least {MIN_SECRET_LENGTH} characters"
        )
    return secret


def _create_secret(path: Path) -> None:
    """Write the file whole under a temporary name, then link it into place: two processes
    starting at once agree on one secret, and none reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)  # another process won the race: use its secret
    finally:
        temporary.unlink(missing_ok=True)
