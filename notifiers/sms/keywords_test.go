package sms_test

import (
	"testing"

	"github.com/crescendo-hq/crescendo/notifiers/sms"
)

func TestKeywordsAreTheWholeTextInAnyCase(t *testing.T) {
	for body, want := range map[string]sms.Keyword{
		"STOP": sms.KeywordStop, " stop\n": sms.KeywordStop, "Stop.": sms.KeywordStop, "stopall": sms.KeywordStop,
		"Unsubscribe": sms.KeywordStop, "cancel": sms.KeywordStop, "END": sms.KeywordStop, "quit!": sms.KeywordStop,
		"revoke": sms.KeywordStop, "OptOut": sms.KeywordStop,
		"start": sms.KeywordStart, "UNSTOP": sms.KeywordStart, "Yes": sms.KeywordStart,
		"help": sms.KeywordHelp, " INFO ": sms.KeywordHelp, "help?": sms.KeywordHelp,
		"": sms.KeywordNone, "please stop": sms.KeywordNone, "stop it": sms.KeywordNone, "STOPP": sms.KeywordNone,
		"ending": sms.KeywordNone, "st op": sms.KeywordNone,
	} {
		if got := sms.ParseKeyword(body); got != want {
			t.Errorf("ParseKeyword(%q) = %q, want %q", body, got, want)
		}
	}
}

func TestTwiliosOwnClassificationWins(t *testing.T) {
	for _, c := range []struct {
		body, optOutType string
		want             sms.Keyword
	}{
		{"ARRET", "STOP", sms.KeywordStop},
		{"hello", "start", sms.KeywordStart},
		{"AIDE", "HELP", sms.KeywordHelp},
		{"STOP", "", sms.KeywordStop},
		{"STOP", "UNKNOWN", sms.KeywordStop},
	} {
		if got := sms.KeywordOf(c.body, c.optOutType); got != c.want {
			t.Errorf("KeywordOf(%q, %q) = %q, want %q", c.body, c.optOutType, got, c.want)
		}
	}
}
