//go:build drills

package drill

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Table is a plain-text table.
type Table struct {
	Title  string
	Header []string
	rows   [][]string
}

// Row adds a row; cells are formatted with %v (durations rounded to ms).
func (t *Table) Row(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		switch v := c.(type) {
		case time.Duration:
			row[i] = v.Round(time.Millisecond).String()
		default:
			row[i] = fmt.Sprint(v)
		}
	}
	t.rows = append(t.rows, row)
}

func (t *Table) String() string {
	widths := make([]int, len(t.Header))
	for i, h := range t.Header {
		widths[i] = len([]rune(h))
	}
	for _, r := range t.rows {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], len([]rune(c)))
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, w := range widths {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", w-len([]rune(c))))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n%s\n", t.Title)
	line(t.Header)
	sep := make([]string, len(widths))
	for i, w := range widths {
		sep[i] = strings.Repeat("-", w)
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	return b.String()
}

// Print shows the table in the test log and on stdout, so `go test -v`
// shows it either way.
func (t *Table) Print(tb testing.TB) {
	tb.Helper()
	s := t.String()
	tb.Log(s)
	fmt.Fprint(os.Stdout, s)
}

// Metrics is a drill's measured table: one metric per row.
func Metrics(title string) *Table {
	return &Table{Title: title, Header: []string{"metric", "value"}}
}

// SummaryRow is one drill in the summary table.
type SummaryRow struct {
	Drill      string
	Load       string
	Faults     string
	Lost       int
	Duplicates int
	Recovery   time.Duration // the longest recovery the drill measured
	Result     string
}

var summary struct {
	mu   sync.Mutex
	rows []SummaryRow
}

// Summarize adds the drill's row to the summary; its result is decided
// when the test ends (PASS unless it failed).
func Summarize(t *testing.T, row SummaryRow) {
	t.Cleanup(func() {
		row.Result = "PASS"
		if t.Failed() {
			row.Result = "FAIL"
		}
		summary.mu.Lock()
		defer summary.mu.Unlock()
		summary.rows = append(summary.rows, row)
	})
}

// printSummary prints every drill's row (from TestMain, after the drills).
func printSummary(total time.Duration) {
	summary.mu.Lock()
	defer summary.mu.Unlock()
	if len(summary.rows) == 0 {
		return
	}
	t := &Table{
		Title:  fmt.Sprintf("Drill summary (total %s)", total.Round(time.Second)),
		Header: []string{"drill", "load", "faults injected", "lost", "duplicates", "max recovery", "result"},
	}
	for _, r := range summary.rows {
		t.Row(r.Drill, r.Load, r.Faults, r.Lost, r.Duplicates, r.Recovery, r.Result)
	}
	fmt.Fprint(os.Stdout, t.String())
}
