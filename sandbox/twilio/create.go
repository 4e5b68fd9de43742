package twilio

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

const (
	maxBodyChars     = 1600
	maxMediaURLs     = 10
	maxValidity      = 36000
	statusQueued     = "queued"
	statusAccepted   = "accepted"
	directionOutAPI  = "outbound-api"
	formContentType  = "application/x-www-form-urlencoded"
	rfc2822GMTLayout = time.RFC1123Z // "Mon, 02 Jan 2006 15:04:05 -0700", always written in UTC
)

// enumParams are the create parameters the spec restricts to an enum.
var enumParams = map[string][]string{
	"ContentRetention": {"retain", "discard"},
	"AddressRetention": {"retain", "obfuscate"},
	"TrafficType":      {"free"},
	"ScheduleType":     {"fixed"},
	"RiskCheck":        {"enable", "disable"},
}

// validationError is a request rejection: the Twilio code and message.
type validationError struct {
	code    int
	message string
}

func (s *Server) createMessage(w http.ResponseWriter, r *http.Request) {
	// Twilio only reads form bodies; any other content type leaves every
	// parameter unset, which surfaces as "'To' required" below.
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == formContentType {
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, codeInvalidParameter, "Unable to parse the request body")
			return
		}
	} else {
		r.PostForm = url.Values{}
	}

	f := s.faultFor(r)
	if applyFault(w, r, f) {
		return
	}
	if !s.preamble(w, r) {
		return
	}
	form := r.PostForm
	if verr := s.validateCreate(form); verr != nil {
		writeError(w, http.StatusBadRequest, verr.code, verr.message)
		return
	}

	m := s.store(form)
	if f.Store && f.OnStore != nil {
		snapshot := m
		snapshot.Form = cloneValues(m.Form)
		f.OnStore(snapshot)
	}

	if !wait(r, f.Hang) {
		return
	}
	if f.Status != 0 {
		writeFault(w, f)
		return
	}
	writeJSON(w, http.StatusCreated, s.resource(m))
}

// validateCreate applies the spec's required/conditional parameters and the
// value checks Twilio performs, in the order Twilio reports them.
func (s *Server) validateCreate(form url.Values) *validationError {
	to := form.Get("To")
	from := form.Get("From")
	service := form.Get("MessagingServiceSid")
	body := form.Get("Body")
	media := form["MediaUrl"]
	contentSID := form.Get("ContentSid")

	if to == "" {
		return &validationError{codeToRequired, "A 'To' phone number is required."}
	}
	if from == "" && service == "" {
		return &validationError{codeFromRequired, "A 'From' phone number is required."}
	}
	if body == "" && len(media) == 0 && contentSID == "" {
		return &validationError{codeBodyRequired, "Message body is required."}
	}
	if !e164Pattern.MatchString(to) {
		return &validationError{codeInvalidTo, fmt.Sprintf("The 'To' number %s is not a valid phone number.", to)}
	}
	if from != "" && !e164Pattern.MatchString(from) {
		return &validationError{codeInvalidFrom, fmt.Sprintf("The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", from)}
	}
	if from != "" && len(s.cfg.Senders) > 0 && !slices.Contains(s.cfg.Senders, from) {
		return &validationError{codeFromNotOwned, fmt.Sprintf("The From phone number %s is not a valid, SMS-capable inbound phone number or short code for your account.", from)}
	}
	if service != "" && !serviceSIDPattern.MatchString(service) {
		return &validationError{codeInvalidService, fmt.Sprintf("The Messaging Service Sid %s is invalid.", service)}
	}
	if contentSID != "" && !contentSIDPattern.MatchString(contentSID) {
		return &validationError{codeInvalidParameter, fmt.Sprintf("Invalid ContentSid: %s", contentSID)}
	}
	if n := len([]rune(body)); n > maxBodyChars {
		return &validationError{codeBodyTooLong, "The concatenated message body exceeds the 1600 character limit."}
	}
	if len(media) > maxMediaURLs {
		return &validationError{codeInvalidMediaURL, "Too many media URLs: at most 10 are allowed."}
	}
	for _, u := range media {
		if !isHTTPURL(u) {
			return &validationError{codeInvalidMediaURL, "Invalid media URL(s)"}
		}
	}
	if cb := form.Get("StatusCallback"); cb != "" && !isHTTPURL(cb) {
		return &validationError{codeInvalidStatusCallback, "Invalid StatusCallback"}
	}
	if vp, ok := form["ValidityPeriod"]; ok {
		n, err := strconv.Atoi(vp[0])
		switch {
		case err != nil || n < 1:
			return &validationError{codeValidityNotPositive, "Validity Period should be positive integer"}
		case n > maxValidity:
			return &validationError{codeValidityOutOfRange, "Invalid validity period value: must be between 1 and 36000 seconds"}
		}
	}
	for name, allowed := range enumParams {
		if v, ok := form[name]; ok && !slices.Contains(allowed, v[0]) {
			return &validationError{codeInvalidParameter, fmt.Sprintf("Invalid %s: %q is not one of %v", name, v[0], allowed)}
		}
	}
	for _, name := range []string{"ProvideFeedback", "ForceDelivery", "SmartEncoded", "ShortenUrls", "SendAsMms"} {
		if v, ok := form[name]; ok {
			if _, err := strconv.ParseBool(v[0]); err != nil {
				return &validationError{codeInvalidParameter, fmt.Sprintf("Invalid %s: %q is not a boolean", name, v[0])}
			}
		}
	}

	s.mu.Lock()
	optedOut := s.optedOut[to]
	s.mu.Unlock()
	if optedOut {
		return &validationError{codeUnsubscribed, "Attempt to send to unsubscribed recipient"}
	}
	return nil
}

func isHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	// Twilio rejects hostnames with underscores in callback URLs.
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && !strings.Contains(u.Host, "_")
}

func (s *Server) store(form url.Values) Message {
	prefix := "SM"
	if len(form["MediaUrl"]) > 0 {
		prefix = "MM"
	}
	m := Message{
		SID:                 prefix + randomHex(),
		AccountSID:          s.cfg.AccountSID,
		To:                  form.Get("To"),
		From:                form.Get("From"),
		MessagingServiceSID: form.Get("MessagingServiceSid"),
		Body:                form.Get("Body"),
		Status:              statusQueued,
		NumSegments:         segments(form.Get("Body")),
		DateCreated:         s.cfg.Clock().UTC().Truncate(time.Second),
		Form:                cloneValues(form),
	}
	// A Messaging Service picks the sender after the API call, so Twilio
	// reports "accepted" and zero segments until then.
	if m.From == "" {
		m.Status = statusAccepted
		m.NumSegments = 0
	}
	s.mu.Lock()
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	return m
}

// messageResource is api.v2010.account.message from the spec. Nullable
// properties are pointers so they serialise as null, as Twilio sends them.
type messageResource struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                *string           `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           *string           `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

func (s *Server) resource(m Message) messageResource {
	base := fmt.Sprintf("/%s/Accounts/%s/Messages/%s", APIVersion, m.AccountSID, m.SID)
	created := m.DateCreated.UTC().Format(rfc2822GMTLayout)
	// The sandbox does not model delivery; it stamps date_sent at acceptance
	// so DateSent list filters see every accepted message, as they would
	// once Twilio dispatched it (normally within a second).
	sent := created
	r := messageResource{
		AccountSID:  m.AccountSID,
		APIVersion:  APIVersion,
		Body:        m.Body,
		DateCreated: created,
		DateSent:    &sent,
		DateUpdated: created,
		Direction:   directionOutAPI,
		NumMedia:    strconv.Itoa(len(m.Form["MediaUrl"])),
		NumSegments: strconv.Itoa(m.NumSegments),
		SID:         m.SID,
		Status:      m.Status,
		SubresourceURIs: map[string]string{
			"media": base + "/Media.json",
		},
		To:  m.To,
		URI: base + ".json",
	}
	if m.From != "" {
		r.From = &m.From
	}
	// Twilio assigns a default Messaging Service when none is used.
	service := m.MessagingServiceSID
	if service == "" {
		service = s.serviceSID
	}
	r.MessagingServiceSID = &service
	return r
}

// segments counts SMS segments the way carriers do: GSM-7 text fits 160
// septets (153 per part when concatenated); anything else is UCS-2 with 70
// code units (67 per part).
func segments(body string) int {
	if body == "" {
		return 1
	}
	septets, gsm := 0, true
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			septets++
		case strings.ContainsRune(gsmExtension, r):
			septets += 2
		default:
			gsm = false
		}
	}
	if gsm {
		if septets <= 160 {
			return 1
		}
		return (septets + 152) / 153
	}
	units := len(utf16.Encode([]rune(body)))
	if units <= 70 {
		return 1
	}
	return (units + 66) / 67
}

const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "\f^{}\\[~]|€"
)
