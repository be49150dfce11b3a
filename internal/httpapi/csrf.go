package httpapi

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"regexp"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/config"
)

const csrfContextKey = "csrf"

// errCSRF is every refusal of a form post that may not come from our own
// page; problemFor answers it 403.
var errCSRF = errors.New("the form's CSRF check failed")

// A session id is rand.Text(): 26 characters of base32.
var csrfSession = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// csrf protects the form's post. Every page request gets a session cookie
// (a random id) if it has none, and the page's form carries the server's
// signature of that id (HMAC-SHA256 under INTAKE_STATUS_SECRET, its own
// label). A post is refused with 403 when
//   - it is cross-origin by Go's http.CrossOriginProtection: Sec-Fetch-Site
//     says so, or, from a browser that sends none, Origin names another
//     host than the request's (or the public URL's), or
//   - it has neither, and its Referer names another host, or
//   - its token (from the body, never the URL) is not the signature of its
//     cookie's session: a cookie and token pair an attacker made up does
//     not verify.
//
// Behind https the cookie is __Host-intake_csrf (Secure, host-only, path
// /), which no subdomain and no plain-HTTP page can set or overwrite. Over
// plain http a neighbour that can set cookies for us can plant a cookie
// with a pair it fetched from us honestly; there the origin checks are
// what stop its post (a deployment serves the public site over https).
func csrf(cfg config.Config) echo.MiddlewareFunc {
	secure := cfg.PublicURL.Scheme == "https"
	crossOrigin := http.NewCrossOriginProtection()
	// Behind a proxy that rewrites Host, the public URL is still us. (A
	// URL that config accepted always makes a valid origin.)
	_ = crossOrigin.AddTrustedOrigin(cfg.PublicURL.Scheme + "://" + cfg.PublicURL.Host)
	name := "intake_csrf"
	if secure {
		name = "__Host-intake_csrf"
	}
	keys := cfg.StatusTokens
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			session := ""
			if ck, err := c.Cookie(name); err == nil && csrfSession.MatchString(ck.Value) {
				session = ck.Value
			}
			issued := session == ""
			if issued {
				session = rand.Text()
				c.SetCookie(&http.Cookie{
					Name: name, Value: session, Path: "/",
					HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
				})
			}
			c.Set(csrfContextKey, keys.CSRFToken(session))

			switch c.Request().Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
				return next(c)
			}
			if issued || crossOrigin.Check(c.Request()) != nil || !sameSiteReferer(c.Request(), cfg.PublicURL) {
				return errCSRF
			}
			token, err := postedCSRFToken(c, cfg)
			if err != nil {
				return err
			}
			if !keys.VerifyCSRF(session, token) {
				return errCSRF
			}
			return next(c)
		}
	}
}

// sameSiteReferer covers what CrossOriginProtection does not look at: a
// request with neither Sec-Fetch-Site nor Origin (an old browser) whose
// Referer names another host. (Our own pages send no Referer:
// Referrer-Policy no-referrer; Chromium then sends "Origin: null" beside
// Sec-Fetch-Site, which is why Origin alone is not the test.)
func sameSiteReferer(r *http.Request, public *url.URL) bool {
	if r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != "" {
		return true
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return true
	}
	u, err := url.Parse(ref)
	return err == nil && (u.Host == public.Host || u.Host == r.Host)
}

// postedCSRFToken reads the token from the form's body. A multipart body
// (the form with its file input) can be read only once, so it is read here
// whole, within its limits, and kept for the handler (postedForm, postedCV).
func postedCSRFToken(c echo.Context, cfg config.Config) (string, error) {
	if !isMultipart(c.Request()) {
		return c.Request().PostFormValue("csrf_token"), nil
	}
	form, err := readMultipart(c, cfg)
	if err != nil {
		return "", err
	}
	c.Set(multipartContextKey, form)
	if vs := form.values["csrf_token"]; len(vs) == 1 {
		return vs[0], nil
	}
	return "", nil
}
