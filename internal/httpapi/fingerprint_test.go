package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/application"
)

// A request without answers keeps the fingerprint it had before postings
// had questions, so a client retrying across the upgrade gets its replay,
// not idempotency-key-reused.
func TestFingerprintWithoutAnswersUnchanged(t *testing.T) {
	t.Parallel()
	a := application.Applicant{FullName: "Ada Lovelace", Email: "ada@example.com", Links: []string{"https://example.com/ada"}}
	before, err := json.Marshal(struct {
		Route     string
		Slug      string
		Applicant struct {
			FullName, Email, Phone, CoverLetter string
			Links                               []string
		}
	}{Route: "POST /api/v1/jobs/{slug}/applications", Slug: "go", Applicant: struct {
		FullName, Email, Phone, CoverLetter string
		Links                               []string
	}{FullName: a.FullName, Email: a.Email, Links: a.Links}})
	require.NoError(t, err)
	sum := sha256.Sum256(before)
	require.Equal(t, sum[:], fingerprint("go", a, nil))

	a.Answers = application.Answers{"start": "May"}
	require.NotEqual(t, sum[:], fingerprint("go", a, nil))
}
