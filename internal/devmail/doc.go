// Package devmail is the mail catcher of `intakectl dev`: an SMTP server
// (go-smtp) on a loopback port that accepts every message, keeps the most
// recent ones in memory, prints a one-line summary of each, and serves a
// small local mailbox web page to read them.
//
// It is a development tool only: no authentication, no TLS, no
// persistence. The mailbox pages are self-contained (no external assets),
// escape everything with html/template, and show a message's HTML body only
// in a sandboxed iframe under a Content-Security-Policy that blocks scripts
// and every remote load.
package devmail
