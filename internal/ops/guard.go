package ops

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/intake/intake/internal/access"
)

// Authenticator returns the valid admin token whose text is secret, or
// access.ErrTokenInvalid (postgres.Store.Authenticate).
type Authenticator func(ctx context.Context, secret string) (access.Token, error)

// Auditor appends one entry to the audit log (postgres.Store.Audit).
type Auditor func(ctx context.Context, e access.Entry) error

// Guard puts River UI (or any operator page) behind the admin tokens.
//
// The token comes as the password of HTTP Basic (any user name) or as a
// Bearer token. Basic, not a login form: browsers ask for it and keep it
// for the session with no page, cookie or session store of ours, and
// scripts use the same token as with the admin API. Because browsers then
// send it on every request, cross-site ones included, unsafe methods also
// pass net/http's CrossOriginProtection, so another site cannot drive an
// operator's browser into cancelling jobs.
//
// Viewers read (GET, HEAD); admins act (every other method). Every action,
// and every refusal, is audited: who, riverui.act or riverui.read, the
// method and path as the target (River UI's paths carry job ids and queue
// names, no personal data), and the outcome.
func Guard(authenticate Authenticator, audit Auditor, logger *slog.Logger, next http.Handler) http.Handler {
	crossOrigin := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		action, need := "riverui.act", access.RoleAdmin
		if read {
			action, need = "riverui.read", access.RoleViewer
		}
		target := r.Method + " " + r.URL.Path
		if len(target) > 200 {
			target = target[:200]
		}
		record := func(c access.Caller, outcome access.Outcome) {
			err := audit(r.Context(), access.Entry{Actor: c.Actor, Action: action, TargetType: "riverui", TargetID: target, Outcome: outcome})
			if err != nil {
				logger.Warn("audit entry not written", "action", action, "err", err)
			}
		}
		secret := credential(r)
		tok, err := authenticate(r.Context(), secret)
		switch {
		case err != nil && !errors.Is(err, access.ErrTokenInvalid):
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
			return
		case err != nil:
			// A browser's first request carries nothing until it is
			// challenged: only a wrong token is a refusal worth a row.
			if secret != "" {
				record(access.Caller{Actor: "anonymous"}, access.OutcomeDenied)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="Intake River UI", charset="UTF-8"`)
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		caller := access.Caller{Actor: access.TokenActor(tok.ID), TokenID: tok.ID, Role: tok.Role}
		if !tok.Role.Allows(need) || (!read && crossOrigin.Check(r) != nil) {
			record(caller, access.OutcomeDenied)
			http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
			return
		}
		if read {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		outcome := access.OutcomeOK
		if sw.status >= 400 {
			outcome = access.OutcomeError
		}
		record(caller, outcome)
	})
}

// credential is the token a request carries: a Basic password or a Bearer
// token.
func credential(r *http.Request) string {
	if _, password, ok := r.BasicAuth(); ok {
		return password
	}
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(bearer)
	}
	return ""
}

// statusWriter remembers the status an action answered, for its audit
// entry.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}
