package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/store"
)

// streamTokenKey is the replicas' shared stream token secret in these tests.
var streamTokenKey = bytes.Repeat([]byte{7}, 32)

func streamTokens(t *testing.T, key []byte) *push.StreamTokens {
	t.Helper()
	tokens, err := push.NewStreamTokens(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// streamToken asks the API for a stream token for the partner's user.
func (d *pushDesk) streamToken(t *testing.T, key, user string) string {
	t.Helper()
	status, body, header := d.call(t, http.MethodPost, "/v1/push/stream-tokens", key, `{"user_id":"`+user+`"}`)
	if status != http.StatusCreated || header.Get("Cache-Control") != "no-store" {
		t.Fatalf("stream token for %s: %d %v (Cache-Control %q)", user, status, body, header.Get("Cache-Control"))
	}
	expires, err := time.Parse(time.RFC3339, body["expires_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(expires); left < 14*time.Minute || left > 15*time.Minute {
		t.Fatalf("stream token lasts %s; want 15 minutes", left)
	}
	return body["token"].(string)
}

// streamStatus opens a stream with the query and bearer credential and
// returns its status and WWW-Authenticate, closing it at once.
func (d *pushDesk) streamStatus(t *testing.T, query, bearer string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, d.url+"/v1/push/stream?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// TestStreamTokensOpenOneFansStreamWithoutTheAPIKey: the partner's backend
// gets a token for its linked user only; the app opens and resumes that
// user's stream with it, in the query or as the bearer credential, and no
// API key.
func TestStreamTokensOpenOneFansStreamWithoutTheAPIKey(t *testing.T) {
	d := newPushDesk(t, nil)
	for _, tc := range []struct {
		key, user string
		want      int
	}{
		{"", "user-1", http.StatusUnauthorized},
		{"pk_wrong", "user-1", http.StatusUnauthorized},
		{"pk_other", "user-1", http.StatusNotFound}, // streamly's user is no user of other's
		{"pk_streamly", "o-1", http.StatusNotFound},
		{"pk_streamly", "", http.StatusUnprocessableEntity},
	} {
		if status, body, _ := d.call(t, http.MethodPost, "/v1/push/stream-tokens", tc.key, `{"user_id":"`+tc.user+`"}`); status != tc.want {
			t.Errorf("token for %q with key %q: %d %v; want %d", tc.user, tc.key, status, body, tc.want)
		}
	}
	token := d.streamToken(t, "pk_streamly", "user-1")

	s1 := openSSE(t, d.url, "", "token="+token, "")
	s1.start(t)
	d.deliver(t, d.hub, 1)
	d.deliver(t, d.hub, 2)
	last := s1.expect(t, 1, 2)[1].id
	// The fan's other device keeps the app open (a push is kept only while
	// something can take it) while this one drops off.
	openSSE(t, d.url, "", "token="+d.streamToken(t, "pk_streamly", "user-1"), "").start(t)
	s1.close()
	if _, ok := d.deliver(t, d.hub, 3); !ok {
		t.Fatal("push 3: no stream took it")
	}

	// EventSource reconnects with the same URL and Last-Event-ID.
	s2 := openSSE(t, d.url, "", "token="+token, last)
	if id := s2.start(t); id != last {
		t.Fatalf("resumed stream starts after %q, want %q", id, last)
	}
	s2.expect(t, 3)
	s2.close()
	// A client that sets headers sends the token as its bearer credential, with the query's resume point.
	s3 := openSSE(t, d.url, token, "user_id=user-1&last_event_id="+last, "")
	s3.expect(t, 3)
	d.deliver(t, d.hub, 4)
	s3.expect(t, 4)
}

// TestPushStreamRefusesTokensItShouldNot: a token opens only its own
// user's stream while the account stays linked to its fan, until it ends,
// and only if this cluster signed it.
func TestPushStreamRefusesTokensItShouldNot(t *testing.T) {
	d := newPushDesk(t, nil)
	ctx := t.Context()
	cy, di := uuid.New(), uuid.New()
	for _, err := range []error{
		d.store.PutFan(ctx, store.Fan{ID: cy, DisplayName: "Cy", TimeZone: "UTC"}),
		d.store.PutFan(ctx, store.Fan{ID: di, DisplayName: "Di", TimeZone: "UTC"}),
		d.store.LinkAccount(ctx, "streamly", "user-2", cy),
		d.store.LinkAccount(ctx, "streamly", "user-3", di),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	good := d.streamToken(t, "pk_streamly", "user-1")
	other := d.streamToken(t, "pk_other", "o-1")
	leaving := d.streamToken(t, "pk_streamly", "user-3")
	if err := d.store.WithdrawConsent(ctx, "streamly", "user-3", "consent withdrawn", "partner:streamly"); err != nil {
		t.Fatal(err)
	}
	// user-2 was linked to another fan when this token was made.
	relinked, _ := streamTokens(t, streamTokenKey).Issue("streamly", "user-2", di, now)
	expired, _ := streamTokens(t, streamTokenKey).Issue("streamly", "user-1", d.fan, now.Add(-16*time.Minute))
	foreign, _ := streamTokens(t, bytes.Repeat([]byte{8}, 32)).Issue("streamly", "user-1", d.fan, now)
	payload, mac, _ := strings.Cut(good, ".")
	tampered := payload + "." + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, mac)
	// The payload of other's token with the signature of streamly's.
	otherPayload, _, _ := strings.Cut(other, ".")
	spliced := otherPayload + "." + mac

	for _, tc := range []struct {
		name, query, bearer string
		want                int
	}{
		{"no credential", "user_id=user-1", "", http.StatusUnauthorized},
		{"expired", "token=" + expired, "", http.StatusUnauthorized},
		{"expired bearer", "", expired, http.StatusUnauthorized},
		{"signed with another key", "token=" + foreign, "", http.StatusUnauthorized},
		{"tampered signature", "token=" + tampered, "", http.StatusUnauthorized},
		{"spliced payload", "token=" + spliced, "", http.StatusUnauthorized},
		{"malformed", "token=pst_nothing", "", http.StatusUnauthorized},
		{"another user of the same partner", "token=" + good + "&user_id=user-2", "", http.StatusForbidden},
		{"another partner's user", "token=" + other + "&user_id=user-1", "", http.StatusForbidden},
		{"account unlinked since", "token=" + leaving, "", http.StatusForbidden},
		{"account linked to another fan since", "token=" + relinked, "", http.StatusForbidden},
		{"malformed resume point", "token=" + good + "&last_event_id=x", "", http.StatusBadRequest},
	} {
		status, challenge := d.streamStatus(t, tc.query, tc.bearer)
		if status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, status, tc.want)
		}
		if tc.want == http.StatusUnauthorized && !strings.HasPrefix(challenge, "Bearer") {
			t.Errorf("%s: 401 with WWW-Authenticate %q", tc.name, challenge)
		}
	}
	if d.hub.Online(d.fan) || d.hub.Online(cy) || d.hub.Online(d.other) {
		t.Fatal("a refused stream left a fan online")
	}
	// The good token still opens its own stream.
	openSSE(t, d.url, "", "token="+good+"&user_id=user-1", "").start(t)
	if !d.hub.Online(d.fan) {
		t.Fatal("the fan is not online with its stream open")
	}
}
