package httpapi_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/testkit"
)

// metricValue reads one sample (name and labels exactly as exposed) from
// Prometheus's text format; -1 when the series is absent.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

func TestSubmitOutcomesCounted(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	closed := api.CreatePosting(t, "closed-role")
	_, err := api.Pool.Exec(context.Background(), `UPDATE postings SET status = 'closed' WHERE slug = $1`, closed)
	require.NoError(t, err)

	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", validBody).Status)
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", validBody).Status)
	require.Equal(t, http.StatusConflict, api.Submit(t, slug, "key-2", validBody).Status)
	require.Equal(t, http.StatusUnprocessableEntity, api.Submit(t, slug, "key-1", `{"full_name":"Ada","email":"other@example.com"}`).Status)
	require.Equal(t, http.StatusUnprocessableEntity, api.Submit(t, slug, "key-3", `{"full_name":"","email":"nope"}`).Status)
	require.Equal(t, http.StatusBadRequest, api.Submit(t, slug, "key-4", `{"full_name":`).Status)
	require.Equal(t, http.StatusBadRequest, api.Submit(t, slug, "", validBody).Status)
	require.Equal(t, http.StatusNotFound, api.Submit(t, "no-such-job", "key-5", validBody).Status)
	require.Equal(t, http.StatusConflict, api.Submit(t, closed, "key-6", validBody).Status)

	text := api.Metrics(t)
	for outcome, want := range map[string]float64{
		"created": 1, "replayed": 1, "duplicate": 1, "key_reused": 1, "validation": 1, "invalid": 2,
		"not_found": 1, "closed": 1, "rate_limited": 0, "unavailable": 0, "in_flight": 0, "error": 0,
	} {
		require.Equal(t, want, metricValue(t, text, `intake_submits_total{outcome="`+outcome+`"}`), outcome)
	}
}

func TestSubmitRateLimitedCounted(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) { c.RateLimit, c.RateBurst = 0.01, 1 }})
	slug := api.CreatePosting(t, "go-engineer")
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", validBody).Status)
	require.Equal(t, http.StatusTooManyRequests, api.Submit(t, slug, "key-2", validBody).Status)
	text := api.Metrics(t)
	require.Equal(t, 1.0, metricValue(t, text, `intake_submits_total{outcome="created"}`))
	require.Equal(t, 1.0, metricValue(t, text, `intake_submits_total{outcome="rate_limited"}`))
}

// Routes are patterns, an unknown path is "unmatched", and the public
// address serves no metrics: the path of a request never becomes a label.
func TestRequestsCountedByRoutePattern(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	res := api.Submit(t, slug, "key-1", validBody)
	require.Equal(t, http.StatusCreated, res.Status)

	require.Equal(t, http.StatusOK, api.Do(t, http.MethodGet, "/api/v1/jobs/"+slug, "").Status)
	require.Equal(t, http.StatusNotFound, api.Do(t, http.MethodGet, "/api/v1/jobs/no-such-job", "").Status)
	require.Equal(t, http.StatusNotFound, api.Do(t, http.MethodGet, "/metrics", "").Status)
	require.Equal(t, http.StatusNotFound, api.Do(t, http.MethodGet, "/ada@example.com/Ada%20Lovelace", "").Status)
	require.Equal(t, http.StatusNotFound, api.Do(t, "BREW", "/api/v1/jobs", "").Status)

	text := api.Metrics(t)
	require.Equal(t, 1.0, metricValue(t, text, `intake_http_requests_total{code="201",method="POST",route="/api/v1/jobs/:slug/applications"}`))
	require.Equal(t, 1.0, metricValue(t, text, `intake_http_requests_total{code="200",method="GET",route="/api/v1/jobs/:slug"}`))
	require.Equal(t, 1.0, metricValue(t, text, `intake_http_requests_total{code="404",method="GET",route="/api/v1/jobs/:slug"}`))
	require.Equal(t, 2.0, metricValue(t, text, `intake_http_requests_total{code="404",method="GET",route="unmatched"}`))
	require.Equal(t, 1.0, metricValue(t, text, `intake_http_request_duration_seconds_count{method="POST",route="/api/v1/jobs/:slug/applications"}`))
	require.Equal(t, 1.0, metricValue(t, text, `intake_http_requests_total{code="404",method="other",route="unmatched"}`))
	require.NotContains(t, text, "BREW")
	// The access log names routes the same way.
	require.Contains(t, api.Logs.String(), `"route":"unmatched","status":404`)
	require.NotContains(t, api.Logs.String(), `"route":"/*"`)
	require.NotContains(t, text, "no-such-job")

	// Nothing the applicant sent, in a body or a path, is in any label.
	for _, personal := range []string{"Ada", "Lovelace", "ada@example.com", "7946", "engines", "example.com"} {
		require.NotContains(t, text, personal)
	}
}
