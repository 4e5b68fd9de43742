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
		s.SessionGap != 30*time.Minute || s.LinkBase != "http://127.0.0.1:8080/o/" || s.DeliveryWorkers != 128 || s.PublicBaseURL != "http://127.0.0.1:8080" || s.StateVersion != 4 {
		t.Fatalf("defaults: %+v", s)
	}
	env := map[string]string{
		"KAFKA_BROKERS":       "k1:9092, k2:9092",
		"OFFER_SIGNING_KEYS":  "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"SESSION_GAP":         "10m",
		"STATE_CHUNK_VERSION": "3",
	}
	s, err = FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(s.KafkaBrokers) != 2 || s.KafkaBrokers[1] != "k2:9092" || s.SigningKeyID != "k1" || len(s.SigningKeys["k1"]) != 32 || s.SessionGap != 10*time.Minute ||
		s.StateVersion != 3 {
		t.Fatalf("parsed: %+v", s)
	}
	bad := map[string]string{"SESSION_GAP": "soon", "DELIVERY_WORKERS": "-1", "TWILIO_ACCOUNT_SID": "AC1", "OFFER_SIGNING_KEYS": "nocolon",
		"STATE_CHUNK_VERSION": "2"}
	_, err = FromEnv(func(k string) string { return bad[k] })
	for _, want := range []string{"SESSION_GAP", "DELIVERY_WORKERS", "TWILIO_AUTH_TOKEN", "OFFER_SIGNING_KEYS", "STATE_CHUNK_VERSION"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

// TestJobSchedulesAndZone reads per-job cron expressions (which hold spaces
// and commas) and the jobs' time zone, and names what is wrong with bad ones.
func TestJobSchedulesAndZone(t *testing.T) {
	env := map[string]string{
		"JOB_SCHEDULES": " bot-detection=*/5 * * * 1,3 ; webhook-events-prune=CRON_TZ=Europe/Berlin 0 3 * * * ;",
		"JOB_TIME_ZONE": "America/New_York",
	}
	s, err := FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bot-detection": "*/5 * * * 1,3", "webhook-events-prune": "CRON_TZ=Europe/Berlin 0 3 * * *"}
	if len(s.JobSchedules) != len(want) || s.JobSchedules["bot-detection"] != want["bot-detection"] || s.JobSchedules["webhook-events-prune"] != want["webhook-events-prune"] {
		t.Fatalf("JobSchedules %q, want %q", s.JobSchedules, want)
	}
	if s.JobTimeZone.String() != "America/New_York" {
		t.Fatalf("JobTimeZone %v", s.JobTimeZone)
	}
	for _, bad := range []map[string]string{
		{"JOB_SCHEDULES": "bot-detection"},
		{"JOB_SCHEDULES": "a=@hourly;a=@daily"},
		{"JOB_TIME_ZONE": "Mars/Olympus_Mons"},
	} {
		_, err := FromEnv(func(k string) string { return bad[k] })
		for k := range bad {
			if err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%v: error %v does not name %s", bad, err, k)
			}
		}
	}
}
