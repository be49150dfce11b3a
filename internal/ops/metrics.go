package ops

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReadyGauge reports intake_ready: 1 when ready returns nil, 0 when not, so
// that an alert sees what /readyz answers without a prober. ready runs at
// most once every maxAge, whatever the scrape rate.
func ReadyGauge(ready func(context.Context) error, maxAge time.Duration) prometheus.Collector {
	return &readyGauge{ready: ready, maxAge: maxAge}
}

var descReady = prometheus.NewDesc("intake_ready", "1 when this process's /readyz answers 200, 0 when it answers 503.", nil, nil)

type readyGauge struct {
	ready  func(context.Context) error
	maxAge time.Duration

	mu    sync.Mutex
	at    time.Time
	value float64
}

func (g *readyGauge) Describe(ch chan<- *prometheus.Desc) { ch <- descReady }

func (g *readyGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.at) >= g.maxAge {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g.value = 0
		if g.ready(ctx) == nil {
			g.value = 1
		}
		cancel()
		g.at = time.Now()
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, g.value)
}
