package httpapi

import (
	"errors"
	"time"

	"github.com/labstack/echo/v4"
)

// errOverloaded answers a submit that found the API at its bound of
// submits in flight and no turn free within the wait.
var errOverloaded = errors.New("too many submits in flight")

// shedSubmits bounds the submits in flight (both ways to apply share one
// bound) to limit. A submit beyond it waits at most wait for one to finish,
// then is answered 503 overloaded with Retry-After, having read nothing
// and stored nothing.
//
// Why: past the database's pace, every extra submit taken in only queues,
// on the pool or in the handler, and each queued one holds its request,
// body and goroutine; answer times and memory then grow without bound
// until clients time out and retry on top. Shedding keeps the answers fast
// and the memory flat; a client retries with the same Idempotency-Key.
func shedSubmits(limit int, wait time.Duration) echo.MiddlewareFunc {
	turns := make(chan struct{}, limit)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			select {
			case turns <- struct{}{}:
			default:
				if wait <= 0 {
					return errOverloaded
				}
				timer := time.NewTimer(wait)
				select {
				case turns <- struct{}{}:
					timer.Stop()
				case <-timer.C:
					return errOverloaded
				case <-c.Request().Context().Done():
					timer.Stop()
					return c.Request().Context().Err()
				}
			}
			defer func() { <-turns }()
			return next(c)
		}
	}
}
