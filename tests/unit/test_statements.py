"""Named SQL blocks: split by header, duplicates and unknown names refused."""

from __future__ import annotations

import pytest

from reactor_jobs.statements import Statements

TEXT = """
-- A file comment, before any block, belongs to none.
-- name: runs_read
-- why this statement exists
SELECT 1;

-- name: runs_write
UPDATE t SET x = $1
"""


def test_blocks_are_split_by_name_and_keep_their_comments() -> None:
    stmts = Statements(TEXT)
    assert stmts.names() == ["runs_read", "runs_write"]
    assert stmts.runs_read == "-- why this statement exists\nSELECT 1;\n"
    assert stmts["runs_write"] == "UPDATE t SET x = $1\n"


def test_unknown_names_and_duplicates_are_refused() -> None:
    stmts = Statements(TEXT, "x.sql")
    with pytest.raises(AttributeError, match=r"x\.sql has no statement 'nope'"):
        _ = stmts.nope
    with pytest.raises(ValueError, match="defined twice"):
        Statements("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")
    with pytest.raises(ValueError, match="empty"):
        Statements("-- name: a\n\n-- name: b\nSELECT 2\n")
