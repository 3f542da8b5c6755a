"""The append statement: one round trip, one transaction, for any number of runs.

For each request it checks the stream head (optimistic concurrency) and the fence in the
same UPDATE that applies the run's projection patch; only the runs that pass get their
events inserted (journal_chain() extends each hash chain), their dlq and events rows
written, and, if runnable work appeared, one coalesced NOTIFY. A request that fails its
check changes nothing and does not disturb the others.

The statement is assembled from the parts a batch needs: a step append (the hot path)
runs four small CTEs, not ten. Each shape is built once and prepared once per connection.
"""

from __future__ import annotations

from functools import lru_cache

from reactor_jobs.projections.handlers import RUN_COLUMNS

WORK_CHANNEL = "reactor_jobs_work"  # runnable work appeared
CANCEL_CHANNEL = "reactor_jobs_cancel"  # payload: the id of a run cancelled while running

_SET_COLUMNS = ", ".join(c for c in RUN_COLUMNS if c != "run_id")
_NEW_VALUES = ", ".join(f"n.{c}" for c in RUN_COLUMNS if c != "run_id")
# A patch's "+column": milliseconds after now(), the database's clock (handlers.LATER).
_LATER = """coalesce((
    SELECT jsonb_object_agg(substr(l.k, 2), now() + (l.v #>> '{}')::numeric * interval '1 ms')
      FROM jsonb_each(q.patch) AS l(k, v) WHERE l.k LIKE '+%'), '{}')"""

# Each part: its CTE text and the SQL types of its parameters, in order. In a part with
# parameters, {0}, {1}, … become the parameters' numbers when the statement is assembled.
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "req": (
        """
req AS (
    SELECT * FROM unnest({0}, {1}, {2}, {3}, {4}, {5}, {6})
        AS q(run_id, expected, patch, fence_status, fence_attempt, fence_owner, notify)
)""",
        ("text[]", "int[]", "jsonb[]", "text[]", "int[]", "text[]", "bool[]"),
    ),
    "created": (
        """
created AS (
    -- a new run spawned by another request (event fan-out) exists only if that one lands
    INSERT INTO _reactor_jobs.runs
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.runs, n.r)).*
      FROM unnest({0}, {1}) AS n(r, after)
     WHERE n.after IS NULL OR n.after IN (SELECT run_id FROM updated)
    ON CONFLICT DO NOTHING
    RETURNING run_id, org, job
)""",
        ("jsonb[]", "text[]"),
    ),
    "updated": (
        f"""
updated AS (
    UPDATE _reactor_jobs.runs AS r
       SET ({_SET_COLUMNS}) =
           (SELECT {_NEW_VALUES} FROM jsonb_populate_record(r, q.patch || {_LATER}) AS n)
      FROM req AS q
     WHERE r.run_id = q.run_id AND q.expected > 0 AND r.last_position = q.expected
       AND (q.fence_status IS NULL OR r.status = q.fence_status)
       AND (q.fence_attempt IS NULL OR r.attempt = q.fence_attempt)
       AND (q.fence_owner IS NULL
            OR (r.lease_owner = q.fence_owner
                AND (r.lease_expires_at > now()
                     OR EXISTS (SELECT 1 FROM _reactor_jobs.workers AS w
                                 WHERE w.name = r.lease_owner AND w.expires_at > now()))))
    RETURNING r.run_id, r.org, r.job
)""",
        (),
    ),
    "appended": (
        """
appended AS (
    INSERT INTO _reactor_jobs.journal (run_id, position, org, type, version, payload)
    SELECT e.run_id, e.position, ok.org, e.type, e.version, e.payload
      FROM unnest({0}, {1}, {2}, {3}, {4}) WITH ORDINALITY
           AS e(run_id, position, type, version, payload, n)
      JOIN ok USING (run_id)
     ORDER BY e.n
    RETURNING 1
)""",
        ("text[]", "int[]", "text[]", "smallint[]", "bytea[]"),
    ),
    "consumers": (
        """
consumers AS (
    SELECT c.event_id, count(*)::int AS n
      FROM unnest({0}, {1}) AS c(event_id, run_id) JOIN ok USING (run_id)
     GROUP BY c.event_id
)""",
        ("text[]", "text[]"),
    ),
    "dlq_opened": (
        """
dlq_opened AS (
    INSERT INTO _reactor_jobs.dlq
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.dlq,
                d || jsonb_build_object('org', ok.org, 'job', ok.job))).*
      FROM unnest({0}) AS d JOIN ok ON ok.run_id = d->>'run_id'
    RETURNING 1
)""",
        ("jsonb[]",),
    ),
    "dlq_retried": (
        """
dlq_retried AS (
    UPDATE _reactor_jobs.dlq AS d SET status = 'retried', retried_at = now()
      FROM unnest({0}, {1}) AS x(dlq_id, run_id) JOIN ok USING (run_id)
     WHERE d.dlq_id = x.dlq_id AND d.status = 'open'
    RETURNING 1
)""",
        ("text[]", "text[]"),
    ),
    "events_recorded": (
        """
events_recorded AS (
    INSERT INTO _reactor_jobs.events
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.events,
                x || jsonb_build_object(
                    'org', ok.org, 'job', ok.job, 'fanout', coalesce(c.n, 0),
                    'consumed_at', CASE WHEN c.n > 0 THEN now() END))).*
      FROM unnest({0}) AS x
      JOIN ok ON ok.run_id = x->>'run_id'
      LEFT JOIN (SELECT * FROM consumers) AS c ON c.event_id = x->>'event_id'
    RETURNING 1
)""",
        ("jsonb[]",),
    ),
    "events_consumed": (
        """
events_consumed AS (
    -- rows inserted by events_recorded are invisible here, so nothing counts twice
    UPDATE _reactor_jobs.events AS t
       SET fanout = t.fanout + c.n, consumed_at = least(t.consumed_at, now())
      FROM consumers AS c
     WHERE t.event_id = c.event_id
    RETURNING 1
)""",
        (),
    ),
    "notified": (
        f"""
notified AS (
    SELECT pg_notify('{WORK_CHANNEL}', '')
      FROM (SELECT 1 FROM req JOIN ok USING (run_id) WHERE req.notify LIMIT 1) AS w
)""",
        (),
    ),
}

ORDER = (
    "req",
    "updated",
    "created",
    "ok",
    "appended",
    "consumers",
    "dlq_opened",
    "dlq_retried",
    "events_recorded",
    "events_consumed",
    "notified",
)
_NO_CONSUMERS = "(SELECT NULL::text AS event_id, NULL::int AS n WHERE false)"


@lru_cache(maxsize=128)
def statement(parts: frozenset[str]) -> str:
    """The append statement with `parts` (always req, ok and appended), parameters in order."""
    ctes: list[str] = []
    number = 1
    for name in ORDER:
        if name == "ok":
            sources = [f"SELECT * FROM {p}" for p in ("created", "updated") if p in parts]
            ctes.append(f"\nok AS ({' UNION ALL '.join(sources)})")
            continue
        if name not in parts and name not in ("req", "appended"):
            continue
        text, types = PARTS[name]
        placeholders = [f"${number + i}::{t}" for i, t in enumerate(types)]
        number += len(types)
        if name == "created" and "updated" not in parts:
            text = text.replace(" OR n.after IN (SELECT run_id FROM updated)", "")
        if name == "events_recorded" and "consumers" not in parts:
            text = text.replace("(SELECT * FROM consumers)", _NO_CONSUMERS)
        ctes.append(text.format(*placeholders) if types else text)
    notified = "(SELECT count(*) FROM notified)" if "notified" in parts else "0"
    return (
        "WITH" + ",".join(ctes) + "\nSELECT array(SELECT run_id FROM ok) AS ok_runs,"
        f" (SELECT count(*) FROM appended) AS appended, {notified} AS notified"
    )


# Why each refused request was refused: its head and ownership right after the statement.
REFUSED = """
SELECT run_id, last_position, status, attempt, lease_owner,
       coalesce(lease_expires_at > now(), false)
       OR EXISTS (SELECT 1 FROM _reactor_jobs.workers AS w
                   WHERE w.name = r.lease_owner AND w.expires_at > now()) AS lease_valid
  FROM _reactor_jobs.runs AS r WHERE run_id = ANY($1::text[])
"""
