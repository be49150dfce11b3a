//go:build drills

// Package faultdrill runs fault drills against real intake-api and
// intake-worker processes: a private PostgreSQL cluster that can be stopped
// and started under load (Cluster), an in-process TCP proxy that can cut the
// worker off from it (testkit.Proxy), and drills that check the SPEC's invariants
// afterwards, independently of the code under test: SQL on the drill's own
// connection, the SMTP server's Message-IDs and the analytics sink's
// records.
//
// Every file carries the drills build tag, so `go test ./...` skips the
// package; run it with
//
//	go test -tags drills -count=1 -v ./internal/faultdrill/
//
// The drills:
//
//   - TestDrillPostgresRestart: Postgres stopped (fast) and started again
//     about 3 s later under load; the API answers 503 with Retry-After
//     promptly while it is down and 201 again soon after; the worker
//     carries on without a restart.
//   - TestDrillNetworkCut: the worker's connections closed and new ones
//     held for 30 s while the API, connected directly, keeps taking
//     applications; the worker catches up afterwards.
//   - TestDrillSilentDrop: the worker's connections go silently dead (no
//     byte through, no reset, ever) for 10 s; the worker must notice on its
//     own. This drill found the relay waiting forever on a dead connection.
//
// Each prints a table (drill, load, faults, lost, duplicates, recovery)
// with its details.
//
// The shared server on 127.0.0.1:5432 is never touched: each drill initdbs
// its own cluster in a temporary directory, on its own port, listening on
// 127.0.0.1 only, with fsync on and trust authentication, and removes it at
// the end. initdb and postgres refuse to run as root, so when the tests run
// as root the cluster's programs run as the "postgres" OS user (set
// INTAKE_DRILL_PG_USER to use another) in a directory owned by that user;
// INTAKE_DRILL_PG_BIN names the directory holding initdb and pg_ctl when
// they are not under /usr/lib/postgresql/*/bin or on PATH.
//
// The proxy is written here (about 250 lines) rather than taken from
// toxiproxy: the drills need three behaviours (close, hold, drop silently)
// and nothing else, and it keeps the module's dependencies unchanged.
package faultdrill
