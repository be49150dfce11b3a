package devmail_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Close stops every server goroutine a catcher starts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
