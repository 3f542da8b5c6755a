"""The domain: run events, the run state machine (replay.transition, from which the fold and
the runs projection are derived), retry and cron policy, the determinism guard, webhook
signatures, the hash chain, ids and the error tree.

Pure Python with no I/O: nothing here imports asyncpg, aiohttp or any other package of
reactor_jobs (tests/unit/test_import_contract.py holds it to that). Storage, runtime and the
API build on it; it builds on nothing of theirs.
"""
