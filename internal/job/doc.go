// Package job holds the River side of Intake: the job args (ids only, so
// erasure never has to chase copies), the workers that send the
// confirmation email and record the analytics event (the http sink's: the
// relay writes the Postgres sink's records itself), the leader's periodic
// jobs (retention, the reconciler, the weekly report), their retry
// schedule, and the River client's configuration.
package job
