//go:build drills

package drill

import (
	"os"
	"testing"
	"time"

	"github.com/intake/intake/internal/testkit"
)

func TestMain(m *testing.M) {
	began := time.Now()
	code := m.Run()
	testkit.RemoveBinaries()
	printSummary(time.Since(began))
	os.Exit(code)
}
