// Command intake-worker will drain the outbox through River: confirmation
// emails and analytics events. It is not built yet (issue: the worker).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "intake-worker:", err)
		os.Exit(1)
	}
}

func run(context.Context, func(string) string, io.Writer) error {
	return fmt.Errorf("not built yet: applications are stored with their outbox events, which wait for the worker")
}
