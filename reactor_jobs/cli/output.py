"""What the remote commands print: aligned tables and `key: value` records for people, one
JSON document (the API's own shape) with --json for scripts."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

MAX_CELL = 60
# A column: its header and how to get the cell's value from a row.
Column = tuple[str, str]


def cell(value: Any, limit: int | None = MAX_CELL) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and {"type", "message"} <= value.keys():
        text = f"{value['type']}: {value['message']}"  # a run's error
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = msgspec.json.encode(value).decode()
    text = " ".join(text.split())  # one line per row, whatever the value holds
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def render_table(rows: Sequence[Any], columns: Sequence[Column]) -> str:
    grid = [[header for header, _ in columns]]
    grid += [[cell(getattr(row, field)) for _, field in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    lines = ["  ".join(t.ljust(w) for t, w in zip(line, widths, strict=True)).rstrip()
             for line in grid]  # fmt: skip
    return "\n".join(lines)


def render_record(row: Any, fields: Sequence[str]) -> str:
    width = max(len(field) for field in fields)
    return "\n".join(f"{field.ljust(width)}  {cell(getattr(row, field), None)}" for field in fields)


class Output:
    """Where one command writes: stdout for results, stderr for notes."""

    def __init__(self, json: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.json_mode = json
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def document(self, value: Any) -> None:
        """`value` (Structs, lists, dicts) as one indented JSON document."""
        encoded = msgspec.json.format(msgspec.json.encode(value), indent=2)
        print(encoded.decode(), file=self.out)

    def done(self, document: Any, message: str) -> None:
        """An action's result: the document with --json, else the message."""
        if self.json_mode:
            self.document(document)
        else:
            self.line(message)

    def table(self, rows: Sequence[Any], columns: Sequence[Column], empty: str) -> None:
        if rows:
            print(render_table(rows, columns), file=self.out)
        else:
            self.note(empty)

    def listing(self, key: str, rows: Sequence[Any], columns: Sequence[Column], empty: str) -> None:
        """A list result: `{key: [...]}` with --json, else a table (or `empty` on stderr)."""
        if self.json_mode:
            self.document({key: rows})
        else:
            self.table(rows, columns, empty)

    def page(self, key: str, page: Any, columns: Sequence[Column], empty: str) -> None:
        """One page of a paged list (a client Page): as listing, plus where the next starts."""
        if self.json_mode:
            self.document({key: list(page), "next_cursor": page.next_cursor})
            return
        self.table(page, columns, empty)
        if page.next_cursor:
            self.note(f"more: --cursor {page.next_cursor}")

    def record(self, row: Any, fields: Sequence[str]) -> None:
        print(render_record(row, fields), file=self.out)

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.err, flush=True)
