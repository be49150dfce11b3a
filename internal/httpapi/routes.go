package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/web"
)

// addRoutes is the whole HTTP surface of intake-api.
func addRoutes(e *echo.Echo, d Deps) {
	e.Use(
		requestID(),
		accessLog(d.Logger),
		recoverPanics(d.Logger),
		securityHeaders(),
	)
	// One limiter for both ways to apply, so the form is no way around it.
	limitSubmits := rateLimit(d.Config.RateLimit, d.Config.RateBurst)

	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(d.Ready, d.Logger))

	// Applicant pages.
	e.GET("/static/*", echo.WrapHandler(web.Static()), cacheStatic())
	// Browsers ask for it on every first visit; answering "nothing" keeps
	// 404s out of the logs and the console.
	e.GET("/favicon.ico", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, cacheStatic())
	pages := e.Group("", deadline(d.Config.RequestTimeout), bodyLimit(d.Config.MaxBodyBytes), csrf(d.Config))
	pages.GET("/", handleHome(d.Store))
	pages.GET("/jobs/:slug", handlePostingPage(d.Store))
	pages.POST("/jobs/:slug/apply", handleApply(d.Store, d.Waker, d.Now, d.Config), limitSubmits)
	pages.GET("/applications/:id", handleStatusPage(d.Store, d.Config.StatusTokens))

	// Public JSON API.
	api := e.Group("/api/v1", deadline(d.Config.RequestTimeout), noStore())
	api.GET("/jobs", handleListJobs(d.Store))
	api.GET("/jobs/:slug", handleGetJob(d.Store))
	api.POST("/jobs/:slug/applications", handleSubmit(d.Store, d.Waker, d.Now, d.Config), limitSubmits)
	api.GET("/applications/:id/status", handleStatus(d.Store, d.Config.StatusTokens))
}
