package dashboard

import (
	"embed"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Page serves the dashboard's page and its assets: GET /dashboard and
// GET /dashboard/assets/{file}. They hold no data (every number comes
// from the events stream, which needs the viewer role once tokens are
// configured), so they are served to anyone who can reach the admin
// listener; the Content-Security-Policy allows scripts, styles and
// connections to this origin only.
func Page() http.Handler {
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/dashboard" || r.URL.Path == "/dashboard/" {
			// The directory: http.FileServer serves its index.html (and
			// would redirect a path that names index.html).
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/assets/"
			files.ServeHTTP(w, r2)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = r.URL.Path[len("/dashboard"):]
		files.ServeHTTP(w, r2)
	})
}
