package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

type statusJSON struct {
	ID                string    `json:"id"`
	ReceivedAt        time.Time `json:"received_at"`
	ConfirmationEmail emailJSON `json:"confirmation_email"`
}

type emailJSON struct {
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
}

// handleStatus answers the holder of a status token. A missing or wrong
// token gets the same 404 as an unknown id, so ids cannot be probed.
func handleStatus(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.QueryParam("token")
		if token == "" {
			return application.ErrNotFound
		}
		st, err := store.ApplicationStatus(c.Request().Context(), c.Param("id"), hashToken(token))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, statusJSON{
			ID:         st.ID,
			ReceivedAt: st.ReceivedAt.UTC(),
			ConfirmationEmail: emailJSON{
				State:         string(st.Email.State),
				Attempts:      st.Email.Attempts,
				LastAttemptAt: st.Email.LastAttemptAt,
			},
		})
	}
}
