package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/intake/intake/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testkit.RemoveBinaries()
		os.Exit(code)
	}))
}
