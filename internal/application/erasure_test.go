package application_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
)

func TestErasureEmail(t *testing.T) {
	t.Parallel()
	got, err := application.ErasureEmail("  Ada@Example.COM ")
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", got, "found by the form uniqueness is decided on")
	for _, bad := range []string{"", "   ", "ada", strings.Repeat("a", 250) + "@b.co"} {
		_, err := application.ErasureEmail(bad)
		var v *application.ValidationError
		require.ErrorAs(t, err, &v, bad)
		require.Equal(t, "email", v.Errors[0].Field)
	}
}
