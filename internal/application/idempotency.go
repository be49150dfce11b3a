package application

import "time"

// Idempotency keys live at least this long; SPEC invariant 3.
const MinIdempotencyKeyTTL = 24 * time.Hour

// MaxIdempotencyKeyLen is the longest key accepted.
const MaxIdempotencyKeyLen = 255

// ValidIdempotencyKey reports whether key is 1 to 255 printable ASCII
// characters (space through tilde).
func ValidIdempotencyKey(key string) bool {
	if len(key) == 0 || len(key) > MaxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}
