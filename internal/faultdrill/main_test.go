//go:build drills

package faultdrill

import (
	"os"
	"testing"

	"github.com/intake/intake/internal/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBinaries()
	os.Exit(code)
}
