package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/access"
)

// addRoutes is the whole HTTP surface of intake-api.
func addRoutes(e *echo.Echo, d Deps) {
	// The patterns of the routes added below, for the route in the access
	// log and the metrics (routeOf).
	// Groups with middleware add their own not-found routes ("/*"), which
	// are not routes a request can be said to have matched.
	routes := map[string]bool{}
	defer func() {
		for _, r := range e.Routes() {
			if r.Method != echo.RouteNotFound {
				routes[r.Path] = true
			}
		}
	}()
	e.Use(
		requestID(),
		countRequests(d.Metrics, routes),
		accessLog(d.Logger, routes),
		recoverPanics(d.Logger),
		securityHeaders(d.Config.Employer),
		pathParams(),
	)
	// One limiter for both ways to apply, so the form is no way around it,
	// and one bound on the submits in flight.
	limitSubmits := rateLimit(d.Config.RateLimit, d.Config.RateBurst)
	shed := shedSubmits(d.Config.SubmitConcurrency, d.Config.SubmitWait)

	// Every GET route answers HEAD too (getHead), as RFC 9110 asks and
	// uptime monitors expect: same status and headers, no body.
	e.Match(getHead, "/healthz", handleHealthz())
	e.Match(getHead, "/readyz", handleReadyz(d.Ready, d.Logger))

	// Applicant pages.
	e.Match(getHead, "/static/*", handleStatic(), cacheStatic())
	// Browsers ask for it on every first visit; answering "nothing" keeps
	// 404s out of the logs and the console.
	e.Match(getHead, "/favicon.ico", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, cacheStatic())
	pages := e.Group("", deadline(d.Config.RequestTimeout), bodyLimit(d.Config.MaxBodyBytes), csrf(d.Config))
	pages.Match(getHead, "/", handleHome(d.Store, d.Config.Employer))
	pages.Match(getHead, "/jobs/:slug", handlePostingPage(d.Store, d.Config.Employer, d.Config.MaxCVBytes))
	pages.Match(getHead, "/applications/:id", handleStatusPage(d.Store, d.Config.StatusTokens, d.Config.Employer))
	// The form's post is not in the pages group: csrf reads the whole
	// multipart body (megabytes with a CV), so the limiter and the bound on
	// submits in flight must decide before it, as they do for the JSON API.
	// A post refused by csrf is then counted against the client too.
	e.POST("/jobs/:slug/apply", handleApply(d.Store, d.Waker, d.Now, d.Config),
		deadline(d.Config.RequestTimeout), countSubmits(d.Metrics), limitSubmits, shed,
		bodyLimit(submitBodyBytes(d.Config)), csrf(d.Config))

	// Public JSON API.
	api := e.Group("/api/v1", deadline(d.Config.RequestTimeout), noStore())
	api.Match(getHead, "/jobs", handleListJobs(d.Store))
	api.Match(getHead, "/jobs/:slug", handleGetJob(d.Store))
	api.POST("/jobs/:slug/applications", handleSubmit(d.Store, d.Waker, d.Now, d.Config), countSubmits(d.Metrics), limitSubmits, shed)
	api.Match(getHead, "/applications/:id/status", handleStatus(d.Store, d.Config.StatusTokens))

	// Admin API: every route authenticates by bearer token (adminAuth) and
	// names the role it needs and the action it is audited as (allow).
	admin := api.Group("/admin", adminAuth(d.Store, newFailureLimiter(d.Config.AdminAuthFailures), d.Logger))
	need := func(role access.Role, action string) echo.MiddlewareFunc {
		return allow(d.Store, role, action, d.Logger)
	}
	admin.Match(getHead, "/applications", handleAdminApplications(d.Store, d.Config.StatusTokens), need(access.RoleViewer, "applications.list"))
	admin.Match(getHead, "/applications/:id", handleAdminApplication(d.Store), need(access.RoleViewer, "applications.read"))
	admin.Match(getHead, "/applications/:id/cv", handleAdminCV(d.Store), need(access.RoleViewer, "applications.cv_download"))
	admin.DELETE("/applications/:id", handleEraseApplication(d.Store), need(access.RoleAdmin, "applications.erase"))
	admin.POST("/erasures", handleErasure(d.Store, d.Config.MaxBodyBytes), need(access.RoleAdmin, "erasures.create"))
	admin.POST("/jobs", handleCreateJob(d.Store, d.Config.MaxBodyBytes), need(access.RoleAdmin, "jobs.create"))
	admin.PATCH("/jobs/:slug", handlePatchJob(d.Store, d.Config.MaxBodyBytes), need(access.RoleAdmin, "jobs.update"))
	admin.Match(getHead, "/tokens", handleListTokens(d.Store), need(access.RoleAdmin, "tokens.list"))
	admin.POST("/tokens", handleCreateToken(d.Store, d.Config.MaxBodyBytes, d.Now), need(access.RoleAdmin, "tokens.create"))
	admin.DELETE("/tokens/:id", handleRevokeToken(d.Store), need(access.RoleAdmin, "tokens.revoke"))
	admin.Match(getHead, "/reports/:week", handleAdminReport(d.Store, d.Now), need(access.RoleViewer, "reports.read"))
	admin.Match(getHead, "/audit", handleAudit(d.Store, d.Config.StatusTokens), need(access.RoleAdmin, "audit.list"))
}

var getHead = []string{http.MethodGet, http.MethodHead}
