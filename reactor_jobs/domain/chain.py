"""The per-run hash chain, recomputed in Python exactly as journal_chain() computes it in SQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def epoch_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICRO


def link_hash(
    prev_hash: bytes,
    *,
    run_id: str,
    position: int,
    org: str,
    type_name: str,
    version: int,
    recorded_at: datetime,
    payload: bytes,
) -> bytes:
    header = f"{run_id}\n{position}\n{org}\n{type_name}\n{version}\n{epoch_micros(recorded_at)}\n"
    return hashlib.sha256(prev_hash + header.encode() + payload).digest()
