package job

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/postgres"
)

// ApplicationRetentionBatch is how many applications one transaction of
// application retention erases: each erasure takes its application's,
// delivery's and River job's row locks until the commit, so batches stay
// small.
const ApplicationRetentionBatch = 100

// ApplicationRetentionArgs asks for one run of application retention.
type ApplicationRetentionArgs struct{}

func (ApplicationRetentionArgs) Kind() string { return "application_retention" }

func (ApplicationRetentionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 1}
}

// ApplicationRetentionWorker erases the applications received longer than
// Retention ago (INTAKE_APPLICATION_RETENTION; zero: never), through the
// same erasure as an operator's, audited as the system with the reason
// "retention".
type ApplicationRetentionWorker struct {
	river.WorkerDefaults[ApplicationRetentionArgs]
	Store     *postgres.Store
	Logger    *slog.Logger
	Now       func() time.Time
	Retention time.Duration
}

func (w *ApplicationRetentionWorker) Work(ctx context.Context, _ *river.Job[ApplicationRetentionArgs]) error {
	if w.Retention <= 0 {
		return nil
	}
	cutoff := w.Now().Add(-w.Retention)
	n, err := w.Store.EraseReceivedBefore(ctx, access.Caller{Actor: access.ActorSystem}, cutoff, ApplicationRetentionBatch, "retention")
	if n > 0 {
		w.Logger.InfoContext(ctx, "application retention", "erased", n, "received_before", cutoff)
	}
	return err
}
