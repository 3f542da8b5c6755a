"""The fault suite's Postgres: an embedded cluster of its own in a temp dir, started once
per session, which the scenarios restart; never the shared one on 127.0.0.1:5432."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.rig import Cluster


@pytest.fixture(scope="session")
def fault_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
