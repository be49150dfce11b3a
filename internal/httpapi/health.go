package httpapi

import (
	"context"
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
// its schema is at the version this binary expects.
func handleReadyz(ready func(context.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			c.Response().Header().Set("Retry-After", "2")
			writeProblem(c, problem{Type: "not-ready", Title: "Not ready", Status: http.StatusServiceUnavailable, Detail: err.Error()})
			return nil
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	}
}
