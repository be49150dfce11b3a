package main

import (
	"testing"

	"go.uber.org/goleak"
)

// run starts a server, a pool and the waker; when it returns, all of them
// must be gone.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
