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
