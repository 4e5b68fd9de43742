package offers

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func testRule() Rule {
	return Rule{
		ID: "r1", Version: 3, PerformerID: "p", ShowID: "s",
		Tiers:    []Tier{{Threshold: 20, Perks: []string{"presale"}}, {Threshold: 60, Perks: []string{"vip_upgrade"}}},
		Channels: []Channel{ChannelSMS}, Lifetime: time.Hour,
	}
}

func TestRuleValidateListsEveryProblem(t *testing.T) {
	err := Rule{Tiers: []Tier{{Threshold: 5}, {Threshold: 5}}, Channels: []Channel{"fax"}}.Validate()
	if err == nil {
		t.Fatal("invalid rule accepted")
	}
	for _, want := range []string{"id:", "performer_id:", "show_id:", "tiers[1].threshold", "channels[0]", "lifetime:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := testRule().Validate(); err != nil {
		t.Fatalf("valid rule refused: %v", err)
	}
}

func TestTokenRoundTripAndRotation(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	old, err := NewSigner("k1", map[string][]byte{"k1": k1})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	exp := time.Unix(1_900_000_000, 0)
	tok := old.Token(id, exp)

	rotated, err := NewSigner("k2", map[string][]byte{"k1": k1, "k2": k2})
	if err != nil {
		t.Fatal(err)
	}
	gotID, gotExp, err := rotated.Verify(tok)
	if err != nil || gotID != id || !gotExp.Equal(exp) {
		t.Fatalf("verify after rotation: %v %v %v", gotID, gotExp, err)
	}
	if !strings.HasPrefix(rotated.Token(id, exp), "k2.") {
		t.Fatal("rotated signer does not sign with the new key")
	}

	tampered := strings.Replace(tok, id.String(), uuid.New().String(), 1)
	if _, _, err := rotated.Verify(tampered); !errors.Is(err, ErrTokenSignature) {
		t.Fatalf("tampered token: %v", err)
	}
	if _, _, err := rotated.Verify("nonsense"); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("malformed token: %v", err)
	}
	retired, _ := NewSigner("k2", map[string][]byte{"k2": k2})
	if _, _, err := retired.Verify(tok); !errors.Is(err, ErrTokenUnknownKey) {
		t.Fatalf("retired key: %v", err)
	}
	if _, err := NewSigner("k", map[string][]byte{"k": []byte("short")}); err == nil {
		t.Fatal("short key accepted")
	}
}
