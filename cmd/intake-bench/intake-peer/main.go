// Command intake-peer is intake-bench's peer: the submit endpoint of the
// design without an outbox, which inserts the River jobs inside the submit
// transaction (River's InsertManyTx) where Intake inserts an outbox event
// for its relay to turn into the same jobs. The harness builds it, runs it
// in its own process beside intake-api, and has the real intake-worker work
// its jobs, so the two designs are measured on the same machine in the same
// run. It is a measuring instrument, not a product: it serves the happy
// path of POST /api/v1/jobs/{slug}/applications and nothing else.
//
// It reads Intake's configuration from the same environment as intake-api
// (database, listen address, pool size, lock timeout, idempotency TTL,
// public URL, status secret, retry schedule), plus
// INTAKE_BENCH_PEER_ANALYTICS (see analyticsModes).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "intake-peer:", err)
		os.Exit(1)
	}
}
