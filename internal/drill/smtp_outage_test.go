//go:build drills

package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/intake/intake/internal/testkit"
)

// TestSMTPOutageAndRefusals: the SMTP server is down, then answers 451,
// then accepts; meanwhile a set of recipients is refused with 550. SPEC
// section 5 (temporary and permanent SMTP failures) and invariant 4: every
// other email is delivered once the server accepts, the status page says
// "retrying" meanwhile, and the refused ones are 'failed', their jobs
// cancelled, never retried (one RCPT each).
//
// Compressed: the outage lasts 20 s and the 451 period 10 s (the scenario
// is minutes); the retry schedule is compressed to match (50 ms doubling to
// 1 s instead of 10 s doubling to 30 min).
func TestSMTPOutageAndRefusals(t *testing.T) {
	const (
		total    = 400
		every    = 20 // every 20th applicant's address is refused: 20 refused
		down     = 20 * time.Second
		tempFail = 10 * time.Second
	)
	c := NewCluster(t, ClusterOpts{APIs: 1, Workers: 2})

	refused := map[string]bool{}
	email := func(i int) string {
		if i%every == 0 {
			return fmt.Sprintf("refused-%d@example.com", i)
		}
		return fmt.Sprintf("smtp-%d@example.com", i)
	}
	for i := 0; i < total; i += every {
		refused[email(i)] = true
	}
	const (
		phaseDown = iota
		phaseTempFail
		phaseAccept
	)
	var phase atomic.Int32
	c.Mail.SetPolicy(func(rcpt string) *smtp.SMTPError {
		switch {
		case refused[rcpt]:
			return testkit.PermFailure()
		case phase.Load() == phaseTempFail:
			return testkit.TempFailure()
		default:
			return nil
		}
	})

	c.SMTP.Stop()
	outageBegan := time.Now()
	outcomes := c.StartLoad(Load{Clients: 20, Total: total, Prefix: "smtp", Email: email, Deadline: time.Minute}).Wait()
	stats := Stats(outcomes)
	if stats.Created != total {
		t.Fatalf("only %d of %d submissions created: %+v", stats.Created, total, stats)
	}

	// Watch a few applicants' status pages through the outage.
	var watched []Outcome
	for _, o := range outcomes {
		if len(watched) < 6 && (len(watched) < 4 && !refused[o.Email] || len(watched) >= 4 && refused[o.Email]) {
			watched = append(watched, o)
		}
	}
	seen := make([]map[string]int, len(watched))
	for i := range seen {
		seen[i] = map[string]int{}
	}
	poll := func(until time.Time) {
		for time.Now().Before(until) {
			for i, o := range watched {
				seen[i][c.emailState(t, o)]++
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	poll(outageBegan.Add(down))
	phase.Store(phaseTempFail)
	c.SMTP.Start()
	poll(time.Now().Add(tempFail))
	phase.Store(phaseAccept)
	acceptedFrom := time.Now()
	rcptsBeforeAccept := c.Mail.Answers()

	drain := c.WaitDrained(t, acceptedFrom, 2*time.Minute)
	v := c.Check(t, Expect{Submissions: outcomes, Refused: refused, MaxDuplicates: 0})

	statusTable := &Table{
		Title:  "SMTP outage: what the status endpoint showed (polls per state)",
		Header: []string{"application", "address", "during outage and 451s", "after"},
	}
	for i, o := range watched {
		final := c.emailState(t, o)
		want := "sent"
		if refused[o.Email] {
			want = "failed"
		}
		if final != want {
			t.Errorf("%s: status page says %q at the end, want %q", o.ID, final, want)
		}
		if seen[i]["retrying"] == 0 {
			t.Errorf("%s: status page never showed \"retrying\" during the outage: %v", o.ID, seen[i])
		}
		statusTable.Row(o.ID, o.Email, fmtStates(seen[i]), final)
	}
	if rcptsBeforeAccept[451] == 0 {
		t.Errorf("no RCPT was answered 451: the temporary-failure period was not exercised")
	}
	maxRefusedRCPT := 0
	for addr := range refused {
		maxRefusedRCPT = max(maxRefusedRCPT, c.Mail.RCPTs(addr))
	}
	op := c.OperatorStatus(t)
	attempts := c.count(t, `SELECT coalesce(max(attempts), 0) FROM deliveries WHERE state = 'sent'`)
	retried := c.count(t, `SELECT count(*) FROM deliveries WHERE state = 'sent' AND attempts > 1`)

	statusTable.Print(t)
	m := Metrics("SMTP outage and refusals: results")
	m.Row("applications (refused addresses)", fmt.Sprintf("%d (%d)", total, len(refused)))
	m.Row("SMTP down (compressed from 2 min)", down)
	m.Row("then RCPT answered 451", tempFail)
	m.Row("RCPTs answered 451 / 550 before accepting", fmt.Sprintf("%d / %d", rcptsBeforeAccept[451], rcptsBeforeAccept[550]))
	m.Row("delivered / failed (550)", fmt.Sprintf("%d / %d", v.Delivered, v.Failed))
	m.Row("delivered emails that needed retries / most attempts", fmt.Sprintf("%d / %d", retried, attempts))
	m.Row("most RCPTs for one refused address", maxRefusedRCPT)
	m.Row("lost emails / lost events", fmt.Sprintf("%d / %d", v.LostEmails, v.LostEvents))
	m.Row("duplicate emails", v.Duplicates)
	m.Row("intakectl status afterwards", fmt.Sprintf("exit %d: %s", op.ExitCode, strings.Join(op.Stuck, "; ")))
	m.Row("emails all out, after SMTP accepts", drain.Emails)
	m.Row("everything settled, after SMTP accepts", drain.Settled)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "SMTP outage + 550s",
		Load:       fmt.Sprintf("%d apps, %d refused", total, len(refused)),
		Faults:     fmt.Sprintf("SMTP down %s, 451 %s (compressed)", down, tempFail),
		Lost:       v.Lost,
		Duplicates: v.Duplicates,
		Recovery:   drain.Emails,
	})
}

// emailState reads an applicant's status endpoint (on a live replica) and
// returns the confirmation email's state.
func (c *Cluster) emailState(t *testing.T, o Outcome) string {
	t.Helper()
	u, err := url.Parse(o.StatusURL)
	if err != nil {
		t.Fatalf("status url %q: %v", o.StatusURL, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.APIURL(0)+u.RequestURI(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "error: " + errKind(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st struct {
		ConfirmationEmail struct {
			State string `json:"state"`
		} `json:"confirmation_email"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &st) != nil {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	return st.ConfirmationEmail.State
}

func fmtStates(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
