"""The CLI's stored sign-in: `$XDG_CONFIG_HOME/reactor/credentials.json` (default
`~/.config/reactor/`), readable by its owner only, written whole (a temporary file renamed
over it), so a crash never leaves half a file."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from reactor_jobs.domain.errors import ReactorError


class CredentialsError(ReactorError):
    """The stored credentials cannot be read or written."""

    code = "credentials_error"


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    access_token: str | None = None
    refresh_token: str | None = None
    org: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, org={self.org!r}, tokens=***)"


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "reactor" / "credentials.json"


def load_credentials() -> Credentials | None:
    path = credentials_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return msgspec.json.decode(data, type=Credentials)
    except msgspec.DecodeError as exc:
        raise CredentialsError(f"{path} is damaged ({exc}); run `reactor login` again") from None


def save_credentials(credentials: Credentials) -> Path:
    path = credentials_path()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(msgspec.json.format(msgspec.json.encode(credentials), indent=2))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise CredentialsError(f"cannot write {path}: {exc.strerror}") from None
    return path


@contextlib.asynccontextmanager
async def credentials_locked() -> AsyncIterator[None]:
    """Hold an exclusive lock beside the credentials file (flock on `credentials.lock`):
    processes that read, refresh and rewrite the stored tokens take turns."""
    path = credentials_path().with_name("credentials.lock")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CredentialsError(f"cannot open {path}: {exc.strerror}") from None
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_credentials() -> bool:
    """Forget the stored sign-in; False when there was none."""
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CredentialsError(f"cannot remove {credentials_path()}: {exc.strerror}") from None
    return True
