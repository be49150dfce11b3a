package httpapi

import (
	"github.com/labstack/echo/v4"
)

// addRoutes is the whole HTTP surface of intake-api.
func addRoutes(e *echo.Echo, d Deps) {
	e.Use(
		requestID(),
		accessLog(d.Logger),
		recoverPanics(d.Logger),
		securityHeaders(),
	)

	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(d.Ready))

	api := e.Group("/api/v1", deadline(d.Config.RequestTimeout), noStore())
	api.GET("/jobs", handleListJobs(d.Store))
	api.GET("/jobs/:slug", handleGetJob(d.Store))
	api.POST("/jobs/:slug/applications",
		handleSubmit(d.Store, d.Waker, d.Now, d.Config),
		rateLimit(d.Config.RateLimit, d.Config.RateBurst))
	api.GET("/applications/:id/status", handleStatus(d.Store))
}
