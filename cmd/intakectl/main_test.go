package main

import (
	"testing"

	"go.uber.org/goleak"
)

// run opens and closes a pool per command: nothing may outlive it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
