"""Named SQL statements kept in `.sql` files beside the code that runs them.

A file holds blocks, each opened by a line `-- name: journal_read_stream` and running to the
next such line. Comments inside a block stay with it (Postgres ignores them). Names are
noun-then-verb and unique within a file; a statement is used as written, with every value a
bound parameter.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z][a-z0-9_]*)\s*$", re.MULTILINE)


class Statements:
    """The blocks of one `.sql` file, by name: `stmts.journal_read_stream` or `stmts["…"]`."""

    def __init__(self, text: str, source: str = "<sql>") -> None:
        self._source = source
        self._blocks: dict[str, str] = {}
        heads = list(_HEADER.finditer(text))
        for i, head in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            name = head.group(1)
            if name in self._blocks:
                raise ValueError(f"{source}: statement {name!r} is defined twice")
            body = text[head.end() : end].strip()
            if not body:
                raise ValueError(f"{source}: statement {name!r} is empty")
            self._blocks[name] = body + "\n"

    def __getitem__(self, name: str) -> str:
        try:
            return self._blocks[name]
        except KeyError:
            raise KeyError(f"{self._source} has no statement {name!r}") from None

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._blocks[name]
        except KeyError:
            raise AttributeError(f"{self._source} has no statement {name!r}") from None

    def names(self) -> list[str]:
        return list(self._blocks)


@cache
def load(package: str, filename: str) -> Statements:
    """The statements of `filename` in `package` (read once per process)."""
    text = resources.files(package).joinpath(filename).read_text("utf-8")
    return Statements(text, f"{package}/{filename}")
