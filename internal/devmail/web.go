package devmail

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// Content-Security-Policy of the mailbox's own pages: no scripts, nothing
// remote, frames only from the mailbox itself (the HTML body).
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Content-Security-Policy of a message's HTML body: it may style itself and
// nothing else (no scripts, no images or fonts fetched, so no tracking).
const htmlBodyCSP = "default-src 'none'; style-src 'unsafe-inline'"

// handler serves the mailbox:
//
//	GET /                    the messages, newest first
//	GET /messages/{n}        one message: headers, text body, HTML body in a sandboxed iframe
//	GET /messages/{n}/html   the HTML body alone, under htmlBodyCSP
//	GET /messages/{n}/raw    the message as received, as plain text
func (c *Catcher) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		render(w, "list.html", map[string]any{
			"Messages": c.box.list(),
			"SMTPAddr": c.smtpAddr.String(),
			"Capacity": c.box.capacity,
		})
	})
	mux.HandleFunc("GET /messages/{n}", c.withMessage(func(w http.ResponseWriter, m Message) {
		render(w, "message.html", m)
	}))
	mux.HandleFunc("GET /messages/{n}/html", c.withMessage(func(w http.ResponseWriter, m Message) {
		if m.HTML == "" {
			http.Error(w, "this message has no HTML body", http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", htmlBodyCSP)
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("X-Frame-Options", "SAMEORIGIN")
		_, _ = w.Write([]byte(m.HTML))
	}))
	mux.HandleFunc("GET /messages/{n}/raw", c.withMessage(func(w http.ResponseWriter, m Message) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(m.Raw)
	}))
	return localOnly(secureHeaders(mux))
}

// withMessage resolves {n} to a kept message or answers 404.
func (c *Catcher) withMessage(fn func(http.ResponseWriter, Message)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		m, ok := c.box.get(n)
		if !ok {
			http.Error(w, fmt.Sprintf("message %d is not in the mailbox (it keeps the last %d)", n, c.box.capacity),
				http.StatusNotFound)
			return
		}
		fn(w, m)
	}
}

func render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// secureHeaders sets the defaults every answer gets; the HTML body
// overrides the policy and framing with its own.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// localOnly refuses requests whose Host is a name other than localhost, so
// a web page cannot read the mailbox through DNS rebinding (a name of its
// own that it later points at 127.0.0.1). IP literals are fine: rebinding
// needs a name.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if net.ParseIP(strings.Trim(host, "[]")) == nil && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
			http.Error(w, "the mailbox answers only on localhost or an IP address", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
