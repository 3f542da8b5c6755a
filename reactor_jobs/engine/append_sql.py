"""The append statement: one round trip, one transaction, for any number of runs.

For each request it checks the stream head (optimistic concurrency) and the fence in the
same UPDATE that applies the run's projection patch; only the runs that pass get their
events inserted (journal_chain() extends each hash chain), their dlq and events rows
written, and, if runnable work appeared, one coalesced NOTIFY. A request that fails its
check changes nothing and does not disturb the others.
"""

from __future__ import annotations

from reactor_jobs.projections.handlers import RUN_COLUMNS

WORK_CHANNEL = "reactor_jobs_work"

_SET_COLUMNS = ", ".join(c for c in RUN_COLUMNS if c != "run_id")
_NEW_VALUES = ", ".join(f"n.{c}" for c in RUN_COLUMNS if c != "run_id")

APPEND = f"""
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::jsonb[], $4::text[], $5::int[],
                         $6::text[], $7::bool[])
        AS q(run_id, expected, patch, fence_status, fence_attempt, fence_owner, notify)
),
created AS (
    INSERT INTO _reactor_jobs.runs
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.runs, r)).*
      FROM unnest($8::jsonb[]) AS r
    ON CONFLICT DO NOTHING
    RETURNING run_id, org, job
),
updated AS (
    UPDATE _reactor_jobs.runs AS r
       SET ({_SET_COLUMNS}) =
           (SELECT {_NEW_VALUES} FROM jsonb_populate_record(r, q.patch) AS n)
      FROM req AS q
     WHERE r.run_id = q.run_id AND q.expected > 0 AND r.last_position = q.expected
       AND (q.fence_status IS NULL OR r.status = q.fence_status)
       AND (q.fence_attempt IS NULL OR r.attempt = q.fence_attempt)
       AND (q.fence_owner IS NULL
            OR (r.lease_owner = q.fence_owner AND r.lease_expires_at > now()))
    RETURNING r.run_id, r.org, r.job
),
ok AS (SELECT * FROM created UNION ALL SELECT * FROM updated),
appended AS (
    INSERT INTO _reactor_jobs.journal (run_id, position, org, type, version, payload)
    SELECT e.run_id, e.position, ok.org, e.type, e.version, e.payload
      FROM unnest($9::text[], $10::int[], $11::text[], $12::smallint[], $13::bytea[])
           WITH ORDINALITY AS e(run_id, position, type, version, payload, n)
      JOIN ok USING (run_id)
     ORDER BY e.n
    RETURNING 1
),
consumers AS (
    SELECT c.event_id, count(*)::int AS n
      FROM unnest($17::text[], $18::text[]) AS c(event_id, run_id)
      JOIN ok USING (run_id)
     GROUP BY c.event_id
),
dlq_opened AS (
    INSERT INTO _reactor_jobs.dlq
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.dlq,
                d || jsonb_build_object('org', ok.org, 'job', ok.job))).*
      FROM unnest($14::jsonb[]) AS d JOIN ok ON ok.run_id = d->>'run_id'
    RETURNING 1
),
dlq_retried AS (
    UPDATE _reactor_jobs.dlq AS d SET status = 'retried', retried_at = now()
      FROM unnest($15::text[], $16::text[]) AS x(dlq_id, run_id)
      JOIN ok USING (run_id)
     WHERE d.dlq_id = x.dlq_id AND d.status = 'open'
    RETURNING 1
),
events_recorded AS (
    INSERT INTO _reactor_jobs.events
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.events,
                x || jsonb_build_object(
                    'org', ok.org, 'job', ok.job, 'fanout', coalesce(c.n, 0),
                    'consumed_at', CASE WHEN c.n > 0 THEN now() END))).*
      FROM unnest($19::jsonb[]) AS x
      JOIN ok ON ok.run_id = x->>'run_id'
      LEFT JOIN consumers AS c ON c.event_id = x->>'event_id'
    RETURNING 1
),
events_consumed AS (
    -- rows inserted by events_recorded are invisible here, so nothing counts twice
    UPDATE _reactor_jobs.events AS t
       SET fanout = t.fanout + c.n, consumed_at = least(t.consumed_at, now())
      FROM consumers AS c
     WHERE t.event_id = c.event_id
    RETURNING 1
),
notified AS (
    SELECT pg_notify('{WORK_CHANNEL}', '')
      FROM (SELECT 1 FROM req JOIN ok USING (run_id) WHERE req.notify LIMIT 1) AS w
)
SELECT array(SELECT run_id FROM ok) AS ok_runs,
       (SELECT count(*) FROM appended) AS appended,
       (SELECT count(*) FROM notified) AS notified
"""

# Why each refused request was refused: its head and ownership right after the statement.
REFUSED = """
SELECT run_id, last_position, status, attempt, lease_owner,
       coalesce(lease_expires_at > now(), false) AS lease_valid
  FROM _reactor_jobs.runs WHERE run_id = ANY($1::text[])
"""
