package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// Metrics are the API's Prometheus metrics. Every label value comes from a
// closed set (route patterns, methods, status codes, outcomes), never from
// the request's bytes: a path carries ids, a body personal data.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	submits  *prometheus.CounterVec
}

// Submit outcomes, the values of intake_submits_total's outcome label.
const (
	outcomeCreated     = "created"
	outcomeReplayed    = "replayed"
	outcomeDuplicate   = "duplicate"
	outcomeValidation  = "validation"
	outcomeInvalid     = "invalid" // malformed request: body, key, media type, size, CSRF
	outcomeRateLimited = "rate_limited"
	outcomeUnavailable = "unavailable"
	outcomeOverloaded  = "overloaded"
	outcomeInFlight    = "in_flight"
	outcomeKeyReused   = "key_reused"
	outcomeNotFound    = "not_found"
	outcomeClosed      = "closed"
	outcomeError       = "error"
)

var submitOutcomes = []string{
	outcomeCreated, outcomeReplayed, outcomeDuplicate, outcomeValidation, outcomeInvalid, outcomeRateLimited,
	outcomeUnavailable, outcomeOverloaded, outcomeInFlight, outcomeKeyReused, outcomeNotFound, outcomeClosed, outcomeError,
}

// NewMetrics registers the API's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intake_http_requests_total",
			Help: "HTTP requests by route pattern (\"unmatched\" for unknown paths), method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "intake_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		submits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intake_submits_total",
			Help: "Applications submitted (JSON API and form) by outcome.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.requests, m.duration, m.submits)
	// Every outcome from the start, so rate() sees the first one.
	for _, o := range submitOutcomes {
		m.submits.WithLabelValues(o)
	}
	return m
}

// countRequests observes every request once its status is final (it wraps
// accessLog, which renders errors); routes is as for routeOf.
func countRequests(m *Metrics, routes map[string]bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if m == nil {
			return next
		}
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			route := routeOf(c, routes)
			method := metricMethod(c.Request().Method)
			m.requests.WithLabelValues(route, method, strconv.Itoa(c.Response().Status)).Inc()
			m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
			return err
		}
	}
}

// metricMethod keeps the method label bounded: a client may send any token.
func metricMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	default:
		return "other"
	}
}

const submitOutcomeKey = "submit_outcome"

// countSubmits counts one outcome per submit request. The handler names it
// (setSubmitOutcome) when the submission ran; otherwise it comes from the
// error (a refused key, a rate limit, bad JSON) or the status rendered.
func countSubmits(m *Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if m == nil {
			return next
		}
		return func(c echo.Context) error {
			err := next(c)
			outcome, _ := c.Get(submitOutcomeKey).(string)
			switch {
			case outcome != "":
			case err != nil:
				outcome = outcomeForStatus(problemFor(err).Status, err)
			default:
				outcome = outcomeForStatus(c.Response().Status, nil)
			}
			m.submits.WithLabelValues(outcome).Inc()
			return err
		}
	}
}

// setSubmitOutcome records what the submission did for countSubmits.
func setSubmitOutcome(c echo.Context, res application.SubmitResult, err error) {
	var verr *application.ValidationError
	var outcome string
	switch {
	case err == nil && res.Replayed:
		outcome = outcomeReplayed
	case err == nil:
		outcome = outcomeCreated
	case errors.As(err, &verr):
		outcome = outcomeValidation
	case errors.Is(err, application.ErrDuplicateApplication):
		outcome = outcomeDuplicate
	case errors.Is(err, application.ErrIdempotencyKeyReused):
		outcome = outcomeKeyReused
	case errors.Is(err, application.ErrIdempotencyKeyInFlight):
		outcome = outcomeInFlight
	default:
		outcome = outcomeForStatus(problemFor(err).Status, err)
	}
	c.Set(submitOutcomeKey, outcome)
}

func outcomeForStatus(status int, err error) string {
	switch {
	case errors.Is(err, application.ErrPostingClosed):
		return outcomeClosed
	case errors.Is(err, errOverloaded), errors.Is(err, postgres.ErrBusy):
		return outcomeOverloaded
	case status == http.StatusNotFound:
		return outcomeNotFound
	case status == http.StatusConflict:
		return outcomeClosed // the form renders a closed posting without an error
	case status == http.StatusUnprocessableEntity:
		return outcomeValidation
	case status == http.StatusTooManyRequests:
		return outcomeRateLimited
	case status == http.StatusServiceUnavailable:
		return outcomeUnavailable
	case status >= 400 && status < 500:
		return outcomeInvalid
	default:
		return outcomeError
	}
}
