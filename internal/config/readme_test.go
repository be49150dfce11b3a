package config_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/config"
)

// The README's configuration table is the operators' reference: it must
// list every variable the code reads, with the code's default.
func TestREADMEConfigurationTableMatchesCode(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| (?:`([^`]*)`|\\(empty\\)) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = m[2]
	}

	for _, v := range config.Vars {
		def, ok := documented[v.Name]
		require.True(t, ok, "README's configuration table does not list %s", v.Name)
		require.Equal(t, v.Default, def, "README's default for %s", v.Name)
		delete(documented, v.Name)
	}
	require.Empty(t, documented, "README documents variables the code does not read")
}
