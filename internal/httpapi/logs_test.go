package httpapi_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/testkit"
)

// Invariant 8: a full submit, its replay, a duplicate, a validation failure
// and a status lookup leave no personal data and no status token in the logs.
func TestLogsCarryNoPersonalData(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, nil)
	slug := api.CreatePosting(t, "go-engineer")
	body := `{"full_name":"Grace Brewster Hopper","email":"Grace.Hopper@Navy.example","phone":"+1 555 0100 777","cover_letter":"COBOL forever","links":["https://hopper.example/cv"]}`

	first := api.Submit(t, slug, "key-1", body)
	require.Equal(t, http.StatusCreated, first.Status)
	require.Equal(t, http.StatusCreated, api.Submit(t, slug, "key-1", body).Status)
	require.Equal(t, http.StatusConflict, api.Submit(t, slug, "key-2", body).Status)
	require.Equal(t, http.StatusUnprocessableEntity,
		api.Submit(t, slug, "key-3", `{"full_name":"Grace Brewster Hopper","email":"Grace.Hopper@"}`).Status)
	var r receipt
	require.NoError(t, json.Unmarshal(first.Body, &r))
	statusPath := strings.TrimPrefix(r.StatusURL, api.Config.PublicURL.String())
	require.Equal(t, http.StatusOK, api.Do(t, http.MethodGet, statusPath, "").Status)
	token := statusPath[strings.Index(statusPath, "token=")+len("token="):]

	logs := api.Logs.String()
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		require.True(t, json.Valid(sc.Bytes()), "every log line is JSON: %s", sc.Text())
		lines++
	}
	require.GreaterOrEqual(t, lines, 5, "one access log line per request at least")
	require.Contains(t, logs, `"route":"/api/v1/jobs/:slug/applications"`)
	for _, secret := range []string{
		"Grace", "Hopper", "Brewster", "grace.hopper", "Navy.example", "navy.example",
		"555 0100 777", "COBOL", "hopper.example", token,
	} {
		require.NotContains(t, strings.ToLower(logs), strings.ToLower(secret), "logs must not contain %q", secret)
	}
}
