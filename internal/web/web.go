// Package web holds the applicant pages' templates and static assets,
// embedded so the binary serves them with no build step and no CDN. The
// handlers live in internal/httpapi beside the API's, so routes.go shows the
// whole surface.
package web

import (
	"embed"
	"html/template"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages maps a page name to its template, each parsed with the layout.
var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"date":       func(t time.Time) string { return t.UTC().Format("2 January 2006 at 15:04 UTC") },
		"paragraphs": paragraphs,
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"index", "posting", "status", "message"} {
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// paragraphs splits a description at its blank lines, so each paragraph is
// a <p> of its own (single line breaks stay inside one, shown by the
// stylesheet's pre-line).
func paragraphs(s string) []string {
	var out []string
	for _, p := range blankLine.Split(strings.ReplaceAll(s, "\r\n", "\n"), -1) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var blankLine = regexp.MustCompile(`\n[ \t]*\n`)

// Render writes page with data. html/template escapes every value.
func Render(w io.Writer, page string, data any) error {
	return pages[page].Execute(w, data)
}

// Asset returns the static file name (a path under /static/), and false
// for anything that is not one of the embedded files: directories are never
// listed, and no name leaves the static directory.
func Asset(name string) ([]byte, bool) {
	if !fs.ValidPath(name) || name == "." {
		return nil, false
	}
	b, err := fs.ReadFile(staticFS, "static/"+name)
	return b, err == nil
}
