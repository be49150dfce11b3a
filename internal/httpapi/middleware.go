package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/intake/intake/internal/application"
)

// A client may send its own X-Request-Id to correlate logs; anything that
// does not look like an id is replaced, so it cannot smuggle text into logs.
var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID gives every request an id, echoed in X-Request-Id on every
// response and attached to every log line about the request.
func requestID() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := c.Request().Header.Get(echo.HeaderXRequestID)
			if !clientRequestID.MatchString(id) {
				id = uuid.NewString()
			}
			c.Set("request_id", id)
			c.Response().Header().Set(echo.HeaderXRequestID, id)
			return next(c)
		}
	}
}

func requestIDOf(c echo.Context) string {
	id, _ := c.Get("request_id").(string)
	return id
}

// routeOf is the request's route pattern, "unmatched" when no route took
// it: for an unknown path echo reports the nearest group's not-found
// wildcard ("/*", "/api/v1/*"), which routes (the patterns addRoutes
// registered) does not hold.
func routeOf(c echo.Context, routes map[string]bool) string {
	if route := c.Path(); routes[route] {
		return route
	}
	return "unmatched"
}

// accessLog writes one JSON line per request. It logs the route pattern, not
// the path, and never the query string: paths carry application ids and
// query strings carry status tokens.
func accessLog(logger *slog.Logger, routes map[string]bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				// Render the error now so the status logged is the one sent.
				c.Error(err)
			}
			route := routeOf(c, routes)
			logger.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("request_id", requestIDOf(c)),
				slog.String("method", c.Request().Method),
				slog.String("route", route),
				slog.Int("status", c.Response().Status),
				slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
				slog.Int64("bytes", c.Response().Size),
			)
			return nil
		}
	}
}

// recoverPanics turns a panic in a handler into a logged 500.
func recoverPanics(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					logger.Error("handler panicked", "request_id", requestIDOf(c), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return next(c)
		}
	}
}

// apiCSP: the API serves no HTML, so its policy forbids everything.
const apiCSP = "default-src 'none'; frame-ancestors 'none'"

// pageCSP: pages load only their own stylesheet and script (no inline
// script at all) and the employer's logo, and fetch and post only to
// themselves.
func pageCSP(employer application.Employer) string {
	img := "'self'"
	if u, err := url.Parse(employer.LogoURL); err == nil && u.Host != "" {
		img += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; style-src 'self'; script-src 'self'; img-src " + img + "; connect-src 'self'; " +
		"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}

// securityHeaders sets the headers every response should carry.
func securityHeaders(employer application.Employer) echo.MiddlewareFunc {
	pagePolicy := pageCSP(employer)
	secure := middleware.SecureWithConfig(middleware.SecureConfig{
		ContentTypeNosniff: "nosniff",
		XFrameOptions:      "DENY",
		// Status URLs carry a capability token; never leak it in a Referer.
		ReferrerPolicy: "no-referrer",
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return secure(func(c echo.Context) error {
			csp := pagePolicy
			if isAPIRequest(c) {
				csp = apiCSP
			}
			c.Response().Header().Set(echo.HeaderContentSecurityPolicy, csp)
			return next(c)
		})
	}
}

// isAPIRequest tells the JSON surface (problem+json errors) from the pages
// (HTML errors).
func isAPIRequest(c echo.Context) bool {
	p := c.Request().URL.Path
	return strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/readyz"
}

// bodyLimit refuses bodies over limit with 413 before anything reads them.
// A multipart body (the form with a CV) is left to readMultipart, which
// bounds it itself and keeps the fields it read when the file is too
// large, so the form can be shown again with them.
func bodyLimit(limit int64) echo.MiddlewareFunc {
	return middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{
		Limit:   strconv.FormatInt(limit, 10) + "B",
		Skipper: func(c echo.Context) bool { return isMultipart(c.Request()) },
	})
}

// cacheStatic lets browsers keep the stylesheet and script for an hour.
func cacheStatic() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set("Cache-Control", "public, max-age=3600")
			return next(c)
		}
	}
}

// noStore keeps API answers (some carry status tokens) out of caches.
func noStore() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set("Cache-Control", "no-store")
			return next(c)
		}
	}
}

// deadline bounds the request, database work included, so a request never
// hangs on an unreachable database: it answers 503 when the time is up.
func deadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx, cancel := context.WithTimeout(c.Request().Context(), d)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

// rateLimit allows perSecond requests per client address with a burst;
// zero turns it off.
func rateLimit(perSecond float64, burst int) echo.MiddlewareFunc {
	if perSecond == 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	retryAfter := int(math.Ceil(1 / perSecond))
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate:      rate.Limit(perSecond),
			Burst:     burst,
			ExpiresIn: 3 * time.Minute,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) { return c.RealIP(), nil },
		DenyHandler: func(echo.Context, string, error) error {
			return &rateLimitedError{retryAfter: retryAfter}
		},
	})
}

// pathParams answers 404 for a path parameter that cannot name anything
// (a slug outside the slug pattern, an id that is not a UUID) before any
// handler or query sees it: a NUL byte or invalid UTF-8 would otherwise
// reach Postgres and come back as a 500.
func pathParams() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			for _, name := range c.ParamNames() {
				switch v := c.Param(name); name {
				case "slug":
					if !application.ValidSlug(v) {
						return application.ErrNotFound
					}
				case "id":
					if _, err := uuid.Parse(v); err != nil || len(v) != 36 {
						return application.ErrNotFound
					}
				}
			}
			return next(c)
		}
	}
}
