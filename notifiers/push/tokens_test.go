package push

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestStreamTokensNameTheirGrantUntilTheyEnd(t *testing.T) {
	if _, err := NewStreamTokens(make([]byte, 16), 0); err == nil {
		t.Fatal("a 16-byte key was taken")
	}
	tokens, err := NewStreamTokens(bytes.Repeat([]byte{1}, 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fan, now := uuid.New(), time.Date(2031, 3, 3, 12, 0, 0, 0, time.UTC)
	token, expires := tokens.Issue("streamly", "user.1", fan, now)
	if !IsStreamToken(token) || IsStreamToken("pk_streamly") || !expires.Equal(now.Add(time.Minute)) {
		t.Fatalf("token %q expires %s", token, expires)
	}
	g, err := tokens.Verify(token, now.Add(59*time.Second))
	if err != nil || g != (StreamGrant{PartnerID: "streamly", UserID: "user.1", Fan: fan, Expires: expires}) {
		t.Fatalf("verified %+v, %v", g, err)
	}
	if _, err := tokens.Verify(token, expires); !errors.Is(err, ErrStreamTokenExpired) {
		t.Fatalf("at its expiry: %v; want ErrStreamTokenExpired", err)
	}
	for _, bad := range []string{"", "pst_", "pst_.x", token[:len(token)-1], "x" + token} {
		if _, err := tokens.Verify(bad, now); err == nil {
			t.Fatalf("%q verified", bad)
		}
	}
}
