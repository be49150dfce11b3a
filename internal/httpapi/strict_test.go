package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// A repeated key or a key that only matches a field's name when case is
// ignored is refused, naming the key, and nothing is stored: encoding/json
// would keep the last "email", or take "EMAIL" for "email", so a gateway or
// an audit reading the first or the exact key would see another applicant
// than the one stored and mailed.
func TestSubmitRefusesRepeatedAndCaseVariantKeys(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	tests := []struct {
		name, body, field string
	}{
		{"repeated email", `{"full_name":"A","email":"first@x.io","email":"second@x.io"}`, "email"},
		{"repeated name", `{"full_name":"A","full_name":"B","email":"a@x.io"}`, "full_name"},
		{"repeated links", `{"full_name":"A","email":"a@x.io","links":[],"links":["https://x.io"]}`, "links"},
		{"upper-case key", `{"full_name":"A","EMAIL":"a@x.io"}`, "EMAIL"},
		{"mixed-case key", `{"Full_Name":"A","email":"a@x.io"}`, "Full_Name"},
		{"case variant after the exact key", `{"full_name":"A","email":"a@x.io","Email":"b@x.io"}`, "Email"},
		{"key with a Kelvin sign", "{\"full_name\":\"A\",\"email\":\"a@x.io\",\"lin\u212As\":[]}", "lin\u212As"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := api.Submit(t, slug, "strict-"+string(rune('a'+i)), tt.body)
			p := requireProblem(t, res, http.StatusBadRequest, "invalid-json")
			require.Len(t, p.Errors, 1, "body: %s", res.Body)
			require.Equal(t, tt.field, p.Errors[0].Field)
		})
	}
	require.Zero(t, api.Count(t, "applications"))
	require.Zero(t, api.Count(t, "idempotency_keys"))
}
