package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFS embed.FS

// staticFiles serves the stylesheet and script, embedded in the binary.
func staticFiles() http.Handler {
	sub, err := fs.Sub(staticFS, ".")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"num": func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) },
	"num1": func(v float64) string {
		return strconv.FormatFloat(v, 'f', 1, 64)
	},
	"pct":  func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) },
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
}

// pages are the templates, each the layout with one page's blocks.
var pages = func() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/plots.html"))
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "plots" {
			continue
		}
		out[base] = template.Must(template.Must(layout.Clone()).ParseFS(templateFiles, n))
	}
	return out
}()

// page is what the layout shows around every page.
type page struct {
	Title   string
	Nav     string // the navigation entry of the page: overview, rules or live
	Session *session
}

func (c *Console) page(s session, title string) page { return page{Title: title, Session: &s} }

// view is what a page's template gets: the layout's part and the page's own.
type view struct {
	page
	Data any
}

type errorPage struct{ Message string }

type signInForm struct{ Error string }

// render writes a page; a template error is logged and answered 500, since
// nothing was written yet (the page is rendered to a buffer first).
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page, data any) {
	t, ok := pages[name]
	if !ok {
		c.logger.ErrorContext(r.Context(), "rendering console page", slog.String("page", name), slog.String("error", "no such template"))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout.html", view{page: p, Data: data}); err != nil {
		c.logger.ErrorContext(r.Context(), "rendering console page", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}
