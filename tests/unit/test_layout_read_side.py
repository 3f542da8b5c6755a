"""Layout contracts of the read side and the wire schema: no SQL in `http/`, a client that
imports nothing of the server, and each API struct defined once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import reactor_jobs

PACKAGE = Path(reactor_jobs.__file__).parent

# A statement in a string: a verb followed (anywhere later) by the clause it needs. Prose that
# happens to say "delete" has no FROM/INTO/SET after it, and docstrings are skipped.
_SQL = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|WITH\s+\w+\s+AS\s*\()\b",
    re.IGNORECASE | re.DOTALL,
)
# A constant that opens as a statement does (a bare `SELECT pg_current_snapshot()` has no FROM).
_OPENS_AS_SQL = re.compile(r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE)\s+\S")
# The Data API's routes belong to another package's owner and are checked there.
_HTTP_EXEMPT = {"data_routes.py"}


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
            text = "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
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
