"""Layout contracts of the read side and the wire schema: no SQL in `http/`, a client that
imports nothing of the server, and each API struct defined once."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

import reactor_jobs
from reactor_jobs.client import ClientError, InvalidBundle
from reactor_jobs.client.functions import bundle_bytes
from reactor_jobs.http import app as http_app
from reactor_jobs.http import data_routes
from reactor_jobs.http.auth_docs import AUTH_DOCS
from reactor_jobs.http.openapi import build_document
from reactor_jobs.wire.objects import JobCreate, Run

PACKAGE = Path(reactor_jobs.__file__).parent

# A statement in a string: a verb followed (anywhere later) by the clause it needs. Prose that
# happens to say "delete" has no FROM/INTO/SET after it, and docstrings are skipped.
_SQL = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|WITH\s+\w+\s+AS\s*\()\b",
    re.IGNORECASE | re.DOTALL,
)
# A constant that opens as a statement does (a bare `SELECT pg_current_snapshot()` has no FROM).
_OPENS_AS_SQL = re.compile(r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE)\s+\S")
_HTTP_EXEMPT: set[str] = set()


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def sql_strings(source: str) -> list[str]:
    """The string constants (and f-string pieces) of `source` that read as SQL statements."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            # An f-string's pieces are separate constants: read them joined, holes as `?`.
            text = "".join(
                str(v.value) if isinstance(v, ast.Constant) else "?" for v in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in skip:
                continue
            text = node.value
        else:
            continue
        if _SQL.search(text) or _OPENS_AS_SQL.match(text):
            found.append(text)
    return found


def test_the_sql_detector_sees_statements_and_not_prose() -> None:
    assert sql_strings('Q = "SELECT job FROM _reactor_jobs.dlq WHERE org = $1"')
    assert sql_strings('Q = f"""\nUPDATE _reactor_jobs.jobs\n SET x = {y}"""')
    assert sql_strings('Q = "DELETE FROM t"')
    assert sql_strings('Q = f"SELECT {cols} FROM t"')
    assert sql_strings('Q = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"')
    assert not sql_strings('doc = "Jobs: create, list, get, update, delete"')
    assert not sql_strings('x = ("DELETE", "/jobs/v1/{name}")')
    assert not sql_strings('def f():\n    """Select the runs from the list."""')


def test_no_module_under_http_contains_sql() -> None:
    offenders = {}
    for path in sorted((PACKAGE / "http").rglob("*.py")):
        if path.name in _HTTP_EXEMPT:
            continue
        found = sql_strings(path.read_text("utf-8"))
        if found:
            offenders[str(path.relative_to(PACKAGE))] = [text[:60] for text in found]
    assert offenders == {}, "SQL belongs on the read side or in the owning store"


# What the client may import of reactor_jobs: itself, the wire schema, the bundle packer, and
# the package root (its __version__, which loads nothing else).
_CLIENT_MAY_IMPORT = ("reactor_jobs.client", "reactor_jobs.wire", "reactor_jobs.bundles")
_DATA_API: set[str] = set()


def imported_modules(path: Path) -> set[str]:
    """The reactor_jobs modules a file imports (at any depth of the file), by name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "reactor_jobs"}


def _allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return module == "reactor_jobs" or any(
        module == p or module.startswith(p + ".") for p in prefixes
    )


def test_the_client_imports_only_the_wire_schema_and_the_bundle_packer() -> None:
    offenders = {}
    for path in sorted((PACKAGE / "client").rglob("*.py")):
        bad = sorted(m for m in imported_modules(path) if not _allowed(m, _CLIENT_MAY_IMPORT))
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


def test_the_wire_schema_and_the_bundle_packer_import_nothing_of_the_server() -> None:
    files = [*sorted((PACKAGE / "wire").rglob("*.py")), PACKAGE / "bundles.py"]
    offenders = {
        path.name: sorted(imported_modules(path) - {"reactor_jobs.wire.objects"}) for path in files
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_loading_the_client_loads_no_server_module() -> None:
    """The same, at run time: what importing the client actually pulls in."""
    code = (
        "import sys, reactor_jobs.client\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('reactor_jobs')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "reactor_jobs.client" in loaded
    assert [m for m in loaded if not _allowed(m, _CLIENT_MAY_IMPORT)] == []


def _class_definitions(roots: list[Path]) -> dict[str, list[str]]:
    defs: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.ClassDef):
                    where = str(path.relative_to(PACKAGE))
                    defs.setdefault(node.name, []).append(where)
    return defs


def test_every_object_of_the_openapi_document_is_defined_once_in_wire() -> None:
    document = build_document([*http_app.routes(), *AUTH_DOCS, *data_routes.ROUTES])
    names = set(document["components"]["schemas"])
    assert {"Run", "Job", "Policy", "JournalEvent", "ErrorResponse"} <= names
    api_layers = [PACKAGE / "wire", PACKAGE / "http", PACKAGE / "client"]
    defs = _class_definitions(api_layers)
    defined_elsewhere = {
        # request bodies of trigger creation: decoded by triggers/, sent as dicts by the client
        "CronSpec", "EventSpec", "ManualSpec", "WebhookSpec",
    }  # fmt: skip
    misplaced = {}
    for name in sorted(names - _DATA_API - defined_elsewhere):
        where = defs.get(name, [])
        if len(where) != 1 or not where[0].startswith("wire/"):
            misplaced[name] = where
    assert misplaced == {}


def test_requests_are_strict_and_responses_lenient() -> None:
    """The server refuses unknown request fields; the client ignores unknown response fields,
    so an older client survives a newer server."""

    with pytest.raises(msgspec.ValidationError, match="unknown field `colour`"):
        msgspec.json.decode(b'{"name": "a", "function_name": "f", "colour": 1}', type=JobCreate)
    run = {
        "id": "run_1", "job": "j", "status": "queued", "attempt": 0, "function": "f",
        "function_version": 1, "trigger_kind": "manual", "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "started_at": None, "finished_at": None,
        "available_at": None, "last_error": None, "output": None, "dlq_id": None,
        "idempotency_key": None, "a_field_from_a_newer_server": {"x": 1},
    }  # fmt: skip
    assert msgspec.json.decode(msgspec.json.encode(run), type=Run).id == "run_1"


def test_a_folder_the_client_cannot_pack_is_a_client_error(tmp_path: Path) -> None:

    with pytest.raises(InvalidBundle, match=r"no function\.json") as refused:
        bundle_bytes(tmp_path)
    assert isinstance(refused.value, ClientError) and refused.value.code == "bundle_error"
