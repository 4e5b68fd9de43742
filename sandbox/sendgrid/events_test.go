package sendgrid_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
)

func TestPostEventsSignsLikeSendGrid(t *testing.T) {
	sb, srv, clock := newSandbox(t)
	id := sendOffer(t, srv, "offer-1", "fan@example.com")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	public, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(base64.StdEncoding.EncodeToString(der))
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan []map[string]any, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		stamp := r.Header.Get(eventwebhook.TimestampHTTPHeader)
		ok, err := eventwebhook.VerifySignature(public, body, r.Header.Get(eventwebhook.VerificationHTTPHeader), stamp)
		if err != nil || !ok || stamp != strconv.FormatInt(clock.Now().Unix(), 10) {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		var events []map[string]any
		if err := json.Unmarshal(body, &events); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		received <- events
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	bounce, err := sb.Event(id, "bounce", map[string]any{"type": "bounce", "reason": "550 5.1.1 no such user"})
	if err != nil {
		t.Fatal(err)
	}
	code, err := sb.PostEvents(t.Context(), nil, hook.URL, key, bounce)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("PostEvents: %d, %v", code, err)
	}
	got := <-received
	e := got[0]
	if len(got) != 1 || e["event"] != "bounce" || e["email"] != "fan@example.com" || e["offer_id"] != "offer-1" ||
		e["type"] != "bounce" || !strings.HasPrefix(e["sg_message_id"].(string), id+".") || e["sg_event_id"] == "" ||
		e["timestamp"] != float64(clock.Now().Unix()) {
		t.Fatalf("events %v", got)
	}
	if _, err := sb.Event("no-such-message", "bounce", nil); err == nil {
		t.Fatal("Event about an unknown message: no error")
	}
	// Signed with another key, the webhook refuses it.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := sb.PostEvents(t.Context(), nil, hook.URL, other, bounce); err != nil || code != http.StatusForbidden {
		t.Fatalf("PostEvents with another key: %d, %v; want 403", code, err)
	}
}
