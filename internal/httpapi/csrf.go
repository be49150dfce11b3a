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
//   - the browser says it is not same-origin (Sec-Fetch-Site), or
//   - its Origin (or, without one, its Referer) is another site, or
//   - its token is not the signature of its cookie's session: a cookie and
//     token pair an attacker made up, or a cookie planted from a sibling
//     subdomain or over plain HTTP, does not verify.
//
// Behind https the cookie is __Host-intake_csrf (Secure, host-only, path
// /), which no subdomain and no plain-HTTP page can set.
func csrf(cfg config.Config) echo.MiddlewareFunc {
	secure := cfg.PublicURL.Scheme == "https"
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
			if issued || !sameSite(c.Request(), cfg.PublicURL) || !keys.VerifyCSRF(session, c.FormValue("csrf_token")) {
				return errCSRF
			}
			return next(c)
		}
	}
}

// sameSite reports whether a request says it comes from our own pages, or
// says nothing. Browsers send Sec-Fetch-Site and Origin on form posts;
// older ones may send only a Referer (ours send none: Referrer-Policy
// no-referrer), and a client that sends none of them is left to the token.
func sameSite(r *http.Request, public *url.URL) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return true
	}
	u, err := url.Parse(from)
	if err != nil || u.Host == "" {
		return false // "null" (a sandboxed or privacy-sensitive context), or garbage
	}
	return u.Host == public.Host || u.Host == r.Host
}
