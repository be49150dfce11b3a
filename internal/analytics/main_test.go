package analytics_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Test HTTP servers and database pools are closed at cleanup: nothing may
// outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
