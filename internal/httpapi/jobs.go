package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/intake/intake/internal/application"
	"github.com/intake/intake/internal/postgres"
)

type jobJSON struct {
	Slug        string    `json:"slug"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Location    string    `json:"location"`
	Team        string    `json:"team"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	// Questions is always a list, [] when the posting asks none.
	Questions []application.Question `json:"questions"`
}

func toJobJSON(p application.Posting) jobJSON {
	questions := p.Questions
	if questions == nil {
		questions = []application.Question{}
	}
	return jobJSON{Slug: p.Slug, Title: p.Title, Description: p.Description, Location: p.Location, Team: p.Team,
		Status: string(p.Status), CreatedAt: p.CreatedAt, Questions: questions}
}

// handleListJobs lists the open postings.
func handleListJobs(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		postings, err := store.OpenPostings(c.Request().Context())
		if err != nil {
			return err
		}
		jobs := make([]jobJSON, len(postings))
		for i, p := range postings {
			jobs[i] = toJobJSON(p)
		}
		return c.JSON(http.StatusOK, map[string]any{"jobs": jobs})
	}
}

// handleGetJob shows one posting, closed ones included (with their status),
// so a client can tell "closed" from "never existed".
func handleGetJob(store *postgres.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := store.Posting(c.Request().Context(), c.Param("slug"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toJobJSON(p))
	}
}
