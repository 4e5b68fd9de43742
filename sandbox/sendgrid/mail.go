package sendgrid

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mail is the v3 Mail Send request body, typed for test assertions. Field
// meanings are the spec's; see sendgrid-mail-send.openapi.json.
type Mail struct {
	// Personalizations are the envelopes (recipients and per-recipient data).
	Personalizations []Personalization `json:"personalizations"`
	// From is the sender.
	From *Address `json:"from"`
	// ReplyTo is the reply address.
	ReplyTo *Address `json:"reply_to,omitempty"`
	// ReplyToList lists reply addresses; exclusive with ReplyTo.
	ReplyToList []Address `json:"reply_to_list,omitempty"`
	// Subject is the message-level subject.
	Subject string `json:"subject,omitempty"`
	// Content holds the MIME parts, text/plain first.
	Content []Content `json:"content,omitempty"`
	// Attachments are the attached files.
	Attachments []Attachment `json:"attachments,omitempty"`
	// TemplateID names a dynamic template.
	TemplateID string `json:"template_id,omitempty"`
	// Headers are extra MIME headers.
	Headers map[string]string `json:"headers,omitempty"`
	// Categories tag the message for statistics.
	Categories []string `json:"categories,omitempty"`
	// CustomArgs travel into event data (Email Activity's unique_args).
	CustomArgs map[string]string `json:"custom_args,omitempty"`
	// SendAt schedules delivery (Unix seconds).
	SendAt int64 `json:"send_at,omitempty"`
	// BatchID groups scheduled sends.
	BatchID string `json:"batch_id,omitempty"`
	// ASM is the unsubscribe-group setting.
	ASM *ASM `json:"asm,omitempty"`
	// IPPoolName selects the sending IP pool.
	IPPoolName string `json:"ip_pool_name,omitempty"`
	// MailSettings is kept undecoded: the sandbox does not act on it.
	MailSettings map[string]any `json:"mail_settings,omitempty"`
	// TrackingSettings is kept undecoded: the sandbox does not act on it.
	TrackingSettings map[string]any `json:"tracking_settings,omitempty"`
}

// Personalization is one envelope of a Mail.
type Personalization struct {
	// To lists the primary recipients.
	To []Address `json:"to"`
	// From overrides the Mail's sender for this envelope.
	From *Address `json:"from,omitempty"`
	// CC lists carbon-copy recipients.
	CC []Address `json:"cc,omitempty"`
	// BCC lists blind-carbon-copy recipients.
	BCC []Address `json:"bcc,omitempty"`
	// Subject overrides the Mail's subject for this envelope.
	Subject string `json:"subject,omitempty"`
	// Headers are extra MIME headers for this envelope.
	Headers map[string]string `json:"headers,omitempty"`
	// Substitutions are legacy-template replacements.
	Substitutions map[string]string `json:"substitutions,omitempty"`
	// DynamicTemplateData feeds a dynamic template.
	DynamicTemplateData map[string]any `json:"dynamic_template_data,omitempty"`
	// CustomArgs override the Mail's custom args for this envelope.
	CustomArgs map[string]string `json:"custom_args,omitempty"`
	// SendAt overrides the Mail's schedule for this envelope.
	SendAt int64 `json:"send_at,omitempty"`
}

// Address is an email address with an optional display name.
type Address struct {
	// Email is the bare address.
	Email string `json:"email"`
	// Name is the display name.
	Name string `json:"name,omitempty"`
}

// Content is one MIME part of a Mail.
type Content struct {
	// Type is the MIME type, e.g. text/plain.
	Type string `json:"type"`
	// Value is the part's content.
	Value string `json:"value"`
}

// Attachment is one attachment of a Mail.
type Attachment struct {
	// Content is the base64-encoded file.
	Content string `json:"content"`
	// Type is the file's MIME type.
	Type string `json:"type,omitempty"`
	// Filename is the attachment's file name.
	Filename string `json:"filename"`
	// Disposition is "attachment" or "inline".
	Disposition string `json:"disposition,omitempty"`
	// ContentID references an inline attachment from the HTML.
	ContentID string `json:"content_id,omitempty"`
}

// ASM is a Mail's unsubscribe-group setting.
type ASM struct {
	// GroupID is the unsubscribe group.
	GroupID int `json:"group_id"`
	// GroupsToDisplay lists groups shown on the preferences page.
	GroupsToDisplay []int `json:"groups_to_display,omitempty"`
}

// reservedHeaders may not be set through headers, per the spec.
var reservedHeaders = []string{
	"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
	"content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
}

const (
	maxPersonalizations = 1000
	maxRecipients       = 1000
	maxCustomArgsBytes  = 10000
	maxCategories       = 10
	maxScheduleAhead    = 72 * time.Hour
)

func (s *Server) mailSend(w http.ResponseWriter, r *http.Request) {
	f := s.faultFor(r)
	if s.applyFault(w, r, f) {
		return
	}
	if !s.authorized(r) {
		writeAuthError(w)
		return
	}
	raw, status, msg := readBody(w, r)
	if status != 0 {
		writeJSON(w, status, errorDoc{Errors: []errorItem{{Message: msg, NullField: true}}})
		return
	}
	doc, err := decodeGeneric(raw)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorDoc{Errors: []errorItem{{Message: "Bad Request", NullField: true}}})
		return
	}
	v := validator{now: s.cfg.Clock()}
	v.mail(doc)
	if len(v.errs) > 0 {
		writeJSON(w, http.StatusBadRequest, errorDoc{Errors: v.errs})
		return
	}
	var typed Mail
	if err := json.Unmarshal(raw, &typed); err != nil {
		// The validator checked every typed field, so this is a sandbox bug
		// rather than a client error; still answer the way SendGrid would.
		writeJSON(w, http.StatusBadRequest, errorDoc{Errors: []errorItem{{Message: "Bad Request", NullField: true}}})
		return
	}

	id := newMessageID()
	m := Message{
		ID:         id,
		Raw:        raw,
		JSON:       doc,
		Mail:       typed,
		Header:     r.Header.Clone(),
		AcceptedAt: s.cfg.Clock(),
	}
	s.accept(m)
	if f.Store && f.OnStore != nil {
		f.OnStore(m.copy())
	}

	if !wait(r, f.Hang) {
		return
	}
	if f.Status != 0 {
		s.writeFault(w, f)
		return
	}
	w.Header().Set("X-Message-Id", id)
	w.WriteHeader(http.StatusAccepted)
}

// readBody enforces the content type and size limit and undoes gzip
// compression, which the spec allows. A non-zero status means rejection.
func readBody(w http.ResponseWriter, r *http.Request) (raw []byte, status int, msg string) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return nil, http.StatusBadRequest, "Content-Type should be application/json."
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, MaxMessageBytes)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, http.StatusBadRequest, "The request body is not valid gzip."
		}
		defer zr.Close()
		// The decompressed payload is bounded too, or a small bomb could
		// exhaust memory.
		body = io.LimitReader(zr, 4*MaxMessageBytes+1)
	}
	raw, err := io.ReadAll(body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig), len(raw) > 4*MaxMessageBytes:
		return nil, http.StatusRequestEntityTooLarge, "The JSON payload you have included in your request is too large. Please limit your request size to 30MB."
	case err != nil:
		return nil, http.StatusBadRequest, "Bad Request"
	}
	return raw, 0, ""
}

func decodeGeneric(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON document")
	}
	if doc == nil {
		return nil, errors.New("body is not a JSON object")
	}
	return doc, nil
}

// validator collects every violation, as SendGrid reports them all at once.
type validator struct {
	now  time.Time
	errs []errorItem
}

func (v *validator) add(field, msg string) {
	var f *string
	if field != "" {
		f = &field
	}
	v.errs = append(v.errs, errorItem{Message: msg, Field: f, NullField: f == nil})
}

func (v *validator) mail(doc map[string]any) {
	templateID, _ := doc["template_id"].(string)
	if t, ok := doc["template_id"]; ok {
		if _, isStr := t.(string); !isStr {
			v.add("template_id", "The template_id must be a string.")
		}
	}

	ps, ok := doc["personalizations"].([]any)
	allSubjects := ok && len(ps) > 0
	if !ok || len(ps) == 0 {
		v.add("personalizations", "The personalizations field is required and must have at least one personalization.")
	} else if len(ps) > maxPersonalizations {
		v.add("personalizations", "You may not have more than 1000 personalizations per API request.")
	}
	for i, p := range ps {
		pm, ok := p.(map[string]any)
		if !ok {
			v.add(fmt.Sprintf("personalizations.%d", i), "Each personalization must be an object.")
			allSubjects = false
			continue
		}
		if sub, _ := pm["subject"].(string); sub == "" {
			allSubjects = false
		}
		v.personalization(i, pm)
	}

	if _, ok := doc["from"]; !ok {
		v.add("from", "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.")
	} else {
		v.address("from", doc["from"])
	}
	if rt, ok := doc["reply_to"]; ok {
		v.address("reply_to", rt)
		if _, both := doc["reply_to_list"]; both {
			v.add("reply_to", "reply_to is mutually exclusive with reply_to_list.")
		}
	}
	if rtl, ok := doc["reply_to_list"]; ok {
		v.addressList("reply_to_list", rtl, true)
	}

	switch sub, present := doc["subject"]; {
	case present && !isNonEmptyString(sub):
		v.add("subject", "The subject must be a string at least one character in length.")
	case !present && templateID == "" && !allSubjects:
		v.add("subject", "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.")
	}

	if c, ok := doc["content"]; ok {
		v.content(c)
	} else if templateID == "" {
		v.add("content", "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.")
	}

	if a, ok := doc["attachments"]; ok {
		v.attachments(a)
	}
	if h, ok := doc["headers"]; ok {
		v.headers("headers", h)
	}
	if c, ok := doc["categories"]; ok {
		v.categories(c)
	}
	if ca, ok := doc["custom_args"]; ok {
		// The spec types the top-level custom_args as a string, but SendGrid
		// (and sendgrid-go) send an object of strings, so that is accepted.
		v.customArgs("custom_args", ca)
	}
	if sa, ok := doc["send_at"]; ok {
		v.sendAt("send_at", sa)
	}
	if asm, ok := doc["asm"]; ok {
		am, isObj := asm.(map[string]any)
		if !isObj || !isInteger(am["group_id"]) {
			v.add("asm.group_id", "The asm object requires an integer group_id.")
		}
	}
	if pool, ok := doc["ip_pool_name"]; ok {
		s, isStr := pool.(string)
		if !isStr || len(s) < 2 || len(s) > 64 {
			v.add("ip_pool_name", "The ip_pool_name must be a string between 2 and 64 characters.")
		}
	}
	for _, name := range []string{"mail_settings", "tracking_settings"} {
		if val, ok := doc[name]; ok {
			if _, isObj := val.(map[string]any); !isObj {
				v.add(name, fmt.Sprintf("The %s must be an object.", name))
			}
		}
	}
	for _, name := range []string{"batch_id"} {
		if val, ok := doc[name]; ok {
			if _, isStr := val.(string); !isStr {
				v.add(name, fmt.Sprintf("The %s must be a string.", name))
			}
		}
	}
}

func (v *validator) personalization(i int, p map[string]any) {
	prefix := fmt.Sprintf("personalizations.%d", i)
	to, ok := p["to"].([]any)
	if !ok || len(to) == 0 {
		v.add(prefix+".to", "The to array is required for all personalization objects, and must have at least one email object with a valid email address.")
	}
	seen := map[string]bool{}
	total := 0
	for _, list := range []string{"to", "cc", "bcc"} {
		val, present := p[list]
		if !present {
			continue
		}
		addrs := v.addressList(prefix+"."+list, val, list != "to")
		total += len(addrs)
		for _, a := range addrs {
			key := strings.ToLower(a)
			if seen[key] {
				v.add(prefix, "Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of ["+a+"] in the personalizations."+list+" field.")
			}
			seen[key] = true
		}
	}
	if total > maxRecipients {
		v.add(prefix, "The total number of recipients must be less than 1000. This includes all recipients defined within the to, cc, and bcc parameters, across each object that you include in the personalizations array.")
	}
	if f, ok := p["from"]; ok {
		v.address(prefix+".from", f)
	}
	if sub, ok := p["subject"]; ok && !isNonEmptyString(sub) {
		v.add(prefix+".subject", "The subject must be a string at least one character in length.")
	}
	if h, ok := p["headers"]; ok {
		v.headers(prefix+".headers", h)
	}
	if sub, ok := p["substitutions"]; ok {
		v.stringMap(prefix+".substitutions", sub)
	}
	if d, ok := p["dynamic_template_data"]; ok {
		if _, isObj := d.(map[string]any); !isObj {
			v.add(prefix+".dynamic_template_data", "The dynamic_template_data must be an object.")
		}
	}
	if ca, ok := p["custom_args"]; ok {
		v.customArgs(prefix+".custom_args", ca)
	}
	if sa, ok := p["send_at"]; ok {
		v.sendAt(prefix+".send_at", sa)
	}
}

// addressList validates an array of email objects and returns the valid
// addresses.
func (v *validator) addressList(field string, val any, allowEmpty bool) []string {
	list, ok := val.([]any)
	if !ok {
		v.add(field, fmt.Sprintf("The %s field must be an array of email objects.", field))
		return nil
	}
	if len(list) == 0 && !allowEmpty {
		return nil // reported by the caller with SendGrid's wording
	}
	if len(list) > maxRecipients {
		v.add(field, fmt.Sprintf("The %s field may contain at most 1000 email objects.", field))
	}
	var out []string
	for i, item := range list {
		if a, ok := v.address(fmt.Sprintf("%s.%d", field, i), item); ok {
			out = append(out, a)
		}
	}
	return out
}

func (v *validator) address(field string, val any) (string, bool) {
	m, ok := val.(map[string]any)
	if !ok {
		v.add(field, "The "+field+" must be an object that requires the email parameter, but may also contain a name parameter.")
		return "", false
	}
	email, ok := m["email"].(string)
	if !ok || email == "" {
		v.add(field+".email", "The email parameter is required.")
		return "", false
	}
	if !validEmail(email) {
		v.add(field+".email", "Does not contain a valid address.")
		return "", false
	}
	if name, present := m["name"]; present {
		s, isStr := name.(string)
		if !isStr || strings.ContainsAny(s, ";,") {
			v.add(field+".name", "The name must be a string that does not contain ';' or ','.")
		}
	}
	return email, true
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	_, domain, _ := strings.Cut(s, "@")
	return strings.Contains(domain, ".") && !strings.HasSuffix(domain, ".")
}

func (v *validator) content(val any) {
	list, ok := val.([]any)
	if !ok || len(list) == 0 {
		v.add("content", "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.")
		return
	}
	var types []string
	for i, item := range list {
		field := fmt.Sprintf("content.%d", i)
		m, ok := item.(map[string]any)
		if !ok {
			v.add(field, "Each content block must be an object with type and value.")
			continue
		}
		typ, _ := m["type"].(string)
		if typ == "" {
			v.add(field+".type", "The content type must be a string at least one character in length.")
		}
		if !isNonEmptyString(m["value"]) {
			v.add(field+".value", "The content value must be a string at least one character in length.")
		}
		types = append(types, strings.ToLower(typ))
	}
	// SendGrid requires text/plain first, then text/html, then anything else,
	// each of the two at most once.
	plain, html := slices.Index(types, "text/plain"), slices.Index(types, "text/html")
	if countOf(types, "text/plain") > 1 || countOf(types, "text/html") > 1 {
		v.add("content", "If present, text/plain and text/html may only be provided once.")
	}
	ordered := html <= 0
	if plain >= 0 {
		ordered = plain == 0 && (html < 0 || html == 1)
	}
	if !ordered {
		v.add("content", "If present, text/plain must be first, followed by text/html, followed by any other content.")
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func (v *validator) attachments(val any) {
	list, ok := val.([]any)
	if !ok {
		v.add("attachments", "The attachments field must be an array.")
		return
	}
	for i, item := range list {
		field := fmt.Sprintf("attachments.%d", i)
		m, ok := item.(map[string]any)
		if !ok {
			v.add(field, "Each attachment must be an object.")
			continue
		}
		if !isNonEmptyString(m["content"]) {
			v.add(field+".content", "The attachment content must be a string at least one character in length.")
		}
		if _, ok := m["filename"].(string); !ok {
			v.add(field+".filename", "The attachment filename parameter is required.")
		}
		if d, ok := m["disposition"]; ok && d != "inline" && d != "attachment" {
			v.add(field+".disposition", "The disposition must be either inline or attachment.")
		}
	}
}

func (v *validator) headers(field string, val any) {
	m := v.stringMap(field, val)
	for k := range m {
		if slices.Contains(reservedHeaders, strings.ToLower(k)) {
			v.add(field, fmt.Sprintf("The header %q is reserved and may not be set.", k))
		}
	}
}

func (v *validator) stringMap(field string, val any) map[string]string {
	m, ok := val.(map[string]any)
	if !ok {
		v.add(field, fmt.Sprintf("The %s must be an object of string key/value pairs.", field))
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := x.(string)
		if !ok {
			v.add(field+"."+k, "The value must be a string.")
			continue
		}
		out[k] = s
	}
	return out
}

func (v *validator) customArgs(field string, val any) {
	m := v.stringMap(field, val)
	size := 0
	for k, x := range m {
		size += len(k) + len(x)
	}
	if size > maxCustomArgsBytes {
		v.add(field, "The custom_args may not exceed 10,000 bytes.")
	}
}

func (v *validator) categories(val any) {
	list, ok := val.([]any)
	if !ok {
		v.add("categories", "The categories must be an array of strings.")
		return
	}
	if len(list) > maxCategories {
		v.add("categories", "You may not have more than 10 categories per request.")
	}
	seen := map[string]bool{}
	for i, c := range list {
		s, ok := c.(string)
		if !ok || len(s) > 255 {
			v.add(fmt.Sprintf("categories.%d", i), "A category must be a string of at most 255 characters.")
			continue
		}
		if seen[s] {
			v.add("categories", "The categories must be unique.")
		}
		seen[s] = true
	}
}

func (v *validator) sendAt(field string, val any) {
	if !isInteger(val) {
		v.add(field, "The send_at parameter must be a unix timestamp (integer).")
		return
	}
	n, _ := val.(json.Number).Int64()
	if time.Unix(n, 0).After(v.now.Add(maxScheduleAhead)) {
		v.add(field, "Scheduling more than 72 hours in advance is forbidden.")
	}
}

func isNonEmptyString(val any) bool {
	s, ok := val.(string)
	return ok && s != ""
}

func isInteger(val any) bool {
	n, ok := val.(json.Number)
	if !ok {
		return false
	}
	_, err := strconv.ParseInt(n.String(), 10, 64)
	return err == nil
}
