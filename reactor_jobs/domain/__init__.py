"""The domain: run events, the run state machine, retry and cron policy, the hash chain and ids.

Pure Python with no I/O: nothing here imports asyncpg, aiohttp or any other package of the
engine. Storage, runtime and the API build on it; it builds on nothing of theirs.
"""
