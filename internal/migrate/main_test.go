package migrate_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every pool, migrator and lock connection a test opens is closed by the
// time it ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
