package job

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/intake/intake/internal/mail"
)

// Metrics are the worker's event metrics: what happened, counted as it
// happens (the states and backlogs come from postgres.Gauges). Labels name
// results, classes and kinds only, never an address or an id. A nil
// *Metrics counts nothing.
type Metrics struct {
	emailSends    *prometheus.CounterVec
	emailDuration *prometheus.HistogramVec
	analytics     *prometheus.CounterVec
	analyticsLag  prometheus.Histogram
	relayRound    *prometheus.HistogramVec
	relayEvents   prometheus.Histogram
	rescues       *prometheus.CounterVec
	lastHeartbeat atomic.Int64 // unix nanoseconds
}

// Email send results, the values of intake_email_sends_total's result label.
const (
	SendSent      = "sent"
	SendTemporary = "temporary"
	SendPermanent = "permanent"
)

// NewMetrics registers the worker's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		emailSends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intake_email_sends_total",
			Help: "SMTP sends of confirmation emails by result (sent, temporary, permanent) and reply code class (2xx, 4xx, 5xx, none).",
		}, []string{"result", "code_class"}),
		emailDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "intake_email_send_duration_seconds",
			Help:    "Time of one SMTP send, from taking a pooled connection or dialing a new one to the server's last reply, by result.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		analyticsLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "intake_analytics_lag_seconds",
			Help:    "Time from an event's commit to its analytics record (retries and outages included).",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, 72 * 3600},
		}),
		analytics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intake_analytics_records_total",
			Help: "Analytics records by result: recorded (by the relay's round with the postgres sink, by an analytics job with the http sink), failed (an analytics job's failed try).",
		}, []string{"result"}),
		relayRound: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "intake_relay_round_duration_seconds",
			Help:    "Outbox relay rounds (claim, insert jobs, mark dispatched: one transaction) by result (ok, error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"result"}),
		relayEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "intake_relay_round_events",
			Help:    "Outbox events dispatched or quarantined per successful relay round.",
			Buckets: []float64{0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
		}),
		rescues: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intake_job_rescues_total",
			Help: "Jobs run again after their worker died (rescued from its stopped heartbeat, or by River's rescuer), by kind.",
		}, []string{"kind"}),
	}
	heartbeatAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "intake_worker_heartbeat_age_seconds",
		Help: "Time since this worker last recorded its heartbeat (intakectl status counts a worker as running within 15 s).",
	}, func() float64 {
		last := m.lastHeartbeat.Load()
		if last == 0 {
			return 0
		}
		return time.Since(time.Unix(0, last)).Seconds()
	})
	reg.MustRegister(m.emailSends, m.emailDuration, m.analytics, m.analyticsLag, m.relayRound, m.relayEvents, m.rescues, heartbeatAge)
	// The series alerts divide by exist from the start.
	for _, r := range []string{SendSent, SendTemporary, SendPermanent} {
		m.emailDuration.WithLabelValues(r)
	}
	m.emailSends.WithLabelValues(SendSent, "2xx")
	m.analytics.WithLabelValues("recorded")
	m.analytics.WithLabelValues("failed")
	for _, kind := range []string{ConfirmationEmailArgs{}.Kind(), AnalyticsEventArgs{}.Kind()} {
		m.rescues.WithLabelValues(kind)
	}
	return m
}

// EmailSend counts one SMTP send and its duration.
func (m *Metrics) EmailSend(took time.Duration, err error) {
	if m == nil {
		return
	}
	result, class := SendSent, "2xx"
	if err != nil {
		var failure *mail.Failure
		result, class = SendTemporary, "none"
		if errors.As(err, &failure) {
			if failure.Permanent {
				result = SendPermanent
			}
			if failure.Code >= 400 && failure.Code < 600 {
				class = strconv.Itoa(failure.Code/100) + "xx"
			}
		}
	}
	m.emailSends.WithLabelValues(result, class).Inc()
	m.emailDuration.WithLabelValues(result).Observe(took.Seconds())
}

// AnalyticsRecord counts one event given to the sink and, once recorded,
// how long after the event's commit (occurredAt) that was. The analytics
// job calls it for each try; the relay, which writes the Postgres sink's
// records in its rounds, for each record a committed round wrote (a round
// that fails writes none and is counted as a failed round instead).
func (m *Metrics) AnalyticsRecord(err error, occurredAt time.Time) {
	if m == nil {
		return
	}
	result := "recorded"
	if err != nil {
		result = "failed"
	} else {
		m.analyticsLag.Observe(time.Since(occurredAt).Seconds())
	}
	m.analytics.WithLabelValues(result).Inc()
}

// RelayRound observes one relay round: its duration, and the events it
// handled when it committed.
func (m *Metrics) RelayRound(took time.Duration, events int, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.relayRound.WithLabelValues("error").Observe(took.Seconds())
		return
	}
	m.relayRound.WithLabelValues("ok").Observe(took.Seconds())
	m.relayEvents.Observe(float64(events))
}

// Heartbeat notes that the worker's heartbeat was recorded at t.
func (m *Metrics) Heartbeat(t time.Time) {
	if m == nil {
		return
	}
	m.lastHeartbeat.Store(t.UnixNano())
}

// rescuerError is the error River's rescuer records on a job it found
// stuck (riverqueue/river internal/maintenance/job_rescuer.go);
// heartbeatRescuePrefix begins the one a heartbeat records on a dead
// worker's job (db/river/jobs_rescue.sql).
const (
	rescuerError          = "Stuck job rescued by JobRescuer"
	heartbeatRescuePrefix = "rescued from dead worker "
)

// rescueCounter is River worker middleware that counts a job's run after a
// rescue: River has no event for it, but the rescue is the last error the
// job carries.
type rescueCounter struct {
	river.MiddlewareDefaults
	metrics *Metrics
}

func (r *rescueCounter) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if n := len(job.Errors); n > 0 && (job.Errors[n-1].Error == rescuerError || strings.HasPrefix(job.Errors[n-1].Error, heartbeatRescuePrefix)) {
		r.metrics.rescues.WithLabelValues(job.Kind).Inc()
	}
	return doInner(ctx)
}
