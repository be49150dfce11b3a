package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/intake/intake/internal/testkit"
)

// BenchmarkHTTPSubmit runs whole submits through real HTTP, the handler and
// Postgres, 8 at a time: with -cpuprofile it shows where the API's own time
// goes next to the database's.
//
//	go test -run '^$' -bench HTTPSubmit -cpuprofile cpu.out ./internal/httpapi
func BenchmarkHTTPSubmit(b *testing.B) {
	api := testkit.StartAPI(b, nil)
	slug := api.CreatePosting(b, "go-engineer")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := fmt.Sprintf(`{"full_name":"Ada Lovelace","email":"ada%d@example.com","links":["https://example.com/ada"]}`, i)
			req, _ := http.NewRequest(http.MethodPost, api.URL+"/api/v1/jobs/"+slug+"/applications", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", i))
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
}
