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
	"net/http"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages maps a page name to its template, each parsed with the layout.
var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"date": func(t time.Time) string { return t.UTC().Format("2 January 2006 at 15:04 UTC") },
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"index", "posting", "status", "message"} {
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// Render writes page with data. html/template escapes every value.
func Render(w io.Writer, page string, data any) error {
	return pages[page].Execute(w, data)
}

// Static serves the stylesheet and script under /static/.
func Static() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	return http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
}
