-- The write side's SQL, as it runs: named blocks loaded by reactor_jobs/statements.py.
-- Blocks are grouped by the module that runs them, each name starting with its module's.
-- (Text between blocks belongs to the block above it, so notes go inside a block.)

-- =======================================================================================
-- journal.py: the append statements. One round trip, one transaction, for a whole batch.
--
-- Each request (one run) checks its stream head (optimistic concurrency) and its fence in
-- the same UPDATE that applies the run's projection patch; only runs that pass get their
-- events inserted (journal_chain() extends each hash chain). A request that fails its
-- check changes nothing and does not disturb the others; the result lists the runs that
-- landed, and journal_refusals says why the others did not.
--
-- The UPDATE's column list is RUN_COLUMNS (domain/projection.py) less run_id, in that
-- order (tests/integration/test_journal.py checks it). A patch's "+column" holds
-- milliseconds after now(): the database's clock sets wake, retry and lease times.
-- =======================================================================================

-- name: journal_append_steps
-- The hot path: events appended to existing runs, with no run, dead letter or emitted
-- event created. $1-$7: one element per request; $8-$12: one per event, in stream order.
WITH req AS (
    SELECT *
      FROM unnest($1::text[], $2::int[], $3::jsonb[], $4::text[], $5::int[], $6::text[],
                  $7::bool[])
           AS q(run_id, expected, patch, fence_status, fence_attempt, fence_owner, notify)
),
updated AS (
    UPDATE _reactor_jobs.runs AS r
       SET (org, job, function_name, function_version, trigger_kind, trigger_source,
            idempotency_key, status, attempt, max_attempts, timeout_ms, max_concurrency,
            available_at, sleep_name, lease_owner, lease_expires_at, created_at, started_at,
            finished_at, updated_at, last_error, output, dlq_id, last_position) =
           (SELECT n.org, n.job, n.function_name, n.function_version, n.trigger_kind,
                   n.trigger_source, n.idempotency_key, n.status, n.attempt, n.max_attempts,
                   n.timeout_ms, n.max_concurrency, n.available_at, n.sleep_name,
                   n.lease_owner, n.lease_expires_at, n.created_at, n.started_at,
                   n.finished_at, n.updated_at, n.last_error, n.output, n.dlq_id,
                   n.last_position
              FROM jsonb_populate_record(r, q.patch || coalesce((
                       SELECT jsonb_object_agg(substr(l.k, 2),
                                  now() + (l.v #>> '{}')::numeric * interval '1 ms')
                         FROM jsonb_each(q.patch) AS l(k, v) WHERE l.k LIKE '+%'), '{}'))
                   AS n)
      FROM req AS q
     WHERE r.run_id = q.run_id AND q.expected > 0 AND r.last_position = q.expected
       AND (q.fence_status IS NULL OR r.status = q.fence_status)
       AND (q.fence_attempt IS NULL OR r.attempt = q.fence_attempt)
       AND (q.fence_owner IS NULL
            OR (r.lease_owner = q.fence_owner
                -- the lease holds by the claim or by the owner's heartbeat (workers)
                AND (r.lease_expires_at > now()
                     OR EXISTS (SELECT 1 FROM _reactor_jobs.workers AS w
                                 WHERE w.name = r.lease_owner AND w.expires_at > now()))))
    RETURNING r.run_id, r.org, r.job
),
appended AS (
    INSERT INTO _reactor_jobs.journal (run_id, position, org, type, version, payload)
    SELECT e.run_id, e.position, ok.org, e.type, e.version, e.payload
      FROM unnest($8::text[], $9::int[], $10::text[], $11::smallint[], $12::bytea[])
           WITH ORDINALITY AS e(run_id, position, type, version, payload, n)
      JOIN updated AS ok USING (run_id)
     ORDER BY e.n
    RETURNING 1
),
notified AS (
    -- runnable work appeared: one NOTIFY for the whole batch, sent at commit
    SELECT pg_notify('reactor_jobs_work', '')
      FROM (SELECT 1 FROM req JOIN updated USING (run_id) WHERE req.notify LIMIT 1) AS w
)
SELECT array(SELECT run_id FROM updated) AS ok_runs,
       (SELECT count(*) FROM appended) AS appended,
       (SELECT count(*) FROM notified) AS notified;

-- name: journal_append
-- Any batch: journal_append_steps, plus new runs (with their idempotency keys), dead
-- letters opened and retried, and emitted events recorded and consumed. A part a batch
-- does not use gets empty arrays.
--   $1-$7    one per request (a new run's request has expected 0 and no patch)
--   $8-$9    one per new run: its first runs row; `after`, the run whose request must land
--            for this one to exist (event fan-out), or NULL
--   $10-$14  one per event, in stream order
--   $15-$16  one per emitted event a new run consumes: the event, the new run
--   $17      dead-letter rows opened; $18-$19 dead-letter entries retried, by run
--   $20      emitted-event rows recorded
WITH req AS (
    SELECT *
      FROM unnest($1::text[], $2::int[], $3::jsonb[], $4::text[], $5::int[], $6::text[],
                  $7::bool[])
           AS q(run_id, expected, patch, fence_status, fence_attempt, fence_owner, notify)
),
updated AS (
    UPDATE _reactor_jobs.runs AS r
       SET (org, job, function_name, function_version, trigger_kind, trigger_source,
            idempotency_key, status, attempt, max_attempts, timeout_ms, max_concurrency,
            available_at, sleep_name, lease_owner, lease_expires_at, created_at, started_at,
            finished_at, updated_at, last_error, output, dlq_id, last_position) =
           (SELECT n.org, n.job, n.function_name, n.function_version, n.trigger_kind,
                   n.trigger_source, n.idempotency_key, n.status, n.attempt, n.max_attempts,
                   n.timeout_ms, n.max_concurrency, n.available_at, n.sleep_name,
                   n.lease_owner, n.lease_expires_at, n.created_at, n.started_at,
                   n.finished_at, n.updated_at, n.last_error, n.output, n.dlq_id,
                   n.last_position
              FROM jsonb_populate_record(r, q.patch || coalesce((
                       SELECT jsonb_object_agg(substr(l.k, 2),
                                  now() + (l.v #>> '{}')::numeric * interval '1 ms')
                         FROM jsonb_each(q.patch) AS l(k, v) WHERE l.k LIKE '+%'), '{}'))
                   AS n)
      FROM req AS q
     WHERE r.run_id = q.run_id AND q.expected > 0 AND r.last_position = q.expected
       AND (q.fence_status IS NULL OR r.status = q.fence_status)
       AND (q.fence_attempt IS NULL OR r.attempt = q.fence_attempt)
       AND (q.fence_owner IS NULL
            OR (r.lease_owner = q.fence_owner
                -- the lease holds by the claim or by the owner's heartbeat (workers)
                AND (r.lease_expires_at > now()
                     OR EXISTS (SELECT 1 FROM _reactor_jobs.workers AS w
                                 WHERE w.name = r.lease_owner AND w.expires_at > now()))))
    RETURNING r.run_id, r.org, r.job
),
starting AS (
    -- a new run spawned by another request (event fan-out) exists only if that one lands
    SELECT n.r, n.r ->> 'run_id' AS run_id, n.r ->> 'org' AS org, n.r ->> 'job' AS job,
           n.r ->> 'idempotency_key' AS idempotency_key
      FROM unnest($8::jsonb[], $9::text[]) AS n(r, after)
     WHERE n.after IS NULL OR n.after IN (SELECT run_id FROM updated)
),
keyed AS (
    -- Exactly-once triggering: a key is taken in the journal's own table, in the same
    -- transaction as its run's Triggered event, and never given back. A concurrent holder
    -- of the same key makes this wait for its commit, then skip. A run id that already
    -- has a stream takes no key (run ids are fresh, so that is a repeated request).
    INSERT INTO _reactor_jobs.idempotency_keys (org, job, key, run_id)
    SELECT s.org, s.job, s.idempotency_key, s.run_id
      FROM starting AS s
     WHERE s.idempotency_key IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM _reactor_jobs.journal AS j
                        WHERE j.run_id = s.run_id AND j.position = 1)
    ON CONFLICT DO NOTHING
    RETURNING run_id
),
created AS (
    INSERT INTO _reactor_jobs.runs
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.runs, s.r)).*
      FROM starting AS s
     WHERE s.idempotency_key IS NULL OR s.run_id IN (SELECT run_id FROM keyed)
    ON CONFLICT DO NOTHING
    RETURNING run_id, org, job
),
ok AS (
    SELECT * FROM updated UNION ALL SELECT * FROM created
),
appended AS (
    INSERT INTO _reactor_jobs.journal (run_id, position, org, type, version, payload)
    SELECT e.run_id, e.position, ok.org, e.type, e.version, e.payload
      FROM unnest($10::text[], $11::int[], $12::text[], $13::smallint[], $14::bytea[])
           WITH ORDINALITY AS e(run_id, position, type, version, payload, n)
      JOIN ok USING (run_id)
     ORDER BY e.n
    RETURNING 1
),
consumers AS (
    SELECT c.event_id, count(*)::int AS n
      FROM unnest($15::text[], $16::text[]) AS c(event_id, run_id) JOIN ok USING (run_id)
     GROUP BY c.event_id
),
dlq_opened AS (
    INSERT INTO _reactor_jobs.dlq
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.dlq,
                d || jsonb_build_object('org', ok.org, 'job', ok.job))).*
      FROM unnest($17::jsonb[]) AS d JOIN ok ON ok.run_id = d ->> 'run_id'
    RETURNING 1
),
dlq_retried AS (
    UPDATE _reactor_jobs.dlq AS d SET status = 'retried', retried_at = now()
      FROM unnest($18::text[], $19::text[]) AS x(dlq_id, run_id) JOIN ok USING (run_id)
     WHERE d.dlq_id = x.dlq_id AND d.status = 'open'
    RETURNING 1
),
events_recorded AS (
    INSERT INTO _reactor_jobs.events
    SELECT (jsonb_populate_record(NULL::_reactor_jobs.events,
                x || jsonb_build_object(
                    'org', ok.org, 'job', ok.job, 'fanout', coalesce(c.n, 0),
                    'consumed_at', CASE WHEN c.n > 0 THEN now() END))).*
      FROM unnest($20::jsonb[]) AS x
      JOIN ok ON ok.run_id = x ->> 'run_id'
      LEFT JOIN consumers AS c ON c.event_id = x ->> 'event_id'
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
    -- runnable work appeared: one NOTIFY for the whole batch, sent at commit
    SELECT pg_notify('reactor_jobs_work', '')
      FROM (SELECT 1 FROM req JOIN ok USING (run_id) WHERE req.notify LIMIT 1) AS w
)
SELECT array(SELECT run_id FROM ok) AS ok_runs,
       (SELECT count(*) FROM appended) AS appended,
       (SELECT count(*) FROM notified) AS notified;

-- name: journal_refusals
-- Why each refused request was refused, read right after the append: its run's head and
-- ownership, and for a new run with an idempotency key, the run holding that key.
SELECT q.run_id, r.last_position, r.status, r.attempt, r.lease_owner,
       coalesce(r.lease_expires_at > now(), false)
       OR EXISTS (SELECT 1 FROM _reactor_jobs.workers AS w
                   WHERE w.name = r.lease_owner AND w.expires_at > now()) AS lease_valid,
       k.run_id AS key_holder
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS q(run_id, org, job, key)
  LEFT JOIN _reactor_jobs.runs AS r ON r.run_id = q.run_id
  LEFT JOIN _reactor_jobs.idempotency_keys AS k
         ON k.org = q.org AND k.job = q.job AND k.key = q.key;

-- name: journal_read_stream
-- journal.py's reads and verification, from here on.
-- One run's events after position $2, in stream order.
SELECT global_position, run_id, position, org, type, version, recorded_at, prev_hash, hash,
       payload
  FROM _reactor_jobs.journal
 WHERE run_id = $1 AND position > $2
 ORDER BY position;

-- name: journal_read_streams
-- Several whole streams at once (a claim's runs, a function check's runs in flight).
SELECT global_position, run_id, position, org, type, version, recorded_at, prev_hash, hash,
       payload
  FROM _reactor_jobs.journal
 WHERE run_id = ANY($1::text[])
 ORDER BY run_id, position;

-- name: journal_read_all
-- Up to $2 events after global position $1, in commit-safe order. Rows of transactions
-- older than every running one are final: no event can still commit among them, so
-- walking (tx_id, global_position) below that horizon never skips one.
WITH cursor AS (
    SELECT coalesce((SELECT tx_id FROM _reactor_jobs.journal WHERE global_position = $1),
                    '0'::xid8) AS tx
)
SELECT j.global_position, j.run_id, j.position, j.org, j.type, j.version, j.recorded_at,
       j.prev_hash, j.hash, j.payload
  FROM _reactor_jobs.journal AS j, cursor
 WHERE (j.tx_id, j.global_position) > (cursor.tx, $1::bigint)
   AND j.tx_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY j.tx_id, j.global_position
 LIMIT $2;

-- name: journal_head
-- A stream's last position (NULL when there is no such stream).
SELECT max(position) FROM _reactor_jobs.journal WHERE run_id = $1;

-- name: journal_verify_stream
-- One stream with what verification recomputes: data_matches says the jsonb copy still
-- equals the hashed payload.
SELECT global_position, run_id, position, org, type, version, recorded_at, prev_hash, hash,
       payload, data = convert_from(payload, 'UTF8')::jsonb AS data_matches
  FROM _reactor_jobs.journal
 WHERE run_id = $1
 ORDER BY position;

-- name: journal_verify_all
-- Every stream, one after another (read through a cursor).
SELECT global_position, run_id, position, org, type, version, recorded_at, prev_hash, hash,
       payload, data = convert_from(payload, 'UTF8')::jsonb AS data_matches
  FROM _reactor_jobs.journal
 ORDER BY run_id, position;

-- Statements that write engine state (statements.py loads them by name).

-- ---------------------------------------------------------------------------------------
-- Worker liveness (schema version 5, issue 15): one row per worker, never journal rows.
-- Times are the database's: now() plus the lease, so no worker clock takes part.

-- name: workers_register
-- $1 worker name (fresh per process and per lapse), $2 lease in ms.
INSERT INTO _reactor_jobs.workers (name, expires_at)
VALUES ($1, now() + $2 * interval '1 millisecond')
ON CONFLICT (name) DO NOTHING
RETURNING name

-- name: workers_heartbeat
-- A lapsed row is not revived (no row returned): its runs may be expiring right now, so
-- the worker stops their attempts and registers under a new name.
UPDATE _reactor_jobs.workers
   SET beat_at = now(), expires_at = now() + $2 * interval '1 millisecond'
 WHERE name = $1 AND expires_at > now()
RETURNING name

-- name: workers_forget
-- A worker stopping: its runs still running (cancelled at the end of the grace period)
-- lose their lease at once instead of a lease later.
DELETE FROM _reactor_jobs.workers WHERE name = $1

-- name: workers_prune
-- Rows of workers gone for an hour that own no running run.
DELETE FROM _reactor_jobs.workers AS w
 WHERE w.expires_at < now() - interval '1 hour'
   AND NOT EXISTS (SELECT 1 FROM _reactor_jobs.runs AS r
                    WHERE r.status = 'running' AND r.lease_owner = w.name)

-- name: runs_expired
-- Running runs whose claim's lease ran out and whose owner's heartbeat is stale (or gone).
-- outage: the database restarted after the owner's last sign of life (the run's last write
-- or its last heartbeat): the worker went silent when the server went away.
SELECT r.run_id, r.attempt, r.lease_owner, r.last_position,
       pg_postmaster_start_time() > greatest(w.beat_at, (
           SELECT j.recorded_at FROM _reactor_jobs.journal AS j
            WHERE j.run_id = r.run_id AND j.position = r.last_position)) AS outage
  FROM _reactor_jobs.runs AS r
  LEFT JOIN _reactor_jobs.workers AS w ON w.name = r.lease_owner
 WHERE r.status = 'running' AND r.lease_expires_at < now()
   AND (w.name IS NULL OR w.expires_at <= now())
 ORDER BY r.lease_expires_at
 LIMIT $1
   FOR UPDATE OF r SKIP LOCKED

-- name: runs_held_by
-- Runs `$3` still holds in the given attempts (run ids $1, attempts $2), to hand back:
-- uncharged after a lost connection ($4 true); else (the attempt ended without releasing
-- its run: it failed unexpectedly or was stopped) as an expiry would decide: uncharged if
-- the database restarted after the run's last write, charged otherwise.
SELECT r.run_id, r.attempt, r.lease_owner, r.last_position,
       $4::boolean OR pg_postmaster_start_time() > (
           SELECT j.recorded_at FROM _reactor_jobs.journal AS j
            WHERE j.run_id = r.run_id AND j.position = r.last_position) AS outage
  FROM _reactor_jobs.runs AS r
  JOIN unnest($1::text[], $2::int[]) AS i (run_id, attempt)
    ON i.run_id = r.run_id AND i.attempt = r.attempt
 WHERE r.status = 'running' AND r.lease_owner = $3
   FOR UPDATE OF r
