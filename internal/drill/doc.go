//go:build drills

// Package drill runs fault drills against real intake-api and intake-worker
// processes: several replicas of each over one fresh database, a recording
// SMTP server and a recording HTTP analytics sink, under client load, while
// processes are killed, restarted and their dependencies taken down.
//
// The drills are slow (minutes) and measure timing, so they sit behind a
// build tag and run after the normal tests:
//
//	go test -tags drills -count=1 -v ./internal/drill/
//
// The pieces:
//
//   - harness.go: Cluster (APIs, Workers), Start, Kill, Terminate; the
//     timings compressed through configuration; MailRecorder, which counts
//     RCPTs, scripts SMTP answers and stamps acceptance times.
//   - load.go: bounded, self-stopping clients that retry with the same
//     Idempotency-Key on connection errors, 503 and 409 in-flight, rotating
//     over the API replicas, and record each key's final answer.
//   - check.go: the SPEC's invariants (section 4) checked independently of
//     the code under test, with SQL and with what the SMTP server and the
//     sink received; StatusProbe (the same facts as `intakectl status`, by
//     SQL) and OperatorStatus (the real `intakectl status --json`, compared
//     with them).
//   - report.go: a table per drill and a summary printed by TestMain.
//
// The drills: worker SIGKILL, worker SIGKILL rescue time (from kill to
// the victim's jobs running again, with the production heartbeat
// settings), API SIGKILL, graceful restarts, SMTP outage and refusals,
// analytics outage, worker database blips, and a poison event (an outbox
// event that cannot become jobs).
package drill
