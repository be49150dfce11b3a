// Command intakectl is the operator's tool: migrations, postings, status,
// failed deliveries, quarantined outbox events, container health checks,
// and `dev`, which runs the whole system locally.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/intake/intake/internal/application"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	var (
		usage usageError
		stuck stuckError
		verr  *application.ValidationError
	)
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	case errors.As(err, &stuck):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case errors.As(err, &verr):
		// The field names alone do not say what to fix.
		for _, fe := range verr.Errors {
			fmt.Fprintf(os.Stderr, "intakectl: %s %s\n", fe.Field, fe.Message)
		}
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "intakectl:", err)
		os.Exit(1)
	}
}
