package job_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/job"
	mailpkg "github.com/intake/intake/internal/mail"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/testkit"
)

// The heartbeat settings of these tests: the defaults (2 s, 5 s, 6 s)
// scaled down, keeping their relations (a lease spans two beats and ends
// before its worker may be called dead).
const (
	beatEvery = 200 * time.Millisecond
	leaseFor  = time.Second
	deadAfter = 1500 * time.Millisecond
)

func newHeartbeat(store *postgres.Store, id string) *job.Heartbeat {
	return &job.Heartbeat{
		Store:     store,
		Self:      postgres.Worker{ID: id, Hostname: "test", PID: 1, StartedAt: time.Now()},
		Interval:  beatEvery,
		Lease:     leaseFor,
		DeadAfter: deadAfter,
		Logger:    slog.New(slog.DiscardHandler),
	}
}

// runHeartbeat runs h until the returned stop is called (or the test ends).
func runHeartbeat(t *testing.T, h *job.Heartbeat) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var done sync.WaitGroup
	done.Go(func() { h.Run(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); done.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// startWorker starts a real River client for the bundle's database, with
// its heartbeat h, as cmd/intake-worker wires them. River's own rescuer is
// kept out of the way (an hour), so only the heartbeat can rescue.
func (b *emailBundle) startWorker(t *testing.T, h *job.Heartbeat) {
	t.Helper()
	cfg := testkit.DefaultConfig(t)
	client, err := job.NewClient(b.pool, job.Deps{
		Store: b.store, Sender: b.sender, Logger: slog.New(slog.DiscardHandler),
		PublicURL: cfg.PublicURL, StatusTokens: cfg.StatusTokens, Employer: cfg.Employer,
		Heartbeat: h,
	}, job.Settings{
		ClientID:             h.Self.ID,
		EmailConcurrency:     2,
		AnalyticsConcurrency: 1,
		FetchCooldown:        10 * time.Millisecond,
		FetchPollInterval:    50 * time.Millisecond,
		JobTimeout:           10 * time.Second,
		RecordTimeout:        5 * time.Second,
		RescueAfter:          time.Hour,
		Retry:                job.RetrySchedule{Base: time.Second, Max: time.Second, For: time.Minute},
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, client.StopAndCancel(ctx))
	})
}

// abandonedJob is the confirmation job of the bundle's application as a
// worker leaves it when it is killed mid-send: running, attempted by
// worker, the delivery's lease taken by worker's attempt.
func (b *emailBundle) abandonedJob(t *testing.T, worker string) int64 {
	t.Helper()
	res, err := b.river.Insert(t.Context(), job.ConfirmationEmailArgs{ApplicationID: b.appID}, &river.InsertOpts{MaxAttempts: 5})
	require.NoError(t, err)
	_, err = b.pool.Exec(t.Context(), `
		UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = ARRAY[$2]
		WHERE id = $1`, res.Job.ID, worker)
	require.NoError(t, err)
	_, _, err = b.store.DeliveryAttemptStartFor(t.Context(), b.appID, leaseFor, worker)
	require.NoError(t, err)
	return res.Job.ID
}

// rescuedAs is the id of the job a heartbeat's rescue of job id made to
// run it again (0: none yet).
func (b *emailBundle) rescuedAs(t *testing.T, id int64) int64 {
	t.Helper()
	var again int64
	require.NoError(t, b.pool.QueryRow(t.Context(),
		`SELECT coalesce((metadata->>'rescued_as')::bigint, 0) FROM river_job WHERE id = $1`, id).Scan(&again))
	return again
}

type jobState struct {
	State     string
	Attempt   int
	AttemptBy string
	LastError string
}

func (b *emailBundle) jobState(t *testing.T, id int64) jobState {
	t.Helper()
	var s jobState
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		SELECT state::text, attempt, coalesce(attempted_by[cardinality(attempted_by)], ''),
		       coalesce(errors[cardinality(errors)]->>'error', '')
		FROM river_job WHERE id = $1`, id).Scan(&s.State, &s.Attempt, &s.AttemptBy, &s.LastError))
	return s
}

// stillRunningBy checks, now and for the whole of d, that the job stays
// running on worker: nothing rescued it.
func (b *emailBundle) stillRunningBy(t *testing.T, id int64, worker string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		s := b.jobState(t, id)
		require.Equal(t, "running", s.State, "a live worker's job was rescued: %+v", s)
		require.Equal(t, worker, s.AttemptBy)
		if time.Now().After(end) {
			return
		}
	}
}

// A worker whose heartbeat is fresh keeps its running job however long it
// runs; once its heartbeat stops (the worker was killed), another worker
// runs the job again within the bound, after the dead worker's lease, and
// without burning an attempt.
func TestDeadWorkersJobRunsAgainFromItsHeartbeat(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	killed := newHeartbeat(b.store, "worker-killed")
	stopKilled := runHeartbeat(t, killed)
	id := b.abandonedJob(t, killed.Self.ID)

	survivor := newHeartbeat(b.store, "worker-survivor")
	runHeartbeat(t, survivor)
	b.startWorker(t, survivor)
	// Fresh heartbeat: left alone for well over the staleness window.
	b.stillRunningBy(t, id, killed.Self.ID, 3*deadAfter)

	stopKilled()
	killedAt := time.Now()
	var s jobState
	var again int64
	require.Eventually(t, func() bool {
		if again = b.rescuedAs(t, id); again == 0 {
			return false
		}
		s = b.jobState(t, again)
		return s.State == "completed"
	}, 20*time.Second, 20*time.Millisecond, "the dead worker's job never ran again: %+v", s)
	took := time.Since(killedAt)
	old := b.jobState(t, id)
	require.Equal(t, "discarded", old.State, "the dead worker's row is finalized, its job run by a new one")
	require.Equal(t, "rescued from dead worker worker-killed: its heartbeat stopped", old.LastError)
	// Called dead after deadAfter, rescued by one of the next beats, run
	// at once: the test's scale of the 15 s bound (10 s with the defaults).
	// Generous for a loaded machine: a beat that times out delays the
	// rescue by another deadAfter.
	require.Less(t, took, 3*deadAfter+5*beatEvery+2*time.Second, "rescued after %s", took)
	require.Equal(t, 2, s.Attempt, "the dead worker's run counts as an attempt, as with River's rescuer")
	require.Equal(t, "worker-survivor", s.AttemptBy)

	// The rescue is on the record, and the rescued run started only once
	// the dead worker's last beat was older than deadAfter, when its lease
	// (renewed by that beat) was long over.
	var sinceLastBeat float64
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		SELECT extract(epoch FROM d.last_attempt_at - h.last_seen_at)::float8
		FROM deliveries d, worker_heartbeats h
		WHERE d.application_id = $1 AND h.worker_id = $2`, b.appID, killed.Self.ID).Scan(&sinceLastBeat))
	require.Equal(t, "rescued from dead worker worker-killed: its heartbeat stopped", s.LastError)
	require.GreaterOrEqual(t, sinceLastBeat, deadAfter.Seconds(), "rescued while the heartbeat was fresh")
	state, attempts := b.ledger(t)
	require.Equal(t, "sent", state)
	require.Equal(t, 2, attempts, "the killed attempt, then the rescued run's")
	require.Len(t, b.smtp.Messages(), 1)
}

// The whole database goes away for longer than the staleness window:
// every worker's heartbeat stops at once. When it comes back, the first
// worker to beat must not call the others dead: it waits until its own
// beats have been committing for the whole window, by when every live
// worker has beaten again.
func TestNoRescueAfterAWholeDatabaseOutage(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	u, err := url.Parse(b.dbURL)
	require.NoError(t, err)
	proxy := testkit.StartProxy(t, u.Host)
	proxied, err := postgres.NewPool(t.Context(), withHostPort(t, b.dbURL, proxy.Addr()), nil)
	require.NoError(t, err)
	t.Cleanup(proxied.Close)
	store := postgres.NewStore(proxied)
	// Beaten by hand, in the order that would fool a rescuer that trusts
	// its first beat after the outage.
	first := newHeartbeat(store, "worker-first")
	late := newHeartbeat(store, "worker-late")
	// A beat may time out on a loaded machine (it has one Interval): try
	// again. A failed beat only makes its worker wait longer to rescue.
	beat := func(hs ...*job.Heartbeat) {
		for _, h := range hs {
			require.Eventually(t, func() bool { return h.Beat(t.Context()) == nil }, 10*time.Second, time.Millisecond)
		}
	}
	id := b.abandonedJob(t, late.Self.ID)
	for end := time.Now().Add(deadAfter + beatEvery); time.Now().Before(end); time.Sleep(beatEvery) {
		beat(late, first)
	}
	b.stillRunningBy(t, id, late.Self.ID, 0)

	proxy.Cut(testkit.Refuse)
	for end := time.Now().Add(2 * deadAfter); time.Now().Before(end); time.Sleep(beatEvery) {
		require.Error(t, first.Beat(t.Context()))
		require.Error(t, late.Beat(t.Context()))
	}
	proxy.Restore()
	beat(first) // late's row is older than deadAfter by now
	b.stillRunningBy(t, id, late.Self.ID, 0)
	for end := time.Now().Add(2 * deadAfter); time.Now().Before(end); time.Sleep(beatEvery) {
		beat(late, first)
	}
	b.stillRunningBy(t, id, late.Self.ID, 0)
}

// A worker that is alive but cannot beat (it lost the database) must stop
// its send before its lease ends: another worker may call it dead and run
// its job. While its heartbeat works, the send may outlast many leases.
func TestSendIsCutWhenTheHeartbeatStops(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	b.smtp.SetReplyDelay(6 * time.Second) // the server does not greet before the test is over
	u, err := url.Parse(b.dbURL)
	require.NoError(t, err)
	proxy := testkit.StartProxy(t, u.Host)
	proxied, err := postgres.NewPool(t.Context(), withHostPort(t, b.dbURL, proxy.Addr()), nil)
	require.NoError(t, err)
	t.Cleanup(proxied.Close)
	hb := newHeartbeat(postgres.NewStore(proxied), "worker-partitioned")
	runHeartbeat(t, hb)
	require.Eventually(t, func() bool { return b.count(t, `SELECT count(*) FROM worker_heartbeats`) == 1 },
		10*time.Second, 10*time.Millisecond)

	w := b.worker(b.store, 30*time.Second, 10*time.Second)
	w.Heartbeat = hb
	done := make(chan error, 1)
	var ended time.Time
	go func() {
		err := w.Work(b.workCtx(context.Background()), b.runningJob(t))
		ended = time.Now()
		done <- err
	}()
	b.waitLedger(t, "sending")
	select {
	case err := <-done:
		t.Fatalf("the send ended while its heartbeat renewed the lease: %v", err)
	case <-time.After(3 * leaseFor):
	}

	// The heartbeat's database goes; the send's own store still works.
	// The last lease end seen before the attempt records its failure (and
	// clears it) is the one the last beat renewed.
	proxy.Cut(testkit.Refuse)
	var leaseEnd time.Time
	giveUp := time.After(10 * time.Second)
wait:
	for {
		if end, err := b.leaseEnd(t); err == nil {
			leaseEnd = end
		}
		select {
		case err := <-done:
			var failure *mailpkg.Failure
			require.ErrorAs(t, err, &failure)
			require.False(t, failure.Permanent)
			break wait
		case <-giveUp:
			t.Fatal("the send went on after its heartbeat stopped")
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.False(t, leaseEnd.IsZero())
	require.True(t, ended.Before(leaseEnd), "the send ended at %s, after its lease (%s)", ended, leaseEnd)
	state, _ := b.ledger(t)
	require.Equal(t, "retrying", state)
	require.Empty(t, b.smtp.Messages())
}

// The whole database goes away right after the server accepted the
// message, for longer than the heartbeat lease: the lease lapses, but no
// other attempt started (nobody rescues during the outage), so the worker
// records "sent" after it, and the job's next run sends nothing.
func TestSentIsRecordedAfterAnUnrenewedLease(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	u, err := url.Parse(b.dbURL)
	require.NoError(t, err)
	proxy := testkit.StartProxy(t, u.Host)
	proxied, err := postgres.NewPool(t.Context(), withHostPort(t, b.dbURL, proxy.Addr()), nil)
	require.NoError(t, err)
	t.Cleanup(proxied.Close)
	store := postgres.NewStore(proxied)
	hb := newHeartbeat(store, "worker-outage")
	runHeartbeat(t, hb)
	b.smtp.OnAccept(func() {
		proxy.Cut(testkit.Refuse)
		time.AfterFunc(4*leaseFor, proxy.Restore)
	})
	w := b.worker(store, 20*time.Second, 16*time.Second)
	w.Heartbeat = hb

	require.NoError(t, w.Work(b.workCtx(context.Background()), b.runningJob(t)), "recording sent must outlast the outage")
	state, attempts := b.ledger(t)
	require.Equal(t, "sent", state)
	require.Equal(t, 1, attempts)
	b.smtp.OnAccept(nil)
	require.NoError(t, w.Work(b.workCtx(t.Context()), b.runningJob(t)))
	require.Len(t, b.smtp.Messages(), 1, "one accepted copy")
}

// leaseEnd reads the delivery's lease end (the database and the test share
// the machine's clock).
func (b *emailBundle) leaseEnd(t *testing.T) (time.Time, error) {
	t.Helper()
	var end *time.Time
	err := b.pool.QueryRow(t.Context(), `SELECT lease_expires_at FROM deliveries WHERE application_id = $1`, b.appID).Scan(&end)
	if err == nil && end == nil {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return time.Time{}, err
	}
	return *end, nil
}

// An attempt that ends without recording its outcome (here its record hit
// a one-second blip of its database path, so River will retry it) leaves
// the delivery 'sending' under its lease. Its worker's heartbeat, still
// beating, renews only the attempts in flight, so that lease runs out like
// any other and the retry sends the email, instead of snoozing on a lease
// renewed for as long as the worker lives.
func TestLeaseOfAnEndedAttemptIsNotRenewed(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	hb := newHeartbeat(b.store, "worker-alive")
	runHeartbeat(t, hb)

	u, err := url.Parse(b.dbURL)
	require.NoError(t, err)
	proxy := testkit.StartProxy(t, u.Host)
	proxied, err := postgres.NewPool(t.Context(), withHostPort(t, b.dbURL, proxy.Addr()), nil)
	require.NoError(t, err)
	t.Cleanup(proxied.Close)

	// The job's own database path blips for a second right as the server
	// answers 451; the heartbeat (its own pool) is unaffected.
	b.smtp.Refuse(func(string) *smtp.SMTPError {
		proxy.Cut(testkit.Refuse)
		time.AfterFunc(time.Second, proxy.Restore)
		return testkit.TempFailure()
	})
	w := b.worker(postgres.NewStore(proxied), 20*time.Second, 5*time.Second)
	w.Heartbeat = hb
	require.Error(t, w.Work(b.workCtx(t.Context()), b.runningJob(t)), "the record of the failed send should have failed")
	b.smtp.Refuse(nil)
	state, attempts := b.ledger(t)
	require.Equal(t, "sending", state)
	require.Equal(t, 1, attempts)

	// The heartbeat goes on beating, and the ended attempt's lease lapses
	// within its length.
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM deliveries WHERE lease_expires_at <= now()`) == 1
	}, 10*leaseFor, 20*time.Millisecond, "the lease of an ended attempt is still being renewed")

	// The retry takes the delivery, its own lease renewed while it sends,
	// and sends the email.
	w2 := b.worker(b.store, 20*time.Second, 5*time.Second)
	w2.Heartbeat = hb
	require.NoError(t, w2.Work(b.workCtx(t.Context()), b.runningJob(t)))
	b.waitLedger(t, "sent")
	require.Len(t, b.smtp.Messages(), 1)
}

// A worker called dead while alive (a partition, a stalled process) comes
// back and its River completer ends its stale run: River sets a job's state
// wherever it is still running, checking nothing else. The rescue ran the
// job as a new row, so the stale cancel finds its own row finalized and
// does nothing: the rescued run, which fails temporarily, is retried and
// the email is sent.
func TestStaleCompleterCannotEndTheRescuedRun(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	stalled := newHeartbeat(b.store, "worker-stalled")
	require.NoError(t, stalled.Beat(t.Context())) // one beat, then silence
	id := b.abandonedJob(t, stalled.Self.ID)      // attempt 1, lease held by stalled

	// The rescued run's send is slow, and its first one fails temporarily
	// (451 at RCPT).
	var rcpts atomic.Int32
	b.smtp.SetReplyDelay(1500 * time.Millisecond)
	b.smtp.Refuse(func(string) *smtp.SMTPError {
		if rcpts.Add(1) == 1 {
			return testkit.TempFailure()
		}
		return nil
	})
	survivor := newHeartbeat(b.store, "worker-survivor")
	runHeartbeat(t, survivor)
	b.startWorker(t, survivor)

	// Rescued: running on the survivor, which took attempt 2 and is sending.
	var live int64
	require.Eventually(t, func() bool {
		live = b.idOf(t, `SELECT coalesce(max(id), 0) FROM river_job
			WHERE kind = 'confirmation_email' AND state = 'running' AND attempted_by[cardinality(attempted_by)] = 'worker-survivor'`)
		st, attempts := b.ledger(t)
		return live != 0 && st == "sending" && attempts == 2
	}, 15*time.Second, 10*time.Millisecond)

	// The stalled worker comes back: its run records its (cut) send with
	// attempt 1 and learns it lost the lease ...
	err := b.store.DeliveryUnsent(t.Context(), b.appID, 1, application.EmailRetrying, application.FailureTemporary, 0)
	require.ErrorIs(t, err, postgres.ErrLeaseLost)
	// ... so its Work returns river.JobCancel(errLeaseLost), and its River
	// completer runs exactly this for the job it fetched (river
	// internal/jobcompleter -> JobSetStateIfRunningMany).
	errData, err := json.Marshal(map[string]any{"at": time.Now(), "attempt": 1, "error": "JobCancelError: a newer attempt owns this delivery; this run stops"})
	require.NoError(t, err)
	p := riverdriver.JobSetStateCancelled(id, time.Now(), errData, nil)
	_, err = riverpgxv5.New(b.pool).GetExecutor().JobSetStateIfRunningMany(t.Context(), &riverdriver.JobSetStateIfRunningManyParams{
		ID: []int64{p.ID}, Attempt: []*int{p.Attempt}, ErrData: [][]byte{p.ErrData}, FinalizedAt: []*time.Time{p.FinalizedAt},
		MetadataDoMerge: []bool{false}, MetadataUpdates: [][]byte{nil}, ScheduledAt: []*time.Time{p.ScheduledAt},
		State: []rivertype.JobState{p.State},
	})
	require.NoError(t, err)

	// The rescued run goes on; the stale run's row stays as the rescue
	// left it.
	require.Equal(t, "running", b.jobState(t, live).State, "the stale completer ended the rescued run")
	require.Equal(t, "discarded", b.jobState(t, id).State)

	// Its temporary failure is retried, and the email sent once.
	b.smtp.SetReplyDelay(0)
	b.waitLedger(t, "sent")
	require.Eventually(t, func() bool { return b.jobState(t, live).State == "completed" }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, b.smtp.Messages(), 1)
	require.Equal(t, int32(2), rcpts.Load(), "the failed send, then its retry")
}

// A heartbeat rescue runs the job again as a new row that River takes for
// the same job: the weekly report's, unique by its week, keeps its unique
// key (the old row, discarded, gives it up first), so asking for the same
// week again is still a no-op; and the new row has the old one's kind,
// args, queue, priority, attempts and errors.
func TestRescueKeepsAUniqueJobUnique(t *testing.T) {
	t.Parallel()
	b := setupEmail(t)
	args := job.WeeklyReportArgs{Week: "2026-W48"}
	res, err := b.river.Insert(t.Context(), args, nil)
	require.NoError(t, err)
	old := res.Job.ID
	gone := newHeartbeat(b.store, "worker-gone")
	require.NoError(t, gone.Beat(t.Context()))
	_, err = b.pool.Exec(t.Context(), `
		UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = ARRAY['worker-gone'] WHERE id = $1;`, old)
	require.NoError(t, err)
	_, err = b.pool.Exec(t.Context(), `UPDATE worker_heartbeats SET last_seen_at = now() - interval '1 hour'`)
	require.NoError(t, err)

	_, rescued, err := b.store.WorkerBeat(t.Context(), postgres.Worker{ID: "worker-rescuer", Hostname: "test", PID: 1, StartedAt: time.Now()},
		postgres.BeatOpts{RescueDeadAfter: deadAfter})
	require.NoError(t, err)
	require.Len(t, rescued, 1)
	require.Equal(t, old, rescued[0].ID)
	require.Equal(t, "available", rescued[0].State)
	require.NotZero(t, rescued[0].NewID)
	require.Equal(t, rescued[0].NewID, b.rescuedAs(t, old))

	var same bool
	require.NoError(t, b.pool.QueryRow(t.Context(), `
		SELECT n.kind = o.kind AND n.args = o.args AND n.queue = o.queue AND n.priority = o.priority
		   AND n.max_attempts = o.max_attempts AND n.attempt = o.attempt AND n.errors = o.errors
		   AND n.unique_key = o.unique_key AND n.unique_states = o.unique_states AND n.scheduled_at = o.scheduled_at - interval '1 millisecond'
		   AND o.state = 'discarded' AND n.state = 'available' AND n.finalized_at IS NULL
		   AND (n.metadata->>'rescued_from')::bigint = o.id
		FROM river_job o, river_job n WHERE o.id = $1 AND n.id = $2`, old, rescued[0].NewID).Scan(&same))
	require.True(t, same, "the new row is not the same job")
	require.Equal(t, "rescued from dead worker worker-gone: its heartbeat stopped", b.jobState(t, rescued[0].NewID).LastError)

	again, err := b.river.Insert(t.Context(), args, nil)
	require.NoError(t, err)
	require.True(t, again.UniqueSkippedAsDuplicate, "the rescued report job no longer holds its week")
	require.Equal(t, rescued[0].NewID, again.Job.ID)
}
