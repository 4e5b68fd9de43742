package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/store"
)

// pushDesk is a database with partners streamly (pk_streamly) and other
// (pk_other); fan is streamly's user-1, and other's user o-1 is another fan.
type pushDesk struct {
	url      string
	dbURL    string
	store    *store.Store
	hub      *push.Hub
	fan      uuid.UUID // streamly's user-1
	other    uuid.UUID // other's o-1
	attempts chan push.WebhookAttempt
}

type replicaOptions struct {
	// receiver, when set, is the only webhook server its hub trusts.
	receiver *httptest.Server
	attempts chan push.WebhookAttempt
	// presenceTTL, when set, replaces the default 30s.
	presenceTTL time.Duration
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newPushDesk starts a database and one replica (a hub and an API server on it).
func newPushDesk(t *testing.T, receiver *httptest.Server) *pushDesk {
	t.Helper()
	ctx := t.Context()
	d := &pushDesk{dbURL: pgtemp.New(t), fan: uuid.New(), attempts: make(chan push.WebhookAttempt, 64)}
	d.store = openStore(t, d.dbURL)
	other := uuid.New()
	d.other = other
	for _, err := range []error{
		d.store.PutPartner(ctx, store.Partner{ID: "streamly", Name: "Streamly", APIKey: "pk_streamly"}),
		d.store.PutPartner(ctx, store.Partner{ID: "other", Name: "Other", APIKey: "pk_other"}),
		d.store.PutFan(ctx, store.Fan{ID: d.fan, DisplayName: "Ada", TimeZone: "UTC"}),
		d.store.PutFan(ctx, store.Fan{ID: other, DisplayName: "Bo", TimeZone: "UTC"}),
		d.store.LinkAccount(ctx, "streamly", "user-1", d.fan),
		d.store.LinkAccount(ctx, "other", "o-1", other),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	d.hub, d.url = startReplica(t, d.store, replicaOptions{receiver: receiver, attempts: d.attempts})
	return d
}

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{URL: url, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// startReplica runs a hub on st and serves the API with it, until the test ends.
func startReplica(t *testing.T, st *store.Store, o replicaOptions) (*push.Hub, string) {
	t.Helper()
	cfg := push.Config{Store: st, SecretKey: bytes.Repeat([]byte{9}, 32), Logger: quiet,
		WebhookBackoff: time.Millisecond, WebhookMaxBackoff: 10 * time.Millisecond, WebhookMaxAttempts: 3, WebhookTimeout: 5 * time.Second,
		PresenceTTL: o.presenceTTL}
	if o.receiver != nil {
		cfg.WebhookClient, cfg.AllowPrivateWebhooks = o.receiver.Client(), true
	}
	if o.attempts != nil {
		cfg.OnWebhookAttempt = func(a push.WebhookAttempt) { o.attempts <- a }
	}
	hub, err := push.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- hub.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	})
	h, err := api.New(api.Config{Partners: st, Push: hub, StreamTokens: streamTokens(t, streamTokenKey), Heartbeat: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return hub, srv.URL
}

func (d *pushDesk) deliver(t *testing.T, hub *push.Hub, n int) (string, bool) {
	t.Helper()
	id, ok, err := hub.Deliver(t.Context(), d.fan, uuid.Nil, "offer", fmt.Appendf(nil, `{"n":%d}`, n))
	if err != nil {
		t.Fatal(err)
	}
	return id, ok
}

// sse is a client's view of a push stream.
type sse struct {
	events   chan sseEvent // blocks with data
	ids      chan string   // blocks with an id and no data (where the stream starts)
	comments chan string   // heartbeats and the like; the oldest are dropped
	cancel   context.CancelFunc
	done     chan struct{}
}

type sseEvent struct{ id, event, data string }

// openSSE opens a push stream; lastID, when set, goes in the Last-Event-ID header.
func openSSE(t *testing.T, base, key, query, lastID string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/push/stream?"+query, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		cancel()
		t.Fatalf("push stream %s: status %d, %s", query, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{events: make(chan sseEvent, 256), ids: make(chan string, 8), comments: make(chan string, 8), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var cur sseEvent
		var hasID bool
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				switch {
				case cur.data != "":
					select {
					case s.events <- cur:
					case <-ctx.Done():
						return
					}
				case hasID:
					select {
					case s.ids <- cur.id:
					case <-ctx.Done():
						return
					}
				}
				cur, hasID = sseEvent{}, false
			case strings.HasPrefix(line, ":"):
				select {
				case s.comments <- strings.TrimSpace(line[1:]):
				default:
				}
			case strings.HasPrefix(line, "id: "):
				cur.id, hasID = line[4:], true
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sse) close() {
	s.cancel()
	<-s.done
}

// within receives from ch, failing the test after 10s.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		var zero T
		return zero
	}
}

func (s *sse) start(t *testing.T) string {
	t.Helper()
	return within(t, s.ids, "starting id")
}

func (s *sse) next(t *testing.T) sseEvent {
	t.Helper()
	return within(t, s.events, "push")
}

// expect reads pushes and checks their data's n, in order.
func (s *sse) expect(t *testing.T, ns ...int) []sseEvent {
	t.Helper()
	var out []sseEvent
	for _, n := range ns {
		e := s.next(t)
		var data struct{ N int }
		if err := json.Unmarshal([]byte(e.data), &data); err != nil || e.event != "offer" || data.N != n {
			t.Fatalf("got push %+v, want n=%d", e, n)
		}
		out = append(out, e)
	}
	return out
}

func TestPushStreamResumesFromLastEventIDWithoutLossOrRepeat(t *testing.T) {
	d := newPushDesk(t, nil)
	s1 := openSSE(t, d.url, "pk_streamly", "user_id=user-1", "")
	if id := s1.start(t); id != "0" {
		t.Fatalf("a fan with no pushes starts after %q, want 0", id)
	}
	var ids []string
	for n := 1; n <= 3; n++ {
		id, ok := d.deliver(t, d.hub, n)
		if !ok {
			t.Fatalf("push %d: no stream took it", n)
		}
		ids = append(ids, id)
	}
	got := s1.expect(t, 1, 2, 3)
	for i, e := range got {
		if e.id != ids[i] {
			t.Fatalf("push %d has SSE id %q, Deliver said %q", i+1, e.id, ids[i])
		}
	}
	last := got[2].id

	// The fan's other device keeps the app open while this one drops off.
	other := openSSE(t, d.url, "pk_streamly", "user_id=user-1", "")
	other.start(t)
	s1.close()
	for n := 4; n <= 6; n++ {
		if _, ok := d.deliver(t, d.hub, n); !ok {
			t.Fatalf("push %d: no stream took it", n)
		}
	}
	other.expect(t, 4, 5, 6)

	// Back with Last-Event-ID: exactly what was missed, then live.
	s2 := openSSE(t, d.url, "pk_streamly", "user_id=user-1", last)
	if id := s2.start(t); id != last {
		t.Fatalf("resumed stream starts after %q, want %q", id, last)
	}
	missed := s2.expect(t, 4, 5, 6)
	d.deliver(t, d.hub, 7)
	s2.expect(t, 7)
	d.deliver(t, d.hub, 8)
	s2.expect(t, 8) // nothing repeated before it

	// Clients that cannot set headers resume with the query parameter.
	s3 := openSSE(t, d.url, "pk_streamly", "user_id=user-1&last_event_id="+missed[1].id, "")
	s3.expect(t, 6, 7, 8)

	// The stream sends heartbeats.
	for beats := 0; beats < 2; {
		select {
		case c := <-s2.comments:
			switch c {
			case "heartbeat":
				beats++
			case "connected":
			default:
				t.Fatalf("comment %q, want heartbeats", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
}

func TestPushStreamCarriesEveryPushOnceAcrossTheReplayBoundary(t *testing.T) {
	d := newPushDesk(t, nil)
	anchor := openSSE(t, d.url, "pk_streamly", "user_id=user-1", "")
	anchor.start(t)
	var mu sync.Mutex
	var seqs []int64
	record := func(id string) {
		seq, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		seqs = append(seqs, seq)
		mu.Unlock()
	}
	for n := range 10 {
		id, _ := d.deliver(t, d.hub, n)
		record(id)
	}
	after := seqs[4]
	// Pushes keep coming from several writers while the stream resumes.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				id, ok, err := d.hub.Deliver(context.Background(), d.fan, uuid.Nil, "offer", fmt.Appendf(nil, `{"n":%d}`, 100+w*10+i))
				if err != nil || !ok {
					t.Errorf("push: %v, %v", ok, err)
					return
				}
				record(id)
			}
		})
	}
	resumed := openSSE(t, d.url, "pk_streamly", "user_id=user-1", strconv.FormatInt(after, 10))
	wg.Wait()
	slices.Sort(seqs)
	var want []int64
	for _, s := range seqs {
		if s > after {
			want = append(want, s)
		}
	}
	var got []int64
	for range want {
		seq, err := strconv.ParseInt(resumed.next(t).id, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, seq)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("resumed after %d: got %v\nwant %v", after, got, want)
	}
	final, _ := d.deliver(t, d.hub, 999)
	if e := resumed.next(t); e.id != final {
		t.Fatalf("after the last push, got %+v: want only the new one, %s", e, final)
	}
}

func TestAPushAppendedOnOneReplicaReachesAStreamHeldByAnother(t *testing.T) {
	d := newPushDesk(t, nil) // replica A: d.hub
	hubB, urlB := startReplica(t, openStore(t, d.dbURL), replicaOptions{})
	if d.hub.Online(d.fan) || hubB.Online(d.fan) {
		t.Fatal("online before any stream opened")
	}
	if _, ok := d.deliver(t, d.hub, 0); ok {
		t.Fatal("a push was taken with no stream open and no webhook")
	}
	stream := openSSE(t, urlB, "pk_streamly", "user_id=user-1", "")
	stream.start(t)
	if !d.hub.Online(d.fan) {
		t.Fatal("replica A does not see the stream replica B holds")
	}
	if r, err := d.hub.Reach(t.Context(), d.fan); err != nil || !r.Stream || r.Webhook {
		t.Fatalf("reach from replica A: %+v, %v", r, err)
	}
	id, ok := d.deliver(t, d.hub, 1)
	if !ok {
		t.Fatal("replica A refused a push for a fan in the app on replica B")
	}
	if e := stream.expect(t, 1)[0]; e.id != id {
		t.Fatalf("SSE id %q, want %q", e.id, id)
	}
	// Replicas' LISTEN connections drop: they reconnect, and a push announced
	// while they were away still reaches the stream.
	var dropped int
	if err := d.store.Pool().QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN crescendo_push%'`).Scan(&dropped); err != nil || dropped == 0 {
		// Replica B's is among them: it listened to carry push 1.
		t.Fatalf("dropped %d listening connections (%v)", dropped, err)
	}
	d.deliver(t, d.hub, 2)
	stream.expect(t, 2)

	// A stream closing on replica B takes its fan out of the app for every
	// replica at once (held here without HTTP, whose end the server sees later).
	held, err := hubB.Open(t.Context(), d.other)
	if err != nil {
		t.Fatal(err)
	}
	if !d.hub.Online(d.other) {
		t.Fatal("replica A does not see a stream replica B opened")
	}
	held.Close()
	if d.hub.Online(d.other) {
		t.Fatal("online after the fan's only stream closed")
	}
	if _, ok, err := d.hub.Deliver(t.Context(), d.other, uuid.Nil, "offer", []byte(`{}`)); ok || err != nil {
		t.Fatalf("a push was taken after the stream closed: %v, %v", ok, err)
	}
}

func TestErasingTheFanEndsItsStreams(t *testing.T) {
	d := newPushDesk(t, nil)
	_, url := startReplica(t, d.store, replicaOptions{presenceTTL: 300 * time.Millisecond})
	stream := openSSE(t, url, "pk_streamly", "user_id=user-1", "")
	stream.start(t)
	if err := d.store.EraseFan(t.Context(), d.fan, "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stream.done: // the server ended it at its next presence renewal
	case <-time.After(10 * time.Second):
		t.Fatal("the erased fan's stream is still open")
	}
	if _, ok := d.deliver(t, d.hub, 1); ok {
		t.Fatal("a push to an erased fan was taken")
	}
}

func TestPushStreamAuthenticatesThePartnerAndItsUser(t *testing.T) {
	d := newPushDesk(t, nil)
	for _, tc := range []struct {
		key, query, lastID string
		want               int
	}{
		{"", "user_id=user-1", "", 401},
		{"pk_wrong", "user_id=user-1", "", 401},
		{"pk_other", "user_id=user-1", "", 404}, // another partner's user
		{"pk_streamly", "user_id=o-1", "", 404}, // a user of the other partner
		{"pk_streamly", "user_id=nobody", "", 404},
		{"pk_streamly", "", "", 400},
		{"pk_streamly", "user_id=user-1", "abc", 400},
		{"pk_streamly", "user_id=user-1&last_event_id=-4", "", 400},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, d.url+"/v1/push/stream?"+tc.query, nil)
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		if tc.lastID != "" {
			req.Header.Set("Last-Event-ID", tc.lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("key %q %s Last-Event-ID %q: status %d, want %d", tc.key, tc.query, tc.lastID, resp.StatusCode, tc.want)
		}
		if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("key %q: 401 without WWW-Authenticate", tc.key)
		}
	}
	if d.hub.Online(d.fan) {
		t.Fatal("a refused stream left the fan online")
	}
}

// verifyPushSignature checks a webhook POST as the README tells partners to,
// without Crescendo's code: Crescendo-Signature holds "v1=" and the lower-case
// hex HMAC-SHA256, keyed with the secret exactly as PUT returned it, of the
// Crescendo-Timestamp value (Unix seconds), a dot and the raw body; the
// timestamp must be within five minutes of now.
func verifyPushSignature(secret string, h http.Header, body []byte, now time.Time) error {
	ts := h.Get("Crescendo-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", ts, err)
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > 5*time.Minute || skew < -5*time.Minute {
		return fmt.Errorf("timestamp %s is %s from now", ts, skew)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, part := range strings.Split(h.Get("Crescendo-Signature"), ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(part), "v1=")
		if !ok {
			continue
		}
		if got, err := hex.DecodeString(v); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}

// hookCall is one POST a webhook receiver got.
type hookCall struct {
	header http.Header
	body   []byte
	path   string
}

// newReceiver is a partner backend answering each POST with the status
// answer gives for the n-th call to its path (1 for the first).
func newReceiver(t *testing.T, answer func(path string, n int) int) (*httptest.Server, chan hookCall) {
	t.Helper()
	calls := make(chan hookCall, 64)
	var mu sync.Mutex
	counts := map[string]int{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		counts[r.URL.Path]++
		n := counts[r.URL.Path]
		mu.Unlock()
		calls <- hookCall{header: r.Header.Clone(), body: body, path: r.URL.Path}
		w.WriteHeader(answer(r.URL.Path, n))
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

// call makes an API request with a partner key; body is JSON.
func (d *pushDesk) call(t *testing.T, method, path, key, body string) (int, map[string]any, http.Header) {
	t.Helper()
	var payload any
	if body != "" {
		payload = json.RawMessage(body)
	}
	r := (&tenants{url: d.url}).do(t, method, path, key, payload)
	var out map[string]any
	_ = json.Unmarshal(r.body, &out)
	return r.status, out, r.header
}

func TestPartnerWebhooksAreRegisteredAndSignedPushesVerify(t *testing.T) {
	receiver, calls := newReceiver(t, func(string, int) int { return http.StatusNoContent })
	d := newPushDesk(t, receiver)

	if status, _, _ := d.call(t, "PUT", "/v1/push/webhook", "", `{"url":"`+receiver.URL+`"}`); status != 401 {
		t.Fatalf("no key: %d", status)
	}
	if status, body, _ := d.call(t, "PUT", "/v1/push/webhook", "pk_streamly", `{"url":"http://hooks.example.com/"}`); status != 422 ||
		!strings.Contains(fmt.Sprint(body["errors"]), "url: not an https URL") {
		t.Fatalf("http URL: %d %v", status, body)
	}
	if status, _, _ := d.call(t, "PUT", "/v1/push/webhook", "pk_streamly", `{"url":"https://x.example/","events":["offer"]}`); status != 400 {
		t.Fatalf("unknown field: %d", status)
	}
	hookURL := receiver.URL + "/hooks/crescendo"
	status, reg, header := d.call(t, "PUT", "/v1/push/webhook", "pk_streamly", `{"url":"`+hookURL+`"}`)
	secret, _ := reg["secret"].(string)
	if status != 201 || reg["url"] != hookURL || !strings.HasPrefix(secret, "whsec_") || header.Get("Cache-Control") != "no-store" {
		t.Fatalf("registering: %d %v %v", status, reg, header)
	}
	if status, got, _ := d.call(t, "GET", "/v1/push/webhook", "pk_streamly", ""); status != 200 || got["url"] != hookURL || got["secret"] != nil {
		t.Fatalf("reading the registration: %d %v", status, got)
	}
	if status, _, _ := d.call(t, "GET", "/v1/push/webhook", "pk_other", ""); status != 404 {
		t.Fatalf("another partner sees a webhook: %d", status)
	}
	var sealed []byte
	if err := d.store.Pool().QueryRow(t.Context(), `SELECT secret FROM partner_webhooks WHERE partner_id = 'streamly'`).Scan(&sealed); err != nil ||
		bytes.Contains(sealed, []byte(secret)) {
		t.Fatalf("the secret is stored as it is (%v)", err)
	}

	// No stream is open: the webhook takes the push.
	id, ok := d.deliver(t, d.hub, 1)
	if !ok {
		t.Fatal("a push was refused with a webhook registered")
	}
	c := within(t, calls, "webhook POST")
	if err := verifyPushSignature(secret, c.header, c.body, time.Now()); err != nil {
		t.Fatalf("signature does not verify: %v (headers %v)", err, c.header)
	}
	if verifyPushSignature(secret, c.header, append(c.body, ' '), time.Now()) == nil ||
		verifyPushSignature("whsec_other", c.header, c.body, time.Now()) == nil ||
		verifyPushSignature(secret, c.header, c.body, time.Now().Add(10*time.Minute)) == nil {
		t.Fatal("the verifier takes a changed body, another secret or a stale timestamp")
	}
	var body struct {
		ID            string          `json:"id"`
		Seq           int64           `json:"seq"`
		Event         string          `json:"event"`
		PartnerUserID string          `json:"partner_user_id"`
		CreatedAt     time.Time       `json:"created_at"`
		Data          json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(c.body, &body); err != nil {
		t.Fatal(err)
	}
	if c.path != "/hooks/crescendo" || strconv.FormatInt(body.Seq, 10) != id || body.Event != "offer" || body.PartnerUserID != "user-1" ||
		body.ID != c.header.Get("Crescendo-Delivery") || c.header.Get("Crescendo-Attempt") != "1" || string(body.Data) != `{"n":1}` ||
		c.header.Get("Content-Type") != "application/json" || body.CreatedAt.IsZero() {
		t.Fatalf("POST %s %s %v", c.path, c.body, c.header)
	}
	if a := within(t, d.attempts, "webhook attempt"); a.State != store.PushWebhookDelivered || a.Status != 204 || !a.Recorded {
		t.Fatalf("attempt %+v", a)
	}

	// A new PUT replaces the secret at once.
	status, reg, _ = d.call(t, "PUT", "/v1/push/webhook", "pk_streamly", `{"url":"`+hookURL+`"}`)
	rotated, _ := reg["secret"].(string)
	if status != 200 || rotated == secret || !strings.HasPrefix(rotated, "whsec_") {
		t.Fatalf("replacing: %d %v", status, reg)
	}
	d.deliver(t, d.hub, 2)
	c = within(t, calls, "webhook POST")
	if verifyPushSignature(rotated, c.header, c.body, time.Now()) != nil || verifyPushSignature(secret, c.header, c.body, time.Now()) == nil {
		t.Fatal("after rotation the push is not signed with the new secret only")
	}
	within(t, d.attempts, "webhook attempt")

	if status, _, _ := d.call(t, "DELETE", "/v1/push/webhook", "pk_streamly", ""); status != 204 {
		t.Fatalf("deleting: %d", status)
	}
	if status, _, _ := d.call(t, "DELETE", "/v1/push/webhook", "pk_streamly", ""); status != 404 {
		t.Fatalf("deleting twice: %d", status)
	}
	if _, ok := d.deliver(t, d.hub, 3); ok {
		t.Fatal("a push was taken with no stream and no webhook")
	}
}

func TestAWebhookThatFailsTwiceGetsThePushOnceAfterRetries(t *testing.T) {
	receiver, calls := newReceiver(t, func(_ string, n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	d := newPushDesk(t, receiver)
	_, reg, _ := d.call(t, "PUT", "/v1/push/webhook", "pk_streamly", `{"url":"`+receiver.URL+`/hook"}`)
	secret := reg["secret"].(string)
	id, ok := d.deliver(t, d.hub, 1)
	if !ok {
		t.Fatal("push refused")
	}
	for i, want := range []string{store.PushWebhookPending, store.PushWebhookPending, store.PushWebhookDelivered} {
		a := within(t, d.attempts, "webhook attempt")
		if a.Attempt != i+1 || a.State != want || !a.Recorded {
			t.Fatalf("attempt %d: %+v, want %s", i+1, a, want)
		}
		if want == store.PushWebhookPending && (a.Status != 503 || a.RetryIn <= 0) {
			t.Fatalf("attempt %d: %+v", i+1, a)
		}
	}
	var first hookCall
	for i := range 3 {
		c := within(t, calls, "webhook POST")
		if err := verifyPushSignature(secret, c.header, c.body, time.Now()); err != nil {
			t.Fatalf("POST %d: %v", i+1, err)
		}
		if i == 0 {
			first = c
		}
		if c.header.Get("Crescendo-Attempt") != strconv.Itoa(i+1) || c.header.Get("Crescendo-Delivery") != first.header.Get("Crescendo-Delivery") ||
			!bytes.Equal(c.body, first.body) {
			t.Fatalf("POST %d is not the same delivery: %v %s", i+1, c.header, c.body)
		}
	}
	seq, _ := strconv.ParseInt(id, 10, 64)
	states, err := d.store.PushWebhookDeliveries(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].State != store.PushWebhookDelivered || states[0].Attempts != 3 || states[0].LastStatus != 200 || states[0].DeliveredAt == nil {
		t.Fatalf("recorded %+v", states)
	}
	select {
	case c := <-calls:
		t.Fatalf("a fourth POST after delivery: %v", c.header)
	default:
	}
}

func TestAWebhookThatAlwaysFailsEndsFailedWithTheReason(t *testing.T) {
	receiver, calls := newReceiver(t, func(path string, _ int) int {
		if path == "/gone" {
			return http.StatusGone
		}
		return http.StatusServiceUnavailable
	})
	d := newPushDesk(t, receiver)
	// The fan has accounts at both partners; each partner's webhook gets the push with its own user id.
	if err := d.store.LinkAccount(t.Context(), "other", "o-ada", d.fan); err != nil {
		t.Fatal(err)
	}
	d.call(t, "PUT", "/v1/push/webhook", "pk_streamly", `{"url":"`+receiver.URL+`/down"}`)
	d.call(t, "PUT", "/v1/push/webhook", "pk_other", `{"url":"`+receiver.URL+`/gone"}`)
	id, ok := d.deliver(t, d.hub, 1)
	if !ok {
		t.Fatal("push refused")
	}
	final := map[string]push.WebhookAttempt{}
	for len(final) < 2 {
		if a := within(t, d.attempts, "webhook attempt"); a.State != store.PushWebhookPending {
			final[a.PartnerID] = a
		}
	}
	if a := final["streamly"]; a.State != store.PushWebhookFailed || a.Attempt != 3 || a.Status != 503 {
		t.Fatalf("streamly's webhook ended %+v", a)
	}
	if a := final["other"]; a.State != store.PushWebhookFailed || a.Attempt != 1 || a.Status != 410 {
		t.Fatalf("a 410 was retried or not failed: %+v", a)
	}
	seq, _ := strconv.ParseInt(id, 10, 64)
	states, err := d.store.PushWebhookDeliveries(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	byPartner := map[string]store.PushWebhookDeliveryState{}
	for _, s := range states {
		byPartner[s.PartnerID] = s
	}
	if s := byPartner["streamly"]; s.State != store.PushWebhookFailed || s.Attempts != 3 || s.LastStatus != 503 || s.FailedAt == nil ||
		s.LastError != "gave up after 3 attempts: 503 Service Unavailable" || s.PartnerUserID != "user-1" {
		t.Fatalf("streamly's delivery %+v", s)
	}
	if s := byPartner["other"]; s.State != store.PushWebhookFailed || s.Attempts != 1 || s.LastError != "410 Gone" || s.PartnerUserID != "o-ada" {
		t.Fatalf("other's delivery %+v", s)
	}
	users := map[string]int{}
	for range 4 {
		c := within(t, calls, "webhook POST")
		var body struct {
			PartnerUserID string `json:"partner_user_id"`
		}
		_ = json.Unmarshal(c.body, &body)
		users[c.path+" "+body.PartnerUserID]++
	}
	if users["/down user-1"] != 3 || users["/gone o-ada"] != 1 {
		t.Fatalf("POSTs by path and user: %v", users)
	}
}
