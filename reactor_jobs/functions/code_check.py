"""Deploy's check of a bundle's code, without running it: the code parses and the entry point
exports `fetch`, refused with file:line otherwise. Python is compiled and its AST read here;
TS/JS is transpiled by bun (reactor_jobs/hosts/bun/check.ts) in a short subprocess.
"""

from __future__ import annotations

import ast
import subprocess

import msgspec

from reactor_jobs.functions.bun_binary import HOST_DIR, HOW_TO_GET_BUN, find_bun
from reactor_jobs.functions.bundle import ENTRY_POINTS, read_code
from reactor_jobs.functions.errors import BundleError

CHECK_TIMEOUT_S = 30
_FETCH = "`async def fetch(request, env, ctx)`"


class _CheckResult(msgspec.Struct, frozen=True):
    errors: list[str]


def check_code(archive: bytes, runtime: str) -> None:
    """BundleError naming file:line when the code does not parse or exports no fetch."""
    files = read_code(archive)
    entry = next((e for e in ENTRY_POINTS.get(runtime, ()) if e in files), None)
    if entry is None:
        return  # validate_bundle reports the missing entry point
    if runtime == "python":
        _check_python(files, entry)
    elif runtime == "bun":
        _check_bun(files, entry)


def _check_python(files: dict[str, bytes], entry: str) -> None:
    trees: dict[str, ast.Module] = {}
    for name, source in sorted(files.items()):
        if name.endswith(".py"):
            try:
                trees[name] = ast.parse(source, filename=name)
            except SyntaxError as exc:
                raise BundleError(f"{name}:{exc.lineno}: {exc.msg}") from None
            except ValueError as exc:  # NUL bytes
                raise BundleError(f"{name}: {exc}") from None
    _check_python_fetch(trees[entry], entry)


def _check_python_fetch(tree: ast.Module, entry: str) -> None:
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "fetch":
            return
        if isinstance(node, ast.FunctionDef) and node.name == "fetch":
            raise BundleError(f"{entry}:{node.lineno}: fetch must be {_FETCH} (it is not async)")
        if isinstance(node, ast.ImportFrom | ast.Import) and any(
            (alias.asname or alias.name) == "fetch" for alias in node.names
        ):
            return  # imported from a sibling module; the host checks it is async on load
    raise BundleError(f"{entry} must define {_FETCH} at module level")


def _check_bun(files: dict[str, bytes], entry: str) -> None:
    bun = find_bun()
    if bun is None:
        raise BundleError(f"cannot check a bun bundle: {HOW_TO_GET_BUN}")
    sources = {name: data.decode("utf-8", errors="replace") for name, data in files.items()}
    request = msgspec.json.encode({"entry": entry, "files": sources})
    try:
        done = subprocess.run(
            [bun, "--no-install", str(HOST_DIR / "check.ts")],
            input=request, capture_output=True, timeout=CHECK_TIMEOUT_S, check=False,
        )  # fmt: skip
        result = msgspec.json.decode(done.stdout, type=_CheckResult)
    except (subprocess.TimeoutExpired, msgspec.DecodeError, OSError) as exc:
        raise BundleError(f"checking the bundle's code with bun failed: {exc}") from None
    if result.errors:
        raise BundleError("; ".join(result.errors))
