package statustoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MinSecretBytes is the shortest secret accepted: 256 bits, the size of
// HMAC-SHA256's output, so the secret is never the weaker part.
const MinSecretBytes = 32

// tokenBytes is how much of the MAC a token keeps: 128 bits are out of
// reach of guessing through the status endpoint, and make a 22-character
// token.
const tokenBytes = 16

// Labels separate what is derived from the same secret: a status token can
// never be used as a CSRF token, nor the other way round.
const (
	label       = "intake status token v1\x00"
	csrfLabel   = "intake csrf token v1\x00"
	cursorLabel = "intake admin cursor v1\x00"
)

// ParseSecret decodes a secret as INTAKE_STATUS_SECRET gives it:
//
//   - "hex:" followed by hex digits, or "base64:" followed by base64
//     (standard or URL alphabet, padding optional), decodes as it says;
//   - without a prefix, a string of hex digits of even length is hex, and
//     anything else is base64.
//
// The decoded secret must be at least MinSecretBytes long. Surrounding
// white space (a secret read from a file keeps its newline) is ignored.
// Errors never quote the secret.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	var (
		secret []byte
		err    error
	)
	switch {
	case strings.HasPrefix(s, "hex:"):
		secret, err = decodeHex(strings.TrimPrefix(s, "hex:"))
	case strings.HasPrefix(s, "base64:"):
		secret, err = decodeBase64(strings.TrimPrefix(s, "base64:"))
	case len(s)%2 == 0 && isHex(s):
		secret, err = decodeHex(s)
	default:
		secret, err = decodeBase64(s)
	}
	if err != nil {
		return nil, err
	}
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("must be at least %d bytes, not %d (make one with `openssl rand -hex 32`)", MinSecretBytes, len(secret))
	}
	return secret, nil
}

// NewSecret returns a fresh random secret of MinSecretBytes, written as
// ParseSecret reads it ("hex:…"), for programs that start the binaries
// with a secret of their own (intakectl dev, the benchmark harness).
func NewSecret() string {
	secret := make([]byte, MinSecretBytes)
	_, _ = rand.Read(secret) // crypto/rand's Read never fails
	return "hex:" + hex.EncodeToString(secret)
}

func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return s != ""
}

func decodeHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("is not valid hex")
	}
	return b, nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("is neither hex nor base64 (prefix it with hex: or base64: to say which)")
	}
	return b, nil
}

// Keys derive tokens with the current secret and accept tokens of the
// current and, during a rotation, the previous secret. The zero Keys holds
// no secret and panics when used: an HMAC under an empty key would be a
// token anyone can compute.
type Keys struct {
	current  []byte
	previous []byte
}

// NewKeys returns Keys for current and previous (nil when no rotation is
// under way). Both must be at least MinSecretBytes long.
func NewKeys(current, previous []byte) (Keys, error) {
	if len(current) < MinSecretBytes {
		return Keys{}, fmt.Errorf("current secret is %d bytes, want at least %d", len(current), MinSecretBytes)
	}
	if previous != nil && len(previous) < MinSecretBytes {
		return Keys{}, fmt.Errorf("previous secret is %d bytes, want at least %d", len(previous), MinSecretBytes)
	}
	return Keys{current: current, previous: previous}, nil
}

// Derive returns the status token of an application: base64url, without
// padding, of the first 128 bits of HMAC-SHA256(secret, label || id).
func (k Keys) Derive(applicationID string) string {
	return mac(k.mustCurrent(), label, applicationID)
}

// Verify reports whether token is the application's token under the
// current or the previous secret. Comparisons take the same time whatever
// the token says.
func (k Keys) Verify(applicationID, token string) bool {
	return k.verify(label, applicationID, token)
}

// CSRFToken signs a form session id (the value of the CSRF cookie): the
// web form carries it, so a token only verifies beside the cookie the
// server issued it for.
func (k Keys) CSRFToken(session string) string {
	return mac(k.mustCurrent(), csrfLabel, session)
}

// VerifyCSRF reports whether token is session's CSRF token under the
// current or the previous secret, in constant time.
func (k Keys) VerifyCSRF(session, token string) bool {
	return k.verify(csrfLabel, session, token)
}

// CursorMAC signs an admin page cursor: msg holds the cursor's position
// and the filters it was made under, so a cursor altered, cut short or
// replayed under other filters does not verify.
func (k Keys) CursorMAC(msg string) string {
	return mac(k.mustCurrent(), cursorLabel, msg)
}

// VerifyCursor reports whether tag is msg's cursor MAC under the current or
// the previous secret, in constant time.
func (k Keys) VerifyCursor(msg, tag string) bool {
	return k.verify(cursorLabel, msg, tag)
}

// verify reports whether tag is msg's MAC under label with the current or
// the previous secret. Both comparisons always run, in constant time, so
// the answer's timing says nothing about which secret (if any) matched.
func (k Keys) verify(label, msg, tag string) bool {
	ok := hmac.Equal([]byte(tag), []byte(mac(k.mustCurrent(), label, msg)))
	if k.previous != nil {
		ok = hmac.Equal([]byte(tag), []byte(mac(k.previous, label, msg))) || ok
	}
	return ok
}

// Rotating reports whether a previous secret is accepted too.
func (k Keys) Rotating() bool { return k.previous != nil }

// String and GoString keep the secrets out of anything that prints Keys
// (or a struct holding them, like config.Config) with fmt.
func (k Keys) String() string { return "statustoken.Keys{xxxxx}" }

func (k Keys) GoString() string { return k.String() }

func (k Keys) mustCurrent() []byte {
	if len(k.current) == 0 {
		panic("statustoken: Keys without a secret; use NewKeys")
	}
	return k.current
}

// mac is base64url, without padding, of the first 128 bits of
// HMAC-SHA256(secret, label || msg).
func mac(secret []byte, label, msg string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(label))
	h.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:tokenBytes])
}
