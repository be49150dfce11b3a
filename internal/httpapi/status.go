package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
	"github.com/intake/intake/internal/statustoken"
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

// handleStatus answers the holder of a status token (see statusFor).
func handleStatus(store *postgres.Store, keys statustoken.Keys) echo.HandlerFunc {
	return func(c echo.Context) error {
		st, err := statusFor(c, store, keys)
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

// statusFor looks up the application in the path for the holder of the
// token in the query. A missing or wrong token is ErrNotFound, exactly like
// an unknown id, so ids cannot be probed; it is refused before the
// database is asked.
func statusFor(c echo.Context, store *postgres.Store, keys statustoken.Keys) (application.Status, error) {
	id := c.Param("id")
	if !keys.Verify(id, c.QueryParam("token")) {
		return application.Status{}, application.ErrNotFound
	}
	return store.ApplicationStatus(c.Request().Context(), id)
}
