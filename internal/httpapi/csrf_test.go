package httpapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/testkit"
)

// applyRequest is a form post to the posting, as a browser would send it.
func applyRequest(t *testing.T, api *testkit.API, form url.Values, headers ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, api.URL+"/jobs/go-engineer/apply", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// A cookie and token pair the attacker chose (a cookie planted from a
// sibling subdomain or over plain HTTP) must not pass: the token has to be
// the server's signature of the cookie's session, and a foreign Origin is
// refused outright. Every refusal is a 403.
func TestApplyFormCSRFRefusals(t *testing.T) {
	t.Parallel()
	api, b := pagesSetup(t)
	hidden := formFields(t, b.get("/jobs/go-engineer").Body)
	planted := func(value string) *http.Cookie { return &http.Cookie{Name: "intake_csrf", Value: value} }

	tests := []struct {
		name    string
		form    url.Values
		cookie  *http.Cookie
		headers []string
	}{
		{"planted cookie and matching token, foreign Origin", withToken(hidden, "X"), planted("X"), []string{"Origin", "https://evil.example"}},
		{"planted cookie and matching token, no Origin", withToken(hidden, "X"), planted("X"), nil},
		{"planted 26-character cookie and matching token", withToken(hidden, strings.Repeat("A", 26)), planted(strings.Repeat("A", 26)), nil},
		{"no token", withToken(hidden, ""), nil, nil},
		{"no cookie", hidden, nil, nil},
		{"the site's own token, foreign Origin", hidden, nil, []string{"Origin", "https://evil.example"}},
		{"the site's own token, opaque Origin", hidden, nil, []string{"Origin", "null"}},
		{"the site's own token, foreign Referer", hidden, nil, []string{"Referer", "https://evil.example/page"}},
		{"declared cross-site", hidden, nil, []string{"Sec-Fetch-Site", "cross-site"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stranger := newBrowser(t, api)
			if tt.cookie == nil && tt.name != "no cookie" && tt.name != "no token" {
				stranger = b // the applicant's own browser, with the site's cookie
			}
			req := applyRequest(t, api, fillIn(tt.form, "Ada Lovelace", "ada@example.com"), tt.headers...)
			if tt.cookie != nil {
				req.AddCookie(tt.cookie)
			}
			res := stranger.do(req)
			require.Equal(t, http.StatusForbidden, res.Status, "body: %s", res.Body)
			require.Contains(t, res.Body, "This form has expired")
		})
	}
	require.Zero(t, api.Count(t, "applications"))

	// The applicant's own browser, from the site's own page, gets through.
	res := b.do(applyRequest(t, api, fillIn(hidden, "Ada Lovelace", "ada@example.com"),
		"Origin", api.URL, "Sec-Fetch-Site", "same-origin"))
	require.Equal(t, http.StatusSeeOther, res.Status, "body: %s", res.Body)
	require.Equal(t, 1, api.Count(t, "applications"))
}

// Behind https the cookie is a __Host- cookie: Secure, host-only, path /,
// so neither a sibling subdomain nor plain HTTP can set or overwrite it.
func TestCSRFCookieIsHostOnlyOverHTTPS(t *testing.T) {
	t.Parallel()
	api := testkit.StartAPI(t, &testkit.APIOpts{Configure: func(c *config.Config) {
		c.PublicURL = &url.URL{Scheme: "https", Host: "jobs.example.com"}
	}})
	api.CreatePosting(t, "go-engineer")
	res := newBrowser(t, api).get("/jobs/go-engineer")
	require.Equal(t, http.StatusOK, res.Status)
	setCookie := res.Header.Get("Set-Cookie")
	require.True(t, strings.HasPrefix(setCookie, "__Host-intake_csrf="), setCookie)
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		require.Contains(t, setCookie, attr)
	}
	require.NotContains(t, setCookie, "Domain=")
}

func withToken(hidden url.Values, token string) url.Values {
	v := url.Values{}
	for k := range hidden {
		v.Set(k, hidden.Get(k))
	}
	if token == "" {
		v.Del("csrf_token")
	} else {
		v.Set("csrf_token", token)
	}
	return v
}

// The form is read from its body alone, once: a field in the URL's query
// string fills in nothing, a field sent twice is refused, and neither the
// token nor the key is taken from the URL (where proxies log them).
func TestApplyFormReadsTheBodyOnly(t *testing.T) {
	t.Parallel()
	api, b := pagesSetup(t)
	page := b.get("/jobs/go-engineer")
	require.Equal(t, "no-store", page.Header.Get("Cache-Control"), "the form's token and key are nobody else's")
	hidden := formFields(t, page.Body)

	noEmail := fillIn(hidden, "Ada Lovelace", "")
	noEmail.Del("email")
	req, err := http.NewRequest(http.MethodPost, api.URL+"/jobs/go-engineer/apply?email=fromquery%40x.io",
		strings.NewReader(noEmail.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res := b.do(req)
	require.Equal(t, http.StatusUnprocessableEntity, res.Status, "the query string's email is not read")

	twice := fillIn(hidden, "Ada Lovelace", "first@x.io")
	twice.Add("email", "second@x.io")
	require.Equal(t, http.StatusBadRequest, b.post("/jobs/go-engineer/apply", twice).Status)

	tokenInURL := fillIn(hidden, "Ada Lovelace", "ada@example.com")
	token := tokenInURL.Get("csrf_token")
	tokenInURL.Del("csrf_token")
	req, err = http.NewRequest(http.MethodPost, api.URL+"/jobs/go-engineer/apply?csrf_token="+url.QueryEscape(token),
		strings.NewReader(tokenInURL.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusForbidden, b.do(req).Status, "a token in the URL is not read")
	require.Zero(t, api.Count(t, "applications"))
}
