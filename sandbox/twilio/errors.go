package twilio

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Twilio error codes the sandbox answers with. See
// https://www.twilio.com/docs/api/errors.
const (
	codeAuthenticate          = 20003
	codeMethodNotAllowed      = 20004
	codeNotFound              = 20404
	codeInvalidParameter      = 20422
	codeTooManyRequests       = 20429
	codeInternalError         = 20500
	codeServiceUnavailable    = 20503
	codeInvalidTo             = 21211
	codeInvalidFrom           = 21212
	codeBodyRequired          = 21602
	codeFromRequired          = 21603
	codeToRequired            = 21604
	codeFromNotOwned          = 21606
	codeInvalidStatusCallback = 21609
	codeUnsubscribed          = 21610
	codeBodyTooLong           = 21617
	codeInvalidMediaURL       = 21620
	codeInvalidService        = 21701
	codeValidityOutOfRange    = 90007
	codeValidityNotPositive   = 90014
)

// errorBody is Twilio's legacy REST error document, the shape twilio-go
// decodes into client.TwilioRestError.
type errorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, errorBody{
		Code:     code,
		Message:  message,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		Status:   status,
	})
}

func writeNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, codeNotFound,
		fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only sandbox-built values are marshalled; failing here is a bug.
		panic(fmt.Sprintf("encoding sandbox response: %v", err))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Twilio-Request-Id", "RQ"+randomHex())
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func defaultCode(status int) int {
	switch {
	case status == http.StatusTooManyRequests:
		return codeTooManyRequests
	case status == http.StatusServiceUnavailable:
		return codeServiceUnavailable
	case status >= 500:
		return codeInternalError
	case status == http.StatusUnauthorized:
		return codeAuthenticate
	case status == http.StatusNotFound:
		return codeNotFound
	default:
		return codeInvalidParameter
	}
}

func defaultMessage(code, status int) string {
	switch code {
	case codeTooManyRequests:
		return "Too Many Requests"
	case codeInternalError:
		return "Internal Server Error"
	case codeServiceUnavailable:
		return "Service Unavailable"
	case codeAuthenticate:
		return "Authenticate"
	case codeUnsubscribed:
		return "Attempt to send to unsubscribed recipient"
	case 21614:
		return "'To' number is not a valid mobile number"
	}
	return http.StatusText(status)
}
