package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The knee is the highest rate the system kept up with whole: a faster
// rate that shed a request, lost an email or went past the p99 bound does
// not count, even when a slower one after it in the list did.
func TestKneeOf(t *testing.T) {
	t.Parallel()
	kept := func(rate, p99 float64) E2ERow {
		return E2ERow{Rate: rate, Sent: 10, Created: 10, Delivery: Latency{P99: p99}}
	}
	shed := kept(800, 100)
	shed.Created = 9
	missing := kept(900, 100)
	missing.Missing = 1

	for name, tc := range map[string]struct {
		rows []E2ERow
		knee float64
	}{
		"none":                  {nil, 0},
		"all kept up":           {[]E2ERow{kept(50, 10), kept(500, 200)}, 500},
		"p99 over the bound":    {[]E2ERow{kept(50, 10), kept(500, 1000.5)}, 50},
		"p99 at the bound":      {[]E2ERow{kept(500, 1000)}, 500},
		"shed or missing":       {[]E2ERow{kept(200, 10), shed, missing}, 200},
		"order does not matter": {[]E2ERow{kept(700, 10), kept(100, 10)}, 700},
	} {
		require.Equal(t, tc.knee, kneeOf(tc.rows), name)
	}
}
