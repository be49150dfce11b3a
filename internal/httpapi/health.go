package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// handleHealthz says the process is alive; it touches nothing else.
func handleHealthz() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

// handleReadyz says whether this replica can serve: the database answers and
// its schema is at the version this binary expects. The cause goes to the
// log, not to the public answer (it names hosts and databases).
func handleReadyz(ready func(context.Context) error, logger *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			logger.Warn("not ready", "request_id", requestIDOf(c), "err", err)
			c.Response().Header().Set("Retry-After", "2")
			writeProblem(c, problem{Type: "not-ready", Title: "Not ready", Status: http.StatusServiceUnavailable,
				Detail: "The database is unreachable or its schema is not at this version; see the server log."})
			return nil
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	}
}
