"""`reactor data …`: the org's own tables through the Data API: `sql` (DDL, org admin),
`tables`, `query TABLE --select … --eq col=val`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reactor_jobs.cli.output import cell
from reactor_jobs.cli.remote import Handler, Remote


async def run_sql(args: argparse.Namespace, remote: Remote) -> int:
    if args.sql_text is not None:
        text = args.sql_text
    elif args.file == "-":
        text = sys.stdin.read()
    else:
        text = Path(args.file).read_text(encoding="utf-8")
    done = await remote.client.data.sql(text)
    if remote.out.json_mode:
        remote.out.document(done)
    else:
        remote.out.line(f"ok; tables: {', '.join(done.tables) or '-'}")
    return 0


async def tables(args: argparse.Namespace, remote: Remote) -> int:
    found = await remote.client.data.tables()
    if remote.out.json_mode:
        remote.out.document({"tables": found})
        return 0
    if not found:
        remote.out.note("no tables yet; create some with `reactor data sql --file schema.sql`")
    for table in found:
        key = f" (primary key {', '.join(table.primary_key)})" if table.primary_key else ""
        remote.out.line(f"{table.name}: {table.kind}{key}")
        for column, kind in table.columns.items():
            remote.out.line(f"  {column}  {kind}")
    return 0


def _pairs(values: list[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        column, eq, rest = value.partition("=")
        if not eq or not column:
            raise SystemExit(f"error: {flag} takes COLUMN=VALUE, not {value!r}")
        pairs.append((column, rest))
    return pairs


async def query(args: argparse.Namespace, remote: Remote) -> int:
    eq = dict(_pairs(args.eq, "--eq"))
    rows = await remote.client.data.query(
        args.table, select=args.select, eq=eq, filters=_pairs(args.filter, "--filter"),
        order=args.order, limit=args.limit,
    )  # fmt: skip
    if remote.out.json_mode:
        remote.out.document(rows)
        return 0
    if not rows:
        remote.out.note("no rows")
        return 0
    columns = list(rows[0])
    table = [columns] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(columns))]
    for n, row in enumerate(table):
        remote.out.line(
            "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        )
        if n == 0:
            remote.out.line("  ".join("-" * w for w in widths))
    return 0


COMMANDS: dict[str, Handler] = {"data sql": run_sql, "data tables": tables, "data query": query}
