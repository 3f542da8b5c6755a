-- The read side's statements: lists, gets, tails, lineage, export and the auditor's reads.
-- Loaded by name through reactor_jobs.statements; every value is a bound parameter.

-- name: run_get
SELECT * FROM _reactor_jobs.runs WHERE org = $1 AND run_id = $2

-- name: run_owned
SELECT 1 FROM _reactor_jobs.runs WHERE org = $1 AND run_id = $2

-- name: job_exists
SELECT 1 FROM _reactor_jobs.jobs WHERE org = $1 AND name = $2

-- name: runs_list
-- Newest first by (created_at, run_id): the runs_by_job index, read backwards from the cursor.
SELECT * FROM _reactor_jobs.runs
 WHERE org = $1 AND job = $2
   AND ($3::text[] IS NULL OR status = ANY($3::text[]))
   AND ($4::timestamptz IS NULL OR created_at >= $4)
   AND ($5::timestamptz IS NULL OR created_at < $5)
   AND ($6::timestamptz IS NULL OR (created_at, run_id) < ($6, $7::text))
 ORDER BY created_at DESC, run_id DESC
 LIMIT $8

-- name: runs_in_flight_of_function
SELECT r.run_id FROM _reactor_jobs.runs AS r
 WHERE r.org = $1 AND r.function_name = $2
   AND r.status IN ('queued', 'running', 'sleeping', 'retrying')
 ORDER BY r.created_at

-- name: dlq_list
-- Newest first by (created_at, dlq_id): the dlq_by_job index, read from the cursor on.
SELECT dlq_id AS id, run_id, job, attempts, error, status, created_at, retried_at
  FROM _reactor_jobs.dlq
 WHERE org = $1 AND job = $2
   AND ($3::text IS NULL OR status = $3)
   AND ($4::timestamptz IS NULL OR (created_at, dlq_id) < ($4, $5::text))
 ORDER BY created_at DESC, dlq_id DESC
 LIMIT $6

-- name: dlq_entry_job
SELECT job FROM _reactor_jobs.dlq WHERE org = $1 AND dlq_id = $2

-- name: events_list
-- Emitted events newest first (events_by_org); `$3` keeps only those no job has taken yet.
SELECT event_id AS id, topic, payload, run_id, job, emitted_at, consumed_at, fanout
  FROM _reactor_jobs.events
 WHERE org = $1
   AND ($2::text IS NULL OR topic = $2)
   AND (NOT $3::boolean OR consumed_at IS NULL)
   AND ($4::timestamptz IS NULL OR (emitted_at, event_id) < ($4, $5::text))
 ORDER BY emitted_at DESC, event_id DESC
 LIMIT $6

-- name: snapshot_horizon
-- The oldest running transaction: a tail starting "now" starts here, losing nothing later.
SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS tx

-- The four tails below share one shape. One snapshot gives both the horizon and the rows
-- below it, in (tx, seq) order after the cursor ($3, $4); with no rows the horizon alone
-- comes back, and the cursor moves up to it (nothing below it can still appear). A tail of
-- one run ($6) is a statement of its own, so neither plan has to cover both cases.

-- name: journal_tail_job
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT horizon.xmin::text AS horizon, t.*
  FROM horizon LEFT JOIN LATERAL (
    SELECT j.tx_id::text AS tx, j.global_position AS seq,
           j.run_id, j.position, j.type, j.recorded_at, j.payload
      FROM _reactor_jobs.journal AS j JOIN _reactor_jobs.runs AS r USING (run_id)
     WHERE r.org = $1 AND r.job = $2
       AND (j.tx_id, j.global_position) > ($3::text::xid8, $4::bigint) AND j.tx_id < horizon.xmin
     ORDER BY j.tx_id, j.global_position
     LIMIT $5
  ) AS t ON true

-- name: journal_tail_run
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT horizon.xmin::text AS horizon, t.*
  FROM horizon LEFT JOIN LATERAL (
    SELECT j.tx_id::text AS tx, j.global_position AS seq,
           j.run_id, j.position, j.type, j.recorded_at, j.payload
      FROM _reactor_jobs.journal AS j JOIN _reactor_jobs.runs AS r USING (run_id)
     WHERE r.org = $1 AND r.job = $2 AND j.run_id = $6
       AND (j.tx_id, j.global_position) > ($3::text::xid8, $4::bigint) AND j.tx_id < horizon.xmin
     ORDER BY j.tx_id, j.global_position
     LIMIT $5
  ) AS t ON true

-- name: logs_tail_job
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT horizon.xmin::text AS horizon, t.*
  FROM horizon LEFT JOIN LATERAL (
    SELECT tx_id::text AS tx, id AS seq, run_id, attempt, step, level, message, fields, at
      FROM _reactor_jobs.run_logs
     WHERE org = $1 AND job = $2
       AND (tx_id, id) > ($3::text::xid8, $4::bigint) AND tx_id < horizon.xmin
     ORDER BY tx_id, id
     LIMIT $5
  ) AS t ON true

-- name: logs_tail_run
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT horizon.xmin::text AS horizon, t.*
  FROM horizon LEFT JOIN LATERAL (
    SELECT tx_id::text AS tx, id AS seq, run_id, attempt, step, level, message, fields, at
      FROM _reactor_jobs.run_logs
     WHERE org = $1 AND job = $2 AND run_id = $6
       AND (tx_id, id) > ($3::text::xid8, $4::bigint) AND tx_id < horizon.xmin
     ORDER BY tx_id, id
     LIMIT $5
  ) AS t ON true

-- name: lineage_first_events
SELECT j.run_id, j.payload, r.job, r.status FROM _reactor_jobs.journal AS j
  JOIN _reactor_jobs.runs AS r USING (run_id)
 WHERE j.org = $1 AND j.run_id = ANY($2::text[]) AND j.position = 1

-- name: lineage_caused
-- The runs the given runs caused (journal_caused_by), in the order they were triggered.
SELECT run_id FROM _reactor_jobs.journal
 WHERE org = $1 AND position = 1 AND (data -> 'trigger' ->> 'causation_run_id') = ANY($2::text[])
 ORDER BY global_position

-- name: lineage_parents
SELECT DISTINCT data -> 'trigger' ->> 'causation_run_id' AS causation
  FROM _reactor_jobs.journal WHERE org = $1 AND position = 1 AND run_id = ANY($2::text[])

-- name: lineage_emitters
SELECT event_id, topic, run_id, job FROM _reactor_jobs.events
 WHERE org = $1 AND event_id = ANY($2::text[])

-- name: export_job_runs
-- Whole streams of the job's runs created in [$3, $4), so a verifier can recompute chains.
SELECT j.global_position, j.run_id, j.position, j.org, j.type, j.version, j.recorded_at,
       j.prev_hash, j.hash, j.payload
  FROM _reactor_jobs.journal AS j JOIN _reactor_jobs.runs AS r USING (run_id)
 WHERE r.org = $1 AND r.job = $2 AND r.created_at >= $3 AND r.created_at < $4
 ORDER BY j.run_id, j.position
