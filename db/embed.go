// Package db holds the SQL that defines and queries Intake's schema: the
// migrations (embedded, applied by intakectl migrate) and the queries that
// sqlc turns into internal/postgres/dbsqlc.
package db

import "embed"

// Migrations are the application's goose migrations, in order.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// RiverJobCounts reads River's own job table for intakectl status.
//
//go:embed river/job_counts.sql
var RiverJobCounts string

// DeliveriesAbandon ends the deliveries whose confirmation job is gone
// ($1: how long a row must have been left alone).
//
//go:embed river/deliveries_abandon.sql
var DeliveriesAbandon string

// DeliveriesReconcile marks reconciled the deliveries whose confirmation
// job is gone and that were never reconciled ($1: how long a row must have
// been left alone, $2: the most rows).
//
//go:embed river/deliveries_reconcile.sql
var DeliveriesReconcile string

// RiverAnalyticsLastError reads the last error of a retrying analytics job
// for intakectl status.
//
//go:embed river/analytics_last_error.sql
var RiverAnalyticsLastError string

// RiverMetricsJobs counts River's live jobs by kind and state, each state
// capped ($1), for the worker's metrics.
//
//go:embed river/metrics_jobs.sql
var RiverMetricsJobs string

// RiverMetricsOldest reads how long each queue's next job has waited ($1:
// the queues), for the worker's metrics.
//
//go:embed river/metrics_oldest.sql
var RiverMetricsOldest string

// RiverConfirmationCancel cancels an erased application's unfinished
// confirmation jobs ($1: the application id).
//
//go:embed river/confirmation_cancel.sql
var RiverConfirmationCancel string

// RiverJobsRescue finalizes the running jobs of workers whose heartbeat is
// older than $1, and returns them (id, kind, state, dead worker, id of the
// job that runs it again); RiverJobsRescueInsert, in the same transaction,
// inserts those new jobs from the finalized rows' ids ($1).
//
//go:embed river/jobs_rescue.sql
var RiverJobsRescue string

//go:embed river/jobs_rescue_insert.sql
var RiverJobsRescueInsert string
