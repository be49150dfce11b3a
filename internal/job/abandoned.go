package job

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/postgres"
)

// AbandonedCheckInterval is how often the leader looks for deliveries that
// no job can move on any more: such a delivery says "failed" within about
// this long after its lease and its job ended.
const AbandonedCheckInterval = 20 * time.Second

// abandonedQuietFor is how long a delivery must have been left alone before
// the check may end it, a margin for writes in flight.
const abandonedQuietFor = 10 * time.Second

// AbandonedDeliveriesArgs asks for one run of the abandoned-delivery check.
type AbandonedDeliveriesArgs struct{}

func (AbandonedDeliveriesArgs) Kind() string { return "deliveries_abandoned_check" }

func (AbandonedDeliveriesArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 1}
}

// AbandonedDeliveriesWorker ends the ledger states that only a worker that
// ran could leave: a delivery still queued, sending or retrying whose lease
// is over and whose confirmation job is gone (River discards a job rescued
// after its last attempt without running it; an operator may cancel or
// delete one). It becomes failed ("abandoned"), so the status page and
// intakectl status tell the truth and intakectl deliveries retry can send
// it again.
type AbandonedDeliveriesWorker struct {
	river.WorkerDefaults[AbandonedDeliveriesArgs]
	Store  *postgres.Store
	Logger *slog.Logger
}

func (w *AbandonedDeliveriesWorker) Work(ctx context.Context, _ *river.Job[AbandonedDeliveriesArgs]) error {
	ids, err := w.Store.AbandonDeliveries(ctx, abandonedQuietFor)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		w.Logger.WarnContext(ctx, "deliveries abandoned by their jobs marked failed", "deliveries", len(ids), "application_ids", ids)
	}
	return nil
}
