package application_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
)

func TestValidIdempotencyKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{"empty", "", false},
		{"one character", "k", true},
		{"uuid", "0b9d6c2e-5f7a-4c1e-9a53-2f0f3d6f1b7e", true},
		{"at limit", strings.Repeat("k", application.MaxIdempotencyKeyLen), true},
		{"one over limit", strings.Repeat("k", application.MaxIdempotencyKeyLen+1), false},
		{"inner space", "order 42", true},
		{"only a space", " ", true},
		{"every printable ASCII character", printableASCII(), true},
		{"tab", "order\t42", false},
		{"newline", "order\n42", false},
		{"NUL", "order\x0042", false},
		{"DEL", "order\x7f", false},
		{"unit separator", "\x1f", false},
		{"non-ASCII letter", "bestellung-ä", false},
		{"non-ASCII at limit in characters", strings.Repeat("é", application.MaxIdempotencyKeyLen/2), false},
		{"invalid UTF-8", "key-\xff", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, application.ValidIdempotencyKey(tt.key), "%s: ValidIdempotencyKey(%q)", tt.name, tt.key)
	}
}

func printableASCII() string {
	var b strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	return b.String()
}

func TestMinIdempotencyKeyTTL(t *testing.T) {
	t.Parallel()
	// SPEC invariant 3: keys live at least 24 h.
	require.GreaterOrEqual(t, application.MinIdempotencyKeyTTL, 24*time.Hour)
	require.Equal(t, 255, application.MaxIdempotencyKeyLen, "SPEC section 3: 1 to 255 characters")
}
