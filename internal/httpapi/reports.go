package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

// handleAdminReport answers one week's report (application.StoredReport):
// the stored one, else one built now from the data. 400 naming week for a
// malformed week; 404 for one that has not started or has nothing in it.
func handleAdminReport(store *postgres.Store, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		week, err := application.ParseWeek(c.Param("week"))
		if err != nil {
			return &queryParamError{field: "week", detail: "must be an ISO week like 2026-W48"}
		}
		r, err := store.ReadReport(c.Request().Context(), callerOf(c), week, now())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, r)
	}
}
