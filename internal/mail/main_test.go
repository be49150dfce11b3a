package mail_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every send opens and closes its own connection, and every test SMTP
// server is stopped at cleanup: nothing may outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
