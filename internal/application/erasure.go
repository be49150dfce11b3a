package application

import "strings"

// ErasureEmail checks the address a data-subject request names and returns
// its normalised form, the one applications are found by. It asks only for
// something shaped like an address, not for today's submit rules: an
// address stored under older rules must still be erasable.
func ErasureEmail(email string) (string, error) {
	var v ValidationError
	n := NormalizeEmail(email)
	switch {
	case n == "":
		v.add("email", "is required")
	case len(n) > MaxEmailLen:
		v.add("email", "must be at most 254 bytes")
	case !strings.Contains(n, "@"):
		v.add("email", "must be an email address like name@example.com")
	}
	return n, v.err()
}
