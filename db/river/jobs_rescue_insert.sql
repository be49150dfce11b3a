-- Runs again the jobs db/river/jobs_rescue.sql just finalized (their ids,
-- $1): a new row each, with the id kept in the old row's rescued_as, and
-- everything River needs to run it as the same job: kind, args, queue,
-- priority, max_attempts, tags, unique key and states, metadata (with
-- rescued_from in place of rescued_as: the id of the job's first row, the
-- same through every rescue, so the job is still known by it), its attempts so
-- far (the dead run counted) and errors (the rescue last, which is how
-- job.Metrics counts the rescue). It is available now rather than after a
-- retry's backoff: its worker died, the job did not fail. It goes back to
-- its place at the head of its queue, not behind a backlog: River fetches
-- by scheduled_at, then id, and the new id is the newest, so the row takes
-- its scheduled_at less a millisecond, or it would wait behind every job
-- the relay inserted in the same transaction (up to a batch of 500, which
-- the drill measured as 9 s). ON
-- CONFLICT DO NOTHING: a job whose unique states include discarded would
-- still hold its key in the old row; it is not run twice, and the beat
-- does not fail on it.
INSERT INTO river_job (id, state, attempt, max_attempts, attempted_at, attempted_by, created_at,
                       scheduled_at, priority, args, errors, kind, metadata, queue, tags,
                       unique_key, unique_states)
SELECT (o.metadata->>'rescued_as')::bigint, 'available', o.attempt, o.max_attempts, o.attempted_at,
       o.attempted_by, o.created_at, o.scheduled_at - interval '1 millisecond', o.priority, o.args, o.errors, o.kind,
       (o.metadata - 'rescued_as') || jsonb_build_object('rescued_from', coalesce(o.metadata->'rescued_from', to_jsonb(o.id))), o.queue, o.tags,
       o.unique_key, o.unique_states
FROM river_job o
WHERE o.id = ANY($1::bigint[]) AND o.metadata ? 'rescued_as'
ON CONFLICT DO NOTHING;
