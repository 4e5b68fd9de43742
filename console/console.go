// Package console is the marketer console (F24): server-rendered pages under
// /console/ where marketers write offer rules, dry-run them, watch offers go
// out live and see why a fan got one or not.
//
// The console signs marketers in with the API's own tokens and calls the JSON
// API in process with the signed-in token for everything the API does (rules,
// their validation, dry runs, funnels, explanations), so the console cannot
// let anyone do what the API would refuse them, and its messages are the
// API's. What the API has no route for (the live feed, plots' series) it
// reads through the small interfaces below, scoped to the organization.
package console

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// Authenticator resolves a marketer token to who it speaks for; *store.Store is one.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (store.Principal, bool, error)
}

// Offers is the live view's source: an organization's latest offers, offers
// by id (others' filtered out), and a notice for every offer issued or
// changed; *store.Store is one.
type Offers interface {
	RecentOffers(ctx context.Context, orgID string, limit int) ([]store.LiveOffer, error)
	LiveOffersByID(ctx context.Context, orgID string, ids []uuid.UUID) ([]store.LiveOffer, error)
	ListenOffers(ctx context.Context, onListen func(), onNotice func(uuid.UUID)) error
}

// Stats feeds the plots the API has no route for; *store.Store is one.
type Stats interface {
	OfferTimeline(ctx context.Context, orgID, ruleID string, from, until time.Time, bucket time.Duration) ([]store.TimelineBucket, error)
	PerformerContributions(ctx context.Context, orgID, performerID string, maxFans int) ([]store.FanContributions, bool, error)
}

// Class is what bot detection concluded about fans (F13, F14).
type Class string

// The classes the console shows shares of.
const (
	ClassHuman     Class = "human"
	ClassSuspect   Class = "suspect"
	ClassAutomated Class = "automated"
)

// Classification is bot detection's verdict on one fan, with its reasons.
type Classification struct {
	Class     Class
	Reasons   []string
	UpdatedAt time.Time
}

// Classifications reads bot detection's verdicts. It is optional: without
// one the console says that classification is not available rather than
// guess. ok is false for a fan not classified yet.
type Classifications interface {
	// ClassShares counts the fans of the organization's performers by class.
	ClassShares(ctx context.Context, orgID string) (map[Class]int, error)
	FanClassification(ctx context.Context, fan uuid.UUID) (c Classification, ok bool, err error)
}

// Config configures the console.
type Config struct {
	// API is the JSON API handler the console calls in process, with the
	// signed-in marketer's token.
	API    http.Handler
	Auth   Authenticator
	Offers Offers
	Stats  Stats
	// Scorers give the performers' scoring profiles, to compute the index
	// values whose distribution the rule page plots.
	Scorers interface{ Scorer() *scoring.Scorer }
	// Classifications is optional (see Classifications).
	Classifications Classifications
	// CSRFKey signs the forms' CSRF tokens: at least 32 bytes, the same on
	// every replica (a form may be posted to another one).
	CSRFKey []byte
	// InsecureCookies leaves the Secure attribute off the session cookie, for
	// plain-HTTP development servers and tests; a request that came over TLS
	// always gets a Secure cookie.
	InsecureCookies bool
	// Heartbeat is the interval of the live stream's keep-alive comments.
	Heartbeat time.Duration // default 15s
	// Reauthenticate is how often a live stream checks that its token is
	// still valid, ending the stream once it is revoked.
	Reauthenticate time.Duration // default 1m
	// MaxIndexFans bounds the fans whose index the distribution plot computes.
	MaxIndexFans int // default 5000
	Clock        func() time.Time
	Logger       *slog.Logger
}

// Console serves the console's pages; Run feeds its live view.
type Console struct {
	cfg     Config
	logger  *slog.Logger
	handler http.Handler
	feed    *feed
}

// New returns the console. Its pages are served under /console/.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.Auth == nil || cfg.Offers == nil || cfg.Stats == nil || cfg.Scorers == nil {
		return nil, errors.New("console: API, Auth, Offers, Stats and Scorers are required")
	}
	if len(cfg.CSRFKey) < 32 {
		return nil, errors.New("console: CSRFKey must be at least 32 bytes")
	}
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, 15*time.Second)
	cfg.Reauthenticate = cmp.Or(cfg.Reauthenticate, time.Minute)
	cfg.MaxIndexFans = cmp.Or(cfg.MaxIndexFans, 5000)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	logger := cmp.Or(cfg.Logger, slog.Default()).With(slog.String("component", "console"))
	c := &Console{cfg: cfg, logger: logger, feed: newFeed(cfg.Offers, logger)}
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/", staticFiles()))
	mux.HandleFunc("GET /console/signin", c.signInPage)
	mux.HandleFunc("POST /console/signin", c.signIn)
	mux.HandleFunc("POST /console/signout", c.signOut)
	viewer, editor := c.signedIn(store.RoleViewer), c.signedIn(store.RoleMarketer)
	mux.HandleFunc("GET /console/{$}", viewer(c.overview))
	mux.HandleFunc("GET /console/rules", viewer(c.listRules))
	mux.HandleFunc("GET /console/rules/new", editor(c.newRulePage))
	mux.HandleFunc("POST /console/rules/new", editor(c.createRule))
	mux.HandleFunc("GET /console/rules/{id}", viewer(c.rulePage))
	mux.HandleFunc("POST /console/rules/{id}", editor(c.saveRule))
	mux.HandleFunc("POST /console/rules/{id}/activate", editor(c.activateRule))
	mux.HandleFunc("POST /console/rules/{id}/deactivate", editor(c.deactivateRule))
	mux.HandleFunc("POST /console/rules/{id}/dry-run", editor(c.dryRun))
	mux.HandleFunc("GET /console/live", viewer(c.livePage))
	mux.HandleFunc("GET /console/live/stream", viewer(c.liveStream))
	mux.HandleFunc("GET /console/fans/{fan_id}", viewer(c.fanPage))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", page{Title: "Not found"}, errorPage{Message: "There is no such page in the console."})
	})
	// Browsers say where a request comes from: a cross-origin form post is
	// refused before any handler runs; the CSRF token is the second line, for
	// browsers too old to send Sec-Fetch-Site or Origin.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusForbidden, "error", page{Title: "Refused"}, errorPage{Message: "This form was posted from another site, so it was refused."})
	}))
	c.handler = securityHeaders(csrf.Handler(mux))
	return c, nil
}

// ServeHTTP serves the console's pages.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// Run feeds the live view from the store's offer notices until ctx ends,
// reconnecting after errors.
func (c *Console) Run(ctx context.Context) error { return c.feed.run(ctx) }

// securityHeaders keeps the pages from being framed or loading anything
// from elsewhere: every asset is the console's own.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

const sessionCookie = "crescendo_console"

// session is the signed-in marketer of a request.
type session struct {
	store.Principal
	token string
	CSRF  string
}

// CanEdit reports whether the session may change rules: what templates ask
// to show or hide buttons (the server checks again on every post).
func (s session) CanEdit() bool { return s.Role.AtLeast(store.RoleMarketer) }

type sessionHandler func(w http.ResponseWriter, r *http.Request, s session)

// signedIn lets a request through with its session when its cookie holds a
// valid token of a role of least or above. Without a session a page
// redirects to the sign-in page; a role below least is 403; a form post
// without the session's CSRF token is 403.
func (c *Console) signedIn(least store.Role) func(sessionHandler) http.HandlerFunc {
	return func(h sessionHandler) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			ck, err := r.Cookie(sessionCookie)
			if err != nil || ck.Value == "" {
				http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
				return
			}
			p, ok, err := c.cfg.Auth.Authenticate(r.Context(), ck.Value)
			if err != nil {
				c.fail(w, r, "authenticating console session", err)
				return
			}
			if !ok {
				c.clearSession(w, r)
				http.Redirect(w, r, "/console/signin?expired=1", http.StatusSeeOther)
				return
			}
			s := session{Principal: p, token: ck.Value, CSRF: c.csrfToken(ck.Value)}
			if r.Method == http.MethodPost && !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) {
				c.render(w, r, http.StatusForbidden, "error", c.page(s, "Refused"), errorPage{Message: "This form is out of date or was not made by the console. Go back, reload the page and try again."})
				return
			}
			if !p.Role.AtLeast(least) {
				c.render(w, r, http.StatusForbidden, "error", c.page(s, "Not allowed"),
					errorPage{Message: "A " + string(p.Role) + " token cannot do this; it takes " + string(least) + " or above."})
				return
			}
			h(w, r, s)
		}
	}
}

// csrfToken is the session's CSRF token: an HMAC of its API token, so that
// it needs no server-side state and changes with the token.
func (c *Console) csrfToken(token string) string {
	m := hmac.New(sha256.New, c.cfg.CSRFKey)
	m.Write([]byte("console-csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *Console) setSession(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/console/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: !c.cfg.InsecureCookies || r.TLS != nil, MaxAge: 12 * 3600,
	})
}

func (c *Console) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/console/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: !c.cfg.InsecureCookies || r.TLS != nil, MaxAge: -1})
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	form := signInForm{}
	if r.URL.Query().Get("expired") != "" {
		form.Error = "Your token was revoked or is no longer valid. Sign in with another."
	}
	c.render(w, r, http.StatusOK, "signin", page{Title: "Sign in"}, form)
}

// signIn checks the token typed in and keeps it in the session cookie.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimSpace(r.PostFormValue("token"))
	p, ok, err := c.cfg.Auth.Authenticate(r.Context(), token)
	if err != nil {
		c.fail(w, r, "authenticating console sign-in", err)
		return
	}
	if !ok {
		c.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in"},
			signInForm{Error: "This token is unknown or revoked. Marketer tokens start with " + store.TokenPrefix + "."})
		return
	}
	c.logger.InfoContext(r.Context(), "console sign-in", slog.String("org", p.OrgID), slog.String("token", p.TokenID.String()))
	c.setSession(w, r, token)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// signOut forgets the session; it asks for the CSRF token like any post, so
// another site cannot sign a marketer out.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil && hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(c.csrfToken(ck.Value))) {
		c.clearSession(w, r)
	}
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// apiReply is the JSON API's answer to an in-process call.
type apiReply struct {
	status int
	body   []byte
}

// call makes a request to the JSON API with the session's token.
func (c *Console) call(ctx context.Context, s session, method, path string, body []byte) apiReply {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return apiReply{status: http.StatusInternalServerError, body: []byte(`{"detail":"making request"}`)}
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	rec := &recorder{header: http.Header{}}
	c.cfg.API.ServeHTTP(rec, req)
	return apiReply{status: cmp.Or(rec.status, http.StatusOK), body: rec.body.Bytes()}
}

// recorder keeps an in-process API answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// fail logs an unexpected error and answers a page that says so.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.logger.ErrorContext(r.Context(), what, slog.Any("error", err))
	c.render(w, r, http.StatusInternalServerError, "error", page{Title: "Error"}, errorPage{Message: "Something went wrong on our side; it has been logged. Try again in a moment."})
}
