package job

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/mail"
)

// A send is counted by result and reply class only: nothing of the
// message or the server's text.
func TestEmailSendCountedByResultAndCodeClass(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	m.EmailSend(time.Millisecond, nil)
	m.EmailSend(time.Millisecond, &mail.Failure{Code: 451})
	m.EmailSend(time.Millisecond, &mail.Failure{})
	m.EmailSend(time.Millisecond, errors.New("render failed"))
	m.EmailSend(time.Millisecond, &mail.Failure{Permanent: true, Code: 550})

	for labels, want := range map[[2]string]float64{
		{SendSent, "2xx"}: 1, {SendTemporary, "4xx"}: 1, {SendTemporary, "none"}: 2, {SendPermanent, "5xx"}: 1,
	} {
		require.Equal(t, want, testutil.ToFloat64(m.emailSends.WithLabelValues(labels[0], labels[1])), "%v", labels)
	}
	require.Equal(t, 4, testutil.CollectAndCount(m.emailSends))
	require.Equal(t, 3, testutil.CollectAndCount(m.emailDuration))
}

// A nil *Metrics (a worker built without metrics, the job tests) counts
// nothing and does not panic.
func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.EmailSend(time.Second, nil)
	m.AnalyticsRecord(nil, time.Now())
	m.RelayRound(time.Second, 1, nil)
	m.Heartbeat(time.Now())
}

// A recorded event's lag is observed from its commit; a failed one is only
// counted.
func TestAnalyticsLag(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	m.AnalyticsRecord(nil, time.Now().Add(-90*time.Second))
	m.AnalyticsRecord(errors.New("sink down"), time.Now().Add(-time.Hour))
	var h dto.Metric
	require.NoError(t, m.analyticsLag.Write(&h))
	require.EqualValues(t, 1, h.GetHistogram().GetSampleCount())
	require.InDelta(t, 90, h.GetHistogram().GetSampleSum(), 5)
}
