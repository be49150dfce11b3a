// Package mail renders and sends the confirmation email and the weekly
// report: text and HTML bodies from embedded templates, a Message-ID
// derived from the application id or the week (so a resend is recognisably
// the same message), a sender that keeps its SMTP connections for the next
// messages, and a classification of SMTP failures into temporary and
// permanent that never quotes the server's text (which can contain the
// address).
package mail
