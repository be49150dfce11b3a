package httpapi

import (
	"context"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/config"
	"github.com/intake/intake/internal/postgres"
)

// Deps is what the HTTP server needs from the rest of the program.
type Deps struct {
	Config config.Config
	Store  *postgres.Store
	// Waker wakes the outbox relay after a commit.
	Waker *postgres.Waker
	// Ready reports whether the database is reachable and migrated.
	Ready  func(context.Context) error
	Logger *slog.Logger
	// Metrics, when set, counts requests and submits (NewMetrics).
	Metrics *Metrics
	// Now is the clock; tests pin it.
	Now func() time.Time
}

// NewServer returns the API's handler with every route and middleware
// installed.
func NewServer(d Deps) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(d.Logger, d.Config.Employer)
	if d.Config.TrustProxy {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	addRoutes(e, d)
	return e
}
