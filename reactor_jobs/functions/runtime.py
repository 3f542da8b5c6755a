"""Runtimes turn a deployed function version into its `fetch(request, env, ctx)` handler.

The Python runtime unpacks each version once into a cache folder and imports
`code/index.py` as a package of its own (a unique module name per load), so two versions
of one function live side by side and `from . import sibling` works inside a bundle;
nothing is added to sys.path. The `bun` runtime plugs in behind the same Protocol later.
"""

from __future__ import annotations

import asyncio
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
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

from reactor_jobs.functions.bundle import unpack
from reactor_jobs.functions.errors import BundleError
from reactor_jobs.functions.messages import Request, Response, to_output
from reactor_jobs.functions.records import FunctionVersion

__all__ = [
    "Handler",
    "PythonRuntime",
    "Request",
    "Response",
    "Runtime",
    "Runtimes",
    "to_output",
]

Handler: TypeAlias = Callable[[Request, Mapping[str, str], Any], Awaitable[Any]]
"""A function's `fetch(request, env, ctx)`."""

ENTRY_POINT = "index.py"
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_load_numbers = itertools.count(1)


class Runtime(Protocol):
    async def load(self, fv: FunctionVersion) -> Handler:
        """The version's handler; BundleError if the bundle cannot provide one."""
        ...


class PythonRuntime:
    """Loads Python bundles; each (org, name, version, sha256) is imported once per process."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self._handlers: dict[tuple[str, str, int, str], Handler] = {}
        self._lock = asyncio.Lock()

    async def load(self, fv: FunctionVersion) -> Handler:
        key = (fv.org, fv.name, fv.version, fv.sha256)
        handler = self._handlers.get(key)
        if handler is not None:
            return handler
        async with self._lock:  # loads are rare; one at a time keeps imports simple
            handler = self._handlers.get(key)
            if handler is None:
                code_dir = await asyncio.to_thread(self._unpacked, fv)
                handler = _import_fetch(fv, code_dir)
                self._handlers[key] = handler
        return handler

    def version_dir(self, fv: FunctionVersion) -> Path:
        """Where the version is unpacked: <cache>/<org>/<name>/<version>-<sha256 prefix>."""
        leaf = f"{fv.version}-{fv.sha256[:16]}"
        return self.cache_dir / _component(fv.org) / _component(fv.name) / leaf

    def _unpacked(self, fv: FunctionVersion) -> Path:
        if hashlib.sha256(fv.archive).hexdigest() != fv.sha256:
            raise BundleError(f"function {fv.name} v{fv.version}: archive does not match sha256")
        target = self.version_dir(fv)
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Unpack aside, then rename: a folder under its final name is always complete.
            staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
            try:
                unpack(fv.archive, staging)
                _rename_unless_present(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return target / "code"


class Runtimes:
    """The runtimes by name. Only `python` is built; `bun` comes later."""

    def __init__(self, cache_dir: Path) -> None:
        self._by_name: dict[str, Runtime] = {"python": PythonRuntime(Path(cache_dir) / "python")}

    def get(self, name: str) -> Runtime:
        runtime = self._by_name.get(name)
        if runtime is not None:
            return runtime
        if name == "bun":
            raise BundleError("the bun runtime is not built yet")
        raise BundleError(f"unknown runtime {name!r}")

    async def load(self, fv: FunctionVersion) -> Handler:
        return await self.get(fv.runtime).load(fv)


def _import_fetch(fv: FunctionVersion, code_dir: Path) -> Handler:
    label = f"function {fv.name} v{fv.version}"
    entry = code_dir / ENTRY_POINT
    if not entry.is_file():
        raise BundleError(f"{label}: the bundle has no code/{ENTRY_POINT}")
    module_name = f"_reactor_bundle_{fv.name.replace('-', '_')}_v{fv.version}_{next(_load_numbers)}"
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


if TYPE_CHECKING:  # static conformance to the port
    _python: Runtime = PythonRuntime(Path())
    _runtimes: Runtime = Runtimes(Path())
