package mail_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every sender is closed (its pooled connections and idle timers with it)
// and every test SMTP server stopped at cleanup: nothing may outlive the
// tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
