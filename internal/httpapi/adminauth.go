package httpapi

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/intake/intake/internal/access"
	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// errForbidden: a valid token whose role does not allow the call.
var errForbidden = errors.New("forbidden")

// adminAuth authenticates every request under /api/v1/admin by its bearer
// token, against the database on every request (no cache, so a revocation
// holds on every replica at its commit). Whatever is wrong with the token
// (none, malformed, unknown, revoked, expired), the answer is the same 401;
// the refusal is audited as auth.denied by anonymous, without the token,
// and counts against the client address's failure budget: over it, the
// address gets 429 before any token is looked at.
func adminAuth(store *postgres.Store, failures *failureLimiter, logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ip := c.RealIP()
			if failures.blocked(ip) {
				return &rateLimitedError{retryAfter: failures.retryAfter()}
			}
			tok, err := store.Authenticate(c.Request().Context(), bearerToken(c.Request()))
			if errors.Is(err, access.ErrTokenInvalid) {
				failures.fail(ip)
				if err := store.Audit(c.Request().Context(), access.Entry{
					Actor: access.ActorAnonymous, Action: "auth.denied", TargetType: "route",
					TargetID: c.Request().Method + " " + c.Path(), Outcome: access.OutcomeDenied, RequestID: requestIDOf(c),
				}); err != nil {
					logger.Warn("audit a denied authentication", "request_id", requestIDOf(c), "err", err)
				}
				return access.ErrTokenInvalid
			}
			if err != nil {
				return err
			}
			c.Set("caller", access.Caller{Actor: access.TokenActor(tok.ID), TokenID: tok.ID, Role: tok.Role, RequestID: requestIDOf(c)})
			return next(c)
		}
	}
}

// bearerToken is the token of an Authorization: Bearer header (the scheme
// is case-insensitive, RFC 9110), or "" without one.
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get(echo.HeaderAuthorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// allow lets only a caller whose role allows need through; a refusal is
// audited (outcome denied) under the action the route would have done.
func allow(store *postgres.Store, need access.Role, action string, logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			caller := callerOf(c)
			if caller.Role.Allows(need) {
				return next(c)
			}
			if err := store.Audit(c.Request().Context(), access.Entry{
				Actor: caller.Actor, Action: action, TargetType: "route", TargetID: c.Request().Method + " " + c.Path(),
				Outcome: access.OutcomeDenied, RequestID: caller.RequestID,
			}); err != nil && !errors.Is(err, application.ErrUnavailable) {
				logger.Warn("audit a refused call", "request_id", requestIDOf(c), "err", err)
			}
			return errForbidden
		}
	}
}

// callerOf is the authenticated caller adminAuth stored.
func callerOf(c echo.Context) access.Caller {
	caller, _ := c.Get("caller").(access.Caller)
	return caller
}

// failureLimiter counts failed authentications per client address: perMinute
// of them, refilled evenly over a minute. Only failures spend it, so a
// holder of a good token is never slowed by it.
type failureLimiter struct {
	perMinute int
	mu        sync.Mutex
	addrs     map[string]*rate.Limiter
	swept     time.Time
}

func newFailureLimiter(perMinute int) *failureLimiter {
	return &failureLimiter{perMinute: perMinute, addrs: map[string]*rate.Limiter{}}
}

func (f *failureLimiter) blocked(ip string) bool {
	if f.perMinute == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	lim, ok := f.addrs[ip]
	return ok && lim.Tokens() < 1
}

func (f *failureLimiter) fail(ip string) {
	if f.perMinute == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	lim, ok := f.addrs[ip]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(float64(f.perMinute)/60), f.perMinute)
		f.addrs[ip] = lim
	}
	lim.Allow()
	// Forget addresses whose budget is whole again, at most once a minute,
	// so the map holds only recent offenders.
	if now := time.Now(); now.Sub(f.swept) > time.Minute {
		f.swept = now
		for addr, l := range f.addrs {
			if l.Tokens() >= float64(f.perMinute) {
				delete(f.addrs, addr)
			}
		}
	}
}

func (f *failureLimiter) retryAfter() int {
	return int(math.Ceil(60 / float64(f.perMinute)))
}
