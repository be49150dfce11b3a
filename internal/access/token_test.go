package access_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/access"
)

func TestTokenFormat(t *testing.T) {
	t.Parallel()
	tok := access.NewToken()
	require.Len(t, tok, access.TokenLen)
	require.Equal(t, 63, access.TokenLen)
	require.True(t, strings.HasPrefix(tok, "intk_"))
	require.True(t, access.CheckTokenFormat(tok))
	require.NotEqual(t, tok, access.NewToken())

	// Every single-character typo is caught by the checksum or the alphabet.
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	for i := len(access.TokenPrefix); i < len(tok); i++ {
		for _, r := range alphabet + "A0-_ " {
			if byte(r) == tok[i] {
				continue
			}
			typo := tok[:i] + string(r) + tok[i+1:]
			require.False(t, access.CheckTokenFormat(typo), "typo at %d: %q", i, typo)
		}
	}
	for _, bad := range []string{"", "intk_", tok[:len(tok)-1], tok + "a", "INTK_" + tok[5:], "ghp_" + tok[4:]} {
		require.False(t, access.CheckTokenFormat(bad), bad)
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	require.True(t, access.RoleAdmin.Allows(access.RoleViewer))
	require.True(t, access.RoleAdmin.Allows(access.RoleAdmin))
	require.True(t, access.RoleViewer.Allows(access.RoleViewer))
	require.False(t, access.RoleViewer.Allows(access.RoleAdmin))
	require.False(t, access.Role("root").Allows(access.RoleViewer))
	require.False(t, access.RoleAdmin.Allows(access.Role("root")))
}
