package sms

import (
	"strings"
	"unicode"
)

// Keyword is what a text a fan sends back asks for, under the carriers' rules
// for opt-out, opt-in and help keywords.
type Keyword string

// Keywords a fan's text can carry.
const (
	// KeywordNone is any other text: it changes nothing.
	KeywordNone Keyword = ""
	// KeywordStop asks for no more texts from this sender.
	KeywordStop Keyword = "stop"
	// KeywordStart takes back an earlier stop.
	KeywordStart Keyword = "start"
	// KeywordHelp asks who is texting and how to stop it.
	KeywordHelp Keyword = "help"
)

// keywords are the default English keywords of Twilio's (Advanced) Opt-Out
// handling for long codes, toll-free numbers and short codes.
var keywords = map[string]Keyword{
	"STOP": KeywordStop, "STOPALL": KeywordStop, "UNSUBSCRIBE": KeywordStop, "CANCEL": KeywordStop,
	"END": KeywordStop, "QUIT": KeywordStop, "REVOKE": KeywordStop, "OPTOUT": KeywordStop,
	"START": KeywordStart, "UNSTOP": KeywordStart, "YES": KeywordStart,
	"HELP": KeywordHelp, "INFO": KeywordHelp,
}

// ParseKeyword classifies a fan's text the way Twilio does: the whole text,
// in any case and without the spaces around it, must be the keyword. Trailing
// punctuation ("Stop.") is ignored too: honouring an opt-out Twilio did not
// recognize errs on the fan's side.
func ParseKeyword(body string) Keyword {
	word := strings.TrimRightFunc(strings.TrimSpace(body), func(r rune) bool {
		return unicode.IsPunct(r) || unicode.IsSpace(r)
	})
	return keywords[strings.ToUpper(word)]
}

// KeywordOf classifies an inbound message. optOutType is Twilio's own
// classification (the OptOutType parameter, sent when Advanced Opt-Out
// recognized one of the Messaging Service's keywords, custom ones included);
// without it the body is parsed.
func KeywordOf(body, optOutType string) Keyword {
	switch strings.ToUpper(strings.TrimSpace(optOutType)) {
	case "STOP":
		return KeywordStop
	case "START":
		return KeywordStart
	case "HELP":
		return KeywordHelp
	}
	return ParseKeyword(body)
}
