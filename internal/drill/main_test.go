//go:build drills

package drill

import (
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	began := time.Now()
	code := m.Run()
	printSummary(time.Since(began))
	os.Exit(code)
}
