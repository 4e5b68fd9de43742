package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		if !strings.Contains(string(readme), "| `"+v.Name+"` |") {
			t.Errorf("README settings table lacks %s", v.Name)
		}
	}
}

func TestFromEnvDefaultsAndErrors(t *testing.T) {
	s, err := FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if len(s.KafkaBrokers) != 0 || s.Topic != "fan-activity" || s.DLQTopic != "fan-activity.dlq" ||
		s.SessionGap != 30*time.Minute || s.LinkBase != "http://127.0.0.1:8080/o/" {
		t.Fatalf("defaults: %+v", s)
	}
	env := map[string]string{
		"KAFKA_BROKERS":      "k1:9092, k2:9092",
		"OFFER_SIGNING_KEYS": "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"SESSION_GAP":        "10m",
	}
	s, err = FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(s.KafkaBrokers) != 2 || s.KafkaBrokers[1] != "k2:9092" || s.SigningKeyID != "k1" || len(s.SigningKeys["k1"]) != 32 || s.SessionGap != 10*time.Minute {
		t.Fatalf("parsed: %+v", s)
	}
	bad := map[string]string{"SESSION_GAP": "soon", "DELIVERY_WORKERS": "-1", "TWILIO_ACCOUNT_SID": "AC1", "OFFER_SIGNING_KEYS": "nocolon"}
	_, err = FromEnv(func(k string) string { return bad[k] })
	for _, want := range []string{"SESSION_GAP", "DELIVERY_WORKERS", "TWILIO_AUTH_TOKEN", "OFFER_SIGNING_KEYS"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}
