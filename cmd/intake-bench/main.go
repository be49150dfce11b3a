// Command intake-bench measures Intake against the database's own limits:
// it creates a fresh database, runs the real intake-api and intake-worker
// binaries under load next to raw baselines (the submit transaction over
// pgx, River working no-op jobs), and prints the ratios as a markdown table
// and a JSON file. Run it with -h for the flags; --short is a smoke run.
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
	go func() {
		// The first signal starts the cleanup (processes, database); a
		// second one ends the harness at once (its children die with it).
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "intake-bench:", err)
		os.Exit(1)
	}
}
