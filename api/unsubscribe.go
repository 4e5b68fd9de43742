package api

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// OptOuts records a fan's choice to get no more messages at a contact point:
// the address suppressed at once and the choice written to the consent
// ledger, in one transaction. *store.Store is one.
type OptOuts interface {
	OptOut(ctx context.Context, c store.ChannelConsent) error
}

// UnsubscribeVerifier opens the token of an email's unsubscribe link and
// returns the address the email went to; *offers.Signer is one.
type UnsubscribeVerifier interface {
	VerifyUnsubscribe(token string) (address string, err error)
}

// Where an unsubscribe came from, as the consent ledger keeps it.
const (
	// sourceOneClick is a mail client's RFC 8058 one-click POST.
	sourceOneClick = "crescendo:one-click"
	// sourceUnsubscribePage is the button of the page the email's link opens.
	sourceUnsubscribePage = "crescendo:unsubscribe-page"
)

// maxUnsubscribeBody bounds what an unsubscribe POST may carry: one field.
const maxUnsubscribeBody = 8 << 10

// routeUnsubscribe serves the unsubscribe link of offer emails, /u/{token},
// when OptOuts and Unsubscribe are configured: GET shows a page whose button
// POSTs, and POST (what mail clients send for RFC 8058's List-Unsubscribe-Post)
// unsubscribes. The token is the only credential.
func (s *server) routeUnsubscribe(mux *http.ServeMux) {
	if s.cfg.OptOuts == nil || s.cfg.Unsubscribe == nil {
		return
	}
	mux.HandleFunc("GET /u/{token}", s.unsubscribePage)
	mux.HandleFunc("POST /u/{token}", s.unsubscribe)
}

// unsubscribeRefusal answers a token that does not open.
func unsubscribeRefusal(err error) (status int, code, detail string) {
	switch {
	case errors.Is(err, offers.ErrTokenMalformed):
		return http.StatusBadRequest, "token_malformed", "this unsubscribe link is not one Crescendo makes"
	case errors.Is(err, offers.ErrTokenUnknownKey):
		return http.StatusForbidden, "token_unknown_key", "this unsubscribe link is sealed with a key Crescendo does not hold"
	}
	return http.StatusForbidden, "token_forged", "this unsubscribe link has been altered"
}

// unsubscribePage shows the address the link stops mail to and a button that
// unsubscribes it. A GET changes nothing: link scanners and prefetchers open
// links in mail without anyone asking to unsubscribe.
func (s *server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	address, err := s.cfg.Unsubscribe.VerifyUnsubscribe(r.PathValue("token"))
	if err != nil {
		status, _, detail := unsubscribeRefusal(err)
		writePage(w, status, pageData{Title: "This link does not work", Text: "Sorry: " + detail + "."})
		return
	}
	writePage(w, http.StatusOK, pageData{
		Title: "Unsubscribe", Text: "Stop ticket offers by email to " + maskAddress(address) + "?", Button: "Unsubscribe",
	})
}

// unsubscribe suppresses the address the token names, at once, and writes
// the opt-out to the consent ledger. The body is RFC 8058's
// "List-Unsubscribe=One-Click", or the page's form; a POST without it
// unsubscribes too, erring on the fan's side. Repeating it is harmless.
func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	address, err := s.cfg.Unsubscribe.VerifyUnsubscribe(r.PathValue("token"))
	if err != nil {
		status, code, detail := unsubscribeRefusal(err)
		writeCodedProblem(w, status, code, detail)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxUnsubscribeBody)
	source, wording := sourceOneClick, "List-Unsubscribe=One-Click"
	switch {
	case r.PostFormValue("via") == "page":
		source, wording = sourceUnsubscribePage, "unsubscribe button"
	case r.PostFormValue("List-Unsubscribe") != "One-Click":
		wording = "a POST without List-Unsubscribe=One-Click"
	}
	err = s.cfg.OptOuts.OptOut(r.Context(), store.ChannelConsent{
		Channel: offers.ChannelEmail, Address: address, Reason: "unsubscribe", Source: source,
		Wording: wording, Actor: "recipient", At: s.cfg.Clock(),
	})
	if err != nil {
		s.logger.ErrorContext(r.Context(), "unsubscribing an email address", slog.Any("error", err))
		writeCodedProblem(w, http.StatusInternalServerError, "internal", "")
		return
	}
	s.logger.InfoContext(r.Context(), "email address unsubscribed", slog.String("source", source))
	writePage(w, http.StatusOK, pageData{
		Title: "Unsubscribed", Text: "You will get no more ticket offers by email at " + maskAddress(address) + ".",
	})
}

// maskAddress shows enough of an address for its owner to recognize it:
// "a***@example.com".
func maskAddress(address string) string {
	local, domain, found := strings.Cut(address, "@")
	if !found || local == "" {
		return "your address"
	}
	first := []rune(local)[0]
	return string(first) + "***@" + domain
}

// pageData is what an unsubscribe page says.
type pageData struct {
	Title, Text, Button string
}

var page = template.Must(template.New("unsubscribe").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1rem}</style>
</head><body>
<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
{{if .Button}}<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click"><input type="hidden" name="via" value="page">
<button type="submit">{{.Button}}</button>
</form>{{end}}
</body></html>
`))

// writePage answers a small HTML page that no cache keeps, no referrer
// learns the link of, and no other site frames.
func writePage(w http.ResponseWriter, status int, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = page.Execute(w, d)
}
