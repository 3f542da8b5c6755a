"""`python -m bench`: run every benchmark on a throwaway database and print one table."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform

from bench import journal
from bench.database import bench_database, server_url


def _print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


async def main(seconds: float) -> None:
    async with bench_database() as pool:
        version = await pool.fetchval("SHOW server_version")
        sync = await pool.fetchval("SHOW synchronous_commit")
        print(
            f"Postgres {version} (synchronous_commit={sync}) at {server_url().split('@')[-1]}; "
            f"{os.cpu_count()} cores; Python {platform.python_version()}"
        )
        rows = [("figure", "measured", "goal")]
        rows += await journal.replay_figures(pool)
        rows += await journal.append_figures(pool, seconds)
    _print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each rate test")
    asyncio.run(main(parser.parse_args().seconds))
