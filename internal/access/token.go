package access

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/intake/intake/internal/application"
)

// TokenPrefix starts every admin token, so secret scanners can recognise a
// leaked one and a reader can tell it from other secrets.
const TokenPrefix = "intk_"

const (
	secretBytes   = 32 // 256 random bits
	checksumBytes = 4  // CRC-32 of the secret
)

// Lower-case base32 without padding: no characters that need escaping in a
// header or a shell, and a double click selects the whole token.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// TokenLen is the length of every admin token.
var TokenLen = len(TokenPrefix) + tokenEncoding.EncodedLen(secretBytes+checksumBytes)

// ErrTokenInvalid: no token, a malformed one, or one that is unknown,
// revoked or expired. Callers answer all of them alike.
var ErrTokenInvalid = errors.New("invalid token")

// NewToken returns a fresh admin token: the prefix, then base32 of 32
// random bytes followed by their CRC-32.
func NewToken() string {
	buf := make([]byte, secretBytes+checksumBytes)
	_, _ = rand.Read(buf[:secretBytes]) // crypto/rand's Read never fails
	binary.BigEndian.PutUint32(buf[secretBytes:], crc32.ChecksumIEEE(buf[:secretBytes]))
	return TokenPrefix + tokenEncoding.EncodeToString(buf)
}

// CheckTokenFormat reports whether token has the prefix, the length and a
// checksum that matches, without any database read: a mistyped or
// truncated token stops here. The checksum is compared in constant time.
func CheckTokenFormat(token string) bool {
	if len(token) != TokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return false
	}
	body := token[len(TokenPrefix):]
	buf, err := tokenEncoding.DecodeString(body)
	// The last character carries two unused bits; only the canonical
	// spelling is a token, so a typo there is refused here too.
	if err != nil || len(buf) != secretBytes+checksumBytes || tokenEncoding.EncodeToString(buf) != body {
		return false
	}
	var want [checksumBytes]byte
	binary.BigEndian.PutUint32(want[:], crc32.ChecksumIEEE(buf[:secretBytes]))
	return subtle.ConstantTimeCompare(want[:], buf[secretBytes:]) == 1
}

// HashToken is what the database keeps of a token: its SHA-256. A token is
// 256 random bits, so no slow password hash is needed (there is nothing to
// guess), and lookup by hash means the database never compares secrets.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Token is an admin token as stored: never the token itself.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// NewTokenSpec is the input for minting a token.
type NewTokenSpec struct {
	Name      string
	Role      Role
	ExpiresAt *time.Time
}

// MaxTokenNameLen matches the database's CHECK.
const MaxTokenNameLen = 100

// ErrRoleTooHigh: a caller asked for a token with a higher role than its own.
var ErrRoleTooHigh = errors.New("a token cannot be given a higher role than its creator's")

// Validate checks the spec as the database will (name, role) and that an
// expiry lies after now.
func (s *NewTokenSpec) Validate(now time.Time) error {
	s.Name = strings.TrimSpace(s.Name)
	var errs []application.FieldError
	switch n := utf8.RuneCountInString(s.Name); {
	case n == 0:
		errs = append(errs, application.FieldError{Field: "name", Message: "is required"})
	case n > MaxTokenNameLen:
		errs = append(errs, application.FieldError{Field: "name", Message: "must be at most 100 characters"})
	case strings.IndexFunc(s.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		errs = append(errs, application.FieldError{Field: "name", Message: "must be printable characters only"})
	}
	if !s.Role.Valid() {
		errs = append(errs, application.FieldError{Field: "role", Message: `must be "viewer" or "admin"`})
	}
	if s.ExpiresAt != nil && !s.ExpiresAt.After(now) {
		errs = append(errs, application.FieldError{Field: "expires_at", Message: "must be in the future"})
	}
	if len(errs) > 0 {
		return &application.ValidationError{Errors: errs}
	}
	return nil
}
