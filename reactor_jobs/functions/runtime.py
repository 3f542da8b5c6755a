"""Loading a Python bundle's `fetch(request, env, ctx)`, inside a function host (never in an
engine process).

Each version is unpacked once into the host's cache folder and `code/index.py` imported as a
package of its own (a unique module name per load), so two versions of one function live
side by side and `from . import sibling` works inside a bundle; nothing is added to sys.path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import itertools
import re
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias, cast

from reactor_jobs.functions.bundle import unpack
from reactor_jobs.functions.errors import BundleError
from reactor_jobs.functions.messages import Request, Response, to_output

__all__ = ["BundleLoader", "Handler", "Request", "Response", "to_output"]

Handler: TypeAlias = Callable[[Request, Mapping[str, str], Any], Awaitable[Any]]
"""A function's `fetch(request, env, ctx)`."""

ENTRY_POINT = "index.py"
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_load_numbers = itertools.count(1)


class BundleLoader:
    """Loads Python bundles in a function host; each (name, version, sha256) is unpacked and
    imported once per process."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self._handlers: dict[tuple[str, int, str], Handler] = {}

    def load(self, name: str, version: int, sha256: str, archive: bytes) -> Handler:
        """The version's handler; BundleError if the bundle cannot provide one."""
        key = (name, version, sha256)
        handler = self._handlers.get(key)
        if handler is None:
            if hashlib.sha256(archive).hexdigest() != sha256:
                raise BundleError(f"function {name} v{version}: archive does not match sha256")
            code_dir = self._unpacked(name, version, sha256, archive)
            handler = self._handlers[key] = _import_fetch(name, version, code_dir)
        return handler

    def version_dir(self, name: str, version: int, sha256: str) -> Path:
        """Where the version is unpacked: <cache>/<name>/<version>-<sha256 prefix>."""
        return self.cache_dir / _component(name) / f"{version}-{sha256[:16]}"

    def _unpacked(self, name: str, version: int, sha256: str, archive: bytes) -> Path:
        target = self.version_dir(name, version, sha256)
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Unpack aside, then rename: a folder under its final name is always complete.
            staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
            try:
                unpack(archive, staging)
                _rename_unless_present(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return target / "code"


def _import_fetch(name: str, version: int, code_dir: Path) -> Handler:
    label = f"function {name} v{version}"
    entry = code_dir / ENTRY_POINT
    if not entry.is_file():
        raise BundleError(f"{label}: the bundle has no code/{ENTRY_POINT}")
    module_name = (
        f"_reactor_bundle_{_component(name).replace('-', '_')}_v{version}_{next(_load_numbers)}"
    )
    spec = importlib.util.spec_from_file_location(
        module_name, entry, submodule_search_locations=[str(code_dir)]
    )
    if spec is None or spec.loader is None:
        raise BundleError(f"{label}: cannot import code/{ENTRY_POINT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # relative imports look the package up here
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        _forget(module_name)
        raise BundleError(
            f"{label}: importing code/{ENTRY_POINT} failed: {type(exc).__name__}: {exc}"
        ) from None
    fetch = getattr(module, "fetch", None)
    if not inspect.iscoroutinefunction(fetch):
        _forget(module_name)
        raise BundleError(
            f"{label}: code/{ENTRY_POINT} must define `async def fetch(request, env, ctx)`"
        )
    return cast(Handler, fetch)


def _forget(module_name: str) -> None:
    for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
        del sys.modules[name]


def _rename_unless_present(staging: Path, target: Path) -> None:
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # else another process unpacked the same version first
            raise


def _component(text: str) -> str:
    """A path component for an org or function name that cannot escape the cache folder."""
    if _SAFE_COMPONENT.fullmatch(text):
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:32]
