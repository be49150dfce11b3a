package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/job"
	"github.com/intake/intake/internal/postgres"
)

// analyticsRetryBatch is how many jobs one transaction retries: enough to
// move a day's backlog in a few hundred round trips, few enough that no
// transaction holds many row locks for long.
const analyticsRetryBatch = 1000

// analyticsJobs replays analytics jobs once the sink works again. Replaying
// is safe because the sink deduplicates on the event id. Each job made
// available is audited (analytics.retry) in the transaction that moves it.
// Only the http sink makes analytics jobs: the Postgres sink's records are
// written by the relay as it dispatches each event, so with it there is
// normally nothing to retry (at most jobs left from an older worker or from
// a time the sink was http), and the command says so rather than print
// only zeros.
func analyticsJobs(ctx context.Context, pool *pgxpool.Pool, store *postgres.Store, caller access.Caller, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "retry" {
		return usageError{"analytics needs a subcommand: retry"}
	}
	fs := flag.NewFlagSet("analytics retry", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	discarded := fs.Bool("discarded", false, "also replay discarded and cancelled analytics jobs")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}

	// A client without queues: it lists and updates jobs, the workers run them.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return err
	}
	states := []rivertype.JobState{rivertype.JobStateRetryable}
	if *discarded {
		states = append(states, rivertype.JobStateDiscarded, rivertype.JobStateCancelled)
	}
	moved := 0
	for _, state := range states {
		n, err := retryAnalyticsJobs(ctx, client, pool, store, caller, state)
		fmt.Fprintf(stdout, "%s: made %d analytics jobs available\n", state, n)
		if err != nil {
			return err
		}
		moved += n
	}
	if moved == 0 {
		fmt.Fprintln(stdout, nothingToRetry)
	}
	return nil
}

// nothingToRetry ends a retry that found no analytics job to move.
const nothingToRetry = "nothing to retry: no analytics job is waiting (analytics jobs are the http sink's; " +
	"the postgres sink's records are written by the relay as it dispatches each event)"

// retryAnalyticsJobs makes every analytics job in state available now, a
// batch per transaction, and returns how many it moved. The list is in id
// order (River's default) from a cursor, so each batch continues the
// primary key scan where the last one stopped (a whole run reads the table
// at most once; time order would sort what is left at every batch), and a
// job that fails again while this runs is not picked up twice.
func retryAnalyticsJobs(ctx context.Context, client *river.Client[pgx.Tx], pool *pgxpool.Pool, store *postgres.Store, caller access.Caller, state rivertype.JobState) (int, error) {
	params := river.NewJobListParams().
		Queues(job.QueueAnalytics).
		Kinds((job.AnalyticsEventArgs{}).Kind()).
		States(state).
		First(analyticsRetryBatch)
	moved := 0
	for {
		var (
			batch *river.JobListResult
			n     int
		)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			n = 0
			if batch, err = client.JobListTx(ctx, tx, params); err != nil {
				return err
			}
			for _, j := range batch.Jobs {
				if rescuedAway(j) {
					continue
				}
				// River leaves a job alone when a worker is running it;
				// only the ones it moved count.
				retried, err := client.JobRetryTx(ctx, tx, j.ID)
				if err != nil {
					return fmt.Errorf("retry job %d: %w", j.ID, err)
				}
				if retried.State == rivertype.JobStateAvailable {
					n++
					if err := store.AuditTx(ctx, tx, caller, "analytics.retry", "river_job", strconv.FormatInt(j.ID, 10)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return moved, err
		}
		moved += n
		if len(batch.Jobs) < analyticsRetryBatch {
			return moved, nil
		}
		params = params.After(batch.LastCursor)
	}
}

// rescuedAway reports whether j is a dead worker's row that a heartbeat
// rescue finalized and replaced with a new row (db/river/jobs_rescue.sql):
// the new row is the job, so replaying this one would run it twice.
func rescuedAway(j *rivertype.JobRow) bool {
	var m struct {
		RescuedAs *int64 `json:"rescued_as"`
	}
	return json.Unmarshal(j.Metadata, &m) == nil && m.RescuedAs != nil
}
