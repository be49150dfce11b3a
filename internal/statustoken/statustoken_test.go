package statustoken_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/statustoken"
)

const id = "0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0e"

// secret returns n bytes, each the byte b.
func secret(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func keys(t *testing.T, current, previous []byte) statustoken.Keys {
	t.Helper()
	k, err := statustoken.NewKeys(current, previous)
	require.NoError(t, err)
	return k
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	want := make([]byte, 32)
	for i := range want {
		want[i] = byte(i)
	}
	hexed := hex.EncodeToString(want)
	for _, tt := range []struct{ name, value string }{
		{"hex", hexed},
		{"upper-case hex", strings.ToUpper(hexed)},
		{"hex: prefix", "hex:" + hexed},
		{"base64", base64.StdEncoding.EncodeToString(want)},
		{"base64 without padding", base64.RawStdEncoding.EncodeToString(want)},
		{"base64url", base64.URLEncoding.EncodeToString(want)},
		{"base64: prefix", "base64:" + base64.StdEncoding.EncodeToString(want)},
		{"surrounding white space", "  " + hexed + "\n"},
	} {
		got, err := statustoken.ParseSecret(tt.value)
		require.NoError(t, err, tt.name)
		require.Equal(t, want, got, tt.name)
	}

	// Hex digits only, but 88 of them: hex (44 bytes), never base64 (66).
	got, err := statustoken.ParseSecret(strings.Repeat("ab", 44))
	require.NoError(t, err)
	require.Len(t, got, 44)
	// The prefix decides when a base64 secret happens to be all hex digits.
	b64 := strings.Repeat("abcd", 11)
	got, err = statustoken.ParseSecret("base64:" + b64)
	require.NoError(t, err)
	require.Len(t, got, 33)
	// Odd length cannot be hex: base64.
	got, err = statustoken.ParseSecret(strings.Repeat("a", 47))
	require.NoError(t, err)
	require.Len(t, got, 35)
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := statustoken.NewSecret(), statustoken.NewSecret()
	require.NotEqual(t, a, b)
	parsed, err := statustoken.ParseSecret(a)
	require.NoError(t, err)
	require.Len(t, parsed, statustoken.MinSecretBytes)
}

func TestParseSecretRefuses(t *testing.T) {
	t.Parallel()
	const hidden = "S3cr3tPart"
	for _, tt := range []struct{ name, value, msg string }{
		{"empty", "", "at least 32 bytes"},
		{"31 bytes of hex", strings.Repeat("ab", 31), "at least 32 bytes, not 31"},
		{"31 bytes of base64", base64.StdEncoding.EncodeToString(secret(1, 31)), "at least 32 bytes, not 31"},
		{"a short password", "hunter2-" + hidden, "at least 32 bytes, not 13"},
		{"a pass phrase", "correct horse battery staple " + hidden, "neither hex nor base64"},
		{"hex: prefix on base64", "hex:" + base64.StdEncoding.EncodeToString(secret(1, 32)) + hidden, "not valid hex"},
		{"base64: prefix on garbage", "base64:!!" + hidden, "neither hex nor base64"},
	} {
		_, err := statustoken.ParseSecret(tt.value)
		require.ErrorContains(t, err, tt.msg, tt.name)
		require.NotContains(t, err.Error(), hidden, "%s: the error quotes the secret", tt.name)
	}
}

// The token's construction is fixed: every link already handed out depends
// on it. The expected value comes from Python's hmac module.
func TestDeriveKnownAnswer(t *testing.T) {
	t.Parallel()
	s, err := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	require.NoError(t, err)
	require.Equal(t, "-73MOPPxnBvils0j-1gCew", keys(t, s, nil).Derive(id))
}

func TestDerive(t *testing.T) {
	t.Parallel()
	k := keys(t, secret(1, 32), nil)
	token := k.Derive(id)
	require.Regexp(t, regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`), token, "128 bits, URL-safe, no padding")
	require.Equal(t, token, k.Derive(id), "the same id, the same token")
	require.NotEqual(t, token, k.Derive("0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0f"), "another id, another token")
	require.NotEqual(t, token, keys(t, secret(2, 32), nil).Derive(id), "another secret, another token")
}

func TestVerify(t *testing.T) {
	t.Parallel()
	k := keys(t, secret(1, 32), nil)
	token := k.Derive(id)
	require.True(t, k.Verify(id, token))
	require.False(t, k.Verify(id, ""))
	require.False(t, k.Verify(id, token[:21]))
	require.False(t, k.Verify(id, strings.ToLower(token)))
	require.False(t, k.Verify("0190f3a2-7c4e-7b1a-9d2e-5f6a7b8c9d0f", token), "a token opens its own application only")
	require.False(t, k.Verify(id, keys(t, secret(2, 32), nil).Derive(id)), "another secret's token")
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret := secret(1, 32), secret(2, 32)
	before := keys(t, oldSecret, nil)
	during := keys(t, newSecret, oldSecret)
	after := keys(t, newSecret, nil)

	require.False(t, before.Rotating())
	require.True(t, during.Rotating())
	// Mints with the new secret only...
	require.Equal(t, after.Derive(id), during.Derive(id))
	// ...accepts links made before the rotation and after it...
	require.True(t, during.Verify(id, before.Derive(id)))
	require.True(t, during.Verify(id, during.Derive(id)))
	// ...and once the previous secret is dropped, the old links stop working.
	require.False(t, after.Verify(id, before.Derive(id)))
}

func TestNewKeysRefusesShortSecrets(t *testing.T) {
	t.Parallel()
	_, err := statustoken.NewKeys(secret(1, 31), nil)
	require.ErrorContains(t, err, "current secret is 31 bytes")
	_, err = statustoken.NewKeys(secret(1, 32), []byte{})
	require.ErrorContains(t, err, "previous secret is 0 bytes")
}

func TestZeroKeysRefuseToWork(t *testing.T) {
	t.Parallel()
	var k statustoken.Keys
	require.Panics(t, func() { k.Derive(id) }, "an HMAC under an empty key is a token anyone can make")
	require.Panics(t, func() { k.Verify(id, "") })
}

func TestKeysPrintNoSecret(t *testing.T) {
	t.Parallel()
	k := keys(t, []byte(strings.Repeat("secret-bytes-", 3)), nil)
	require.NotContains(t, k.String(), "secret-bytes")
	held := struct{ Keys statustoken.Keys }{k}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		require.NotContains(t, fmt.Sprintf(verb, k), "secret-bytes", verb)
		require.NotContains(t, fmt.Sprintf(verb, held), "secret-bytes", verb)
	}
}

func TestCursorMAC(t *testing.T) {
	t.Parallel()
	old, err := statustoken.NewKeys([]byte(strings.Repeat("o", 32)), nil)
	require.NoError(t, err)
	keys, err := statustoken.NewKeys([]byte(strings.Repeat("n", 32)), []byte(strings.Repeat("o", 32)))
	require.NoError(t, err)

	tag := keys.CursorMAC("applications\x00go-engineer\x00a1 1 x")
	require.True(t, keys.VerifyCursor("applications\x00go-engineer\x00a1 1 x", tag))
	require.False(t, keys.VerifyCursor("applications\x00rust-engineer\x00a1 1 x", tag))
	require.False(t, keys.VerifyCursor("applications\x00go-engineer\x00a1 1 x", tag[:len(tag)-1]))
	// Labelled apart from the other tokens derived from the same secret.
	require.NotEqual(t, keys.CSRFToken("applications\x00go-engineer\x00a1 1 x"), tag)
	// A cursor made before a rotation keeps working while the old secret is the previous one.
	require.True(t, keys.VerifyCursor("audit\x00u1 5", old.CursorMAC("audit\x00u1 5")))
}
