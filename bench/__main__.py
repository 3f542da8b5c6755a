"""`python -m bench`: run the benchmarks, each group on a throwaway database of its own,
and print one table."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform

import asyncpg

from bench import app as app_bench
from bench import audit, execution, journal
from bench import bun as bun_bench
from bench import cron as cron_bench
from bench import data as data_bench
from bench import faults as faults_bench
from bench import hosts as hosts_bench
from bench import http as http_bench
from bench import peers as peers_bench
from bench import resume as resume_bench
from bench.database import bench_database, server_url

Row = tuple[str, ...]


def _print_table(rows: list[Row]) -> None:
    columns = max(len(r) for r in rows)
    rows = [tuple(r) + ("",) * (columns - len(r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(columns)]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


GROUPS = (
    "journal", "execution", "hosts", "bun", "app", "http", "audit", "cron", "faults", "data",
    "peers", "resume",
)  # fmt: skip


async def _group(
    name: str, pool: asyncpg.Pool, args: argparse.Namespace
) -> tuple[list[Row], list[str]]:
    """One group's figures and notes, on a database of its own."""
    if name == "journal":
        return [
            *await journal.replay_figures(pool),
            *await journal.append_figures(pool, args.seconds),
        ], []
    if name == "execution":
        cfg = execution.Config(runs=args.runs, concurrency=args.concurrency, finished=args.finished)
        more, notes = await execution.execution_figures(pool, cfg, args.seconds)
        return list(more), notes
    if name == "hosts":
        hosts_cfg = hosts_bench.Config(runs=args.runs, concurrency=args.concurrency)
        more, notes = await hosts_bench.hosts_figures(pool, hosts_cfg, args.seconds)
        return list(more), notes
    if name == "bun":
        bun_cfg = bun_bench.Config(runs=args.runs, concurrency=args.concurrency)
        more, notes = await bun_bench.bun_figures(pool, bun_cfg, args.seconds)
        return list(more), notes
    if name == "app":
        app_cfg = app_bench.Config(runs=args.runs, concurrency=args.concurrency)
        more, notes = await app_bench.app_figures(pool, app_cfg, args.seconds)
        return list(more), notes
    if name == "http":
        more, notes = await http_bench.http_figures(
            pool, http_bench.Config(seconds=args.http_seconds), args.seconds
        )
        return list(more), notes
    if name == "audit":
        return list(await audit.audit_figures(pool)), []
    if name == "data":
        return await data_bench.data_figures(pool)
    if name == "resume":
        more = await resume_bench.resume_figures(pool, args.resume_events, args.seconds)
        return list(more), resume_bench.describe(args.resume_events)
    if name == "peers":
        peers_cfg = peers_bench.Config(jobs=args.peers_jobs, concurrency=args.concurrency)
        more = await peers_bench.peers_figures(pool, peers_cfg, args.seconds)
        return list(more), peers_cfg.describe()
    more, notes = await cron_bench.cron_figures(pool, cron_bench.Config(seconds=args.cron_seconds))
    return list(more), notes


async def main(args: argparse.Namespace) -> None:
    rows: list[Row] = [("figure", "measured", "goal", "met?")]
    notes: list[str] = []
    for n, name in enumerate(g for g in GROUPS if args.only in (None, g)):
        if name == "faults":  # a Postgres of its own, which it restarts
            rows += await faults_bench.fault_figures()
            continue
        async with bench_database() as pool:  # each group starts from an empty database
            if n == 0:
                version = await pool.fetchval("SHOW server_version")
                sync = await pool.fetchval("SHOW synchronous_commit")
                print(
                    f"Postgres {version} (synchronous_commit={sync}) at "
                    f"{server_url().split('@')[-1]}; {os.cpu_count()} cores; "
                    f"Python {platform.python_version()}"
                )
            more, more_notes = await _group(name, pool, args)
            rows += more
            notes += more_notes
    _print_table(rows)
    for note in notes:
        print(note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each rate test")
    parser.add_argument("--only", choices=GROUPS, help="run one group")
    parser.add_argument(
        "--runs", type=int, default=20_000, help="no-op runs in figures 1, 5 and H1"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=256,
        help="worker concurrency (figures 1, 2, 4, 5, H1, H2)",
    )
    parser.add_argument(
        "--finished",
        type=int,
        default=200_000,
        help="finished runs loaded before figure 5 (0 skips it; 1,000,000 adds about a minute)",
    )
    parser.add_argument(
        "--http-seconds", type=float, default=5.0, help="measured seconds per HTTP phase"
    )
    parser.add_argument(
        "--peers-jobs", type=int, default=5_000, help="no-op jobs per system in the peers group"
    )
    parser.add_argument(
        "--resume-events", type=int, default=100_000, help="events of the resume group's run"
    )
    parser.add_argument(
        "--cron-seconds", type=float, default=6.0, help="scheduler seconds per cron phase"
    )
    asyncio.run(main(parser.parse_args()))
