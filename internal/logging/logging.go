// Package logging builds the structured JSON logger every binary uses.
package logging

import (
	"io"
	"log/slog"
)

// New returns a JSON logger at level, tagged with the binary's name.
func New(w io.Writer, level slog.Level, binary string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("binary", binary)
}
