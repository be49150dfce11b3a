//go:build drills

package drill

import (
	"fmt"
	"testing"
	"time"
)

// TestSlowSMTP: an SMTP server that answers every command it can hold back
// just under INTAKE_SMTP_TIMEOUT, so each send takes most of the job's
// timeout, with River's rescue compressed as in every drill and no worker
// killed. Invariant 5: a second copy can only come from a worker dying, so
// here there must be none, and invariant 4: every email arrives.
//
// Before the fence a send could outlive its job's timeout and its rescue
// (go-mail gave each stage a fresh deadline and took no context), and a
// rescued run could send while the first was still talking to the server.
func TestSlowSMTP(t *testing.T) {
	const (
		backlog     = 300
		smtpTimeout = 300 * time.Millisecond
		replyDelay  = 280 * time.Millisecond
	)
	c := NewCluster(t, ClusterOpts{Workers: 2, Seed: backlog, Env: map[string]string{
		"INTAKE_SMTP_TIMEOUT": smtpTimeout.String(),
	}})
	c.SMTP.SetReplyDelay(replyDelay)
	began := time.Now()

	drain := c.WaitDrained(t, began, 3*time.Minute)
	v := c.Check(t, Expect{Seeded: backlog})
	attempts := c.count(t, `SELECT coalesce(sum(attempts), 0) FROM deliveries`)
	snoozed := c.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND metadata ? 'snoozes'`)
	rescued := c.count(t, `SELECT count(*) FROM river_job WHERE kind = 'confirmation_email' AND `+rescuedSQL)

	m := Metrics("slow SMTP: results")
	m.Row("backlog (seeded applications), workers", fmt.Sprintf("%d, 2", backlog))
	m.Row("INTAKE_SMTP_TIMEOUT / every reply delayed by", fmt.Sprintf("%s / %s", smtpTimeout, replyDelay))
	m.Row("INTAKE_JOB_TIMEOUT / RECORD_TIMEOUT / RESCUE_AFTER", fmt.Sprintf("%s / %s / %s",
		c.env["INTAKE_JOB_TIMEOUT"], c.env["INTAKE_RECORD_TIMEOUT"], c.env["INTAKE_RESCUE_AFTER"]))
	m.Row("emails received / distinct Message-IDs", fmt.Sprintf("%d / %d", v.EmailsReceived, v.Delivered))
	m.Row("lost emails / lost events", fmt.Sprintf("%d / %d", v.LostEmails, v.LostEvents))
	m.Row("duplicate emails (must be 0)", v.Duplicates)
	m.Row("send attempts (ledger)", attempts)
	m.Row("email jobs snoozed behind a live lease / rescued", fmt.Sprintf("%d / %d", snoozed, rescued))
	m.Row("emails all out", drain.Emails)
	m.Row("everything settled", drain.Settled)
	m.Print(t)
	Summarize(t, SummaryRow{
		Drill:      "slow SMTP",
		Load:       fmt.Sprintf("%d backlog, 2 workers", backlog),
		Faults:     fmt.Sprintf("every SMTP reply %s (timeout %s)", replyDelay, smtpTimeout),
		Lost:       v.Lost,
		Duplicates: v.Duplicates,
		Recovery:   drain.Settled,
	})
}
