package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// scrapeValue reads one series from the worker's /metrics; -1 when absent.
func scrapeValue(t *testing.T, w *worker, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + w.opsAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}

// The failure matrix's "SMTP temporary failure" as operators see it: the
// email retry backlog rises while the server is down, then drains.
func TestMetricsFollowSMTPOutage(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	mailSrv := testkit.StartSMTP(t)
	mailSrv.Stop()
	slug := api.CreatePosting(t, "go-engineer")
	w := startWorker(t, api.DBURL, mailSrv, nil)

	const n = 5
	for i := range n {
		submit(t, api, slug, "applicant"+strconv.Itoa(i)+"@example.com")
	}
	waitFor(t, 20*time.Second, "temporary failures counted and emails retrying", func() bool {
		return scrapeValue(t, w, `intake_email_sends_total{code_class="none",result="temporary"}`) >= n &&
			scrapeValue(t, w, `intake_deliveries{state="retrying"}`) >= 1
	})
	require.Equal(t, 0.0, scrapeValue(t, w, `intake_email_sends_total{code_class="2xx",result="sent"}`))

	mailSrv.Start()
	mailSrv.WaitMessages(t, n, 20*time.Second)
	waitFor(t, 20*time.Second, "the backlog to drain", func() bool {
		return scrapeValue(t, w, `intake_email_sends_total{code_class="2xx",result="sent"}`) == n &&
			scrapeValue(t, w, `intake_deliveries{state="retrying"}`) == 0 &&
			scrapeValue(t, w, `intake_deliveries{state="queued"}`) == 0 &&
			scrapeValue(t, w, `intake_jobs{kind="confirmation_email",state="retryable"}`) == 0
	})
	require.Equal(t, float64(n), scrapeValue(t, w, `intake_analytics_records_total{result="recorded"}`))
	// No connection opened during the outage; at most one per email
	// after it (fewer when their retries did not overlap).
	opened := scrapeValue(t, w, `intake_smtp_connections_opened_total`)
	require.GreaterOrEqual(t, opened, 1.0)
	require.LessOrEqual(t, opened, float64(n))
	require.Greater(t, scrapeValue(t, w, `intake_relay_round_duration_seconds_count{result="ok"}`), 0.0)
	require.Less(t, scrapeValue(t, w, `intake_worker_heartbeat_age_seconds`), 10.0)
	require.Equal(t, 1.0, scrapeValue(t, w, `intake_ready`))
}
