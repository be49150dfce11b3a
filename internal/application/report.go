package application

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Week is an ISO 8601 week (Monday to Monday, UTC), written 2026-W48.
type Week struct {
	Year int
	Num  int
}

var weekPattern = regexp.MustCompile(`^([0-9]{4})-W([0-9]{2})$`)

// ParseWeek reads a week written YYYY-Www; a malformed one, or a week the
// year does not have (W53 of a short year), is a ValidationError naming
// the field "week".
func ParseWeek(s string) (Week, error) {
	m := weekPattern.FindStringSubmatch(s)
	if m == nil {
		var v ValidationError
		v.add("week", "must be an ISO week like 2026-W48")
		return Week{}, v.err()
	}
	year, _ := strconv.Atoi(m[1])
	num, _ := strconv.Atoi(m[2])
	w := Week{Year: year, Num: num}
	if num < 1 || WeekOf(w.Start()) != w {
		var v ValidationError
		v.add("week", fmt.Sprintf("%d has no week %d", year, num))
		return Week{}, v.err()
	}
	return w, nil
}

// WeekOf is the ISO week t falls in, in UTC.
func WeekOf(t time.Time) Week {
	y, n := t.UTC().ISOWeek()
	return Week{Year: y, Num: n}
}

func (w Week) String() string { return fmt.Sprintf("%04d-W%02d", w.Year, w.Num) }

// Start is the week's first instant: its Monday at 00:00 UTC. Week 1 is the
// week with the year's first Thursday, so it holds 4 January.
func (w Week) Start() time.Time {
	jan4 := time.Date(w.Year, time.January, 4, 0, 0, 0, 0, time.UTC)
	monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	return monday.AddDate(0, 0, 7*(w.Num-1))
}

// End is the first instant after the week: the next Monday at 00:00 UTC.
func (w Week) End() time.Time { return w.Start().AddDate(0, 0, 7) }

// Previous is the week before w.
func (w Week) Previous() Week { return WeekOf(w.Start().AddDate(0, 0, -7)) }

// Report is the weekly report: counts and slugs only, never personal data.
// Its figures are about the applications received during the week (the
// state of their confirmations and analytics records as of BuiltAt), and
// the erasures made during it.
type Report struct {
	Week string    `json:"week"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// BuiltAt is when the figures were read; Final says the week was over
	// by then (a report of the current week is a preview, never stored).
	BuiltAt  time.Time        `json:"built_at"`
	Final    bool             `json:"final"`
	Postings []PostingFigures `json:"postings"`
	Totals   ReportFigures    `json:"totals"`
}

// PostingFigures are one posting's figures in a report.
type PostingFigures struct {
	Slug string `json:"slug"`
	ReportFigures
}

// ReportFigures are the counts of a report, for one posting or all.
type ReportFigures struct {
	Received int `json:"received"`
	// The confirmation emails of those applications, by their ledger state:
	// sent, retrying, failed, and pending (queued or being sent). Erased
	// applications whose email was cancelled are in none.
	ConfirmationsSent     int `json:"confirmations_sent"`
	ConfirmationsRetrying int `json:"confirmations_retrying"`
	ConfirmationsFailed   int `json:"confirmations_failed"`
	ConfirmationsPending  int `json:"confirmations_pending"`
	// AnalyticsRecorded counts their records in the Postgres analytics sink.
	AnalyticsRecorded int `json:"analytics_recorded"`
	// EmailAcceptedP50 and P95 are seconds from an application's receipt to
	// the SMTP server's acceptance of its confirmation, over the sent ones
	// (nil when none was sent).
	EmailAcceptedP50 *float64 `json:"email_accepted_p50_seconds"`
	EmailAcceptedP95 *float64 `json:"email_accepted_p95_seconds"`
	// Erasures counts the applications erased during the week, whenever
	// they were received.
	Erasures int `json:"erasures"`
}

// Empty says nothing happened: no application received, none erased.
func (f ReportFigures) Empty() bool { return f.Received == 0 && f.Erasures == 0 }

// StoredReport is a report as intakectl and the admin API show it: Stored
// says it is the leader's stored copy (not one built on demand), EmailedAt
// when its email went.
type StoredReport struct {
	Report
	Stored    bool       `json:"stored"`
	EmailedAt *time.Time `json:"emailed_at"`
}
