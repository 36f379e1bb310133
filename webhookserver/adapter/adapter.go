// Package adapter is the contract between the receiver and the provider adapters, plus the parsing helpers
// they share. An adapter verifies a callback and translates its bytes into normalized events; it never
// talks to the API server.
package adapter

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Adapter verifies and decodes one provider's callbacks.
type Adapter interface {
	// Decode verifies req and returns its events, or a *Rejection for bad input.
	Decode(req *Request) (*Result, error)
}

// ConfigValidator is implemented by adapters whose endpoint options need checks the API schema cannot make (a
// CEL mapping, a time zone name). The WebhookEndpoint reconciler runs it once per generation, so the receiver
// serves only endpoints that passed it and never repeats the work per callback.
type ConfigValidator interface {
	// ValidateConfig returns a message naming the field that is wrong, or nil.
	ValidateConfig(ep *cardsv1alpha1.WebhookEndpoint) error
}

// Request is a callback as the receiver read it.
type Request struct {
	Header   http.Header
	Body     []byte
	Received time.Time
	Endpoint *endpointconfig.Resolved
}

// Result is a verified, decoded callback.
type Result struct {
	// EventType is the provider's event type, for metrics and records ("" when the provider sends none).
	EventType string
	// Events to apply; empty for known events that carry nothing to store.
	Events []event.Event
	// Unknown marks a verified callback whose type the adapter does not know: acknowledged and counted,
	// never retried forever.
	Unknown bool
	// DeliveryID identifies one delivery where the provider sends such an ID (a nonce or request ID). The
	// receiver answers a repeated delivery (same ID and same body) from its answer cache without applying it again.
	DeliveryID string
	// Ack is the provider's success answer, sent only after the events are durably applied.
	Ack Answer
	// Authorize, when set, makes the receiver answer with a decision instead of Ack (UPay CC_AUTHORIZATION).
	Authorize func(approved bool) Answer
}

// Answer is an HTTP response body in the provider's format.
type Answer struct {
	Status      int
	ContentType string
	Body        []byte
}

// Text is a 200 text/plain answer.
func Text(body string) Answer {
	return Answer{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8", Body: []byte(body)}
}

// JSON is a 200 application/json answer.
func JSON(body string) Answer {
	return Answer{Status: http.StatusOK, ContentType: "application/json", Body: []byte(body)}
}

// Rejection is bad input: the receiver answers Status with Reason and Message, and counts Reason.
type Rejection struct {
	Status  int
	Reason  string
	Message string
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Message }

// Malformed is a 400 for a body or header the adapter cannot read.
func Malformed(format string, args ...any) *Rejection {
	return &Rejection{Status: http.StatusBadRequest, Reason: cardsv1alpha1.ReasonMalformed, Message: fmt.Sprintf(format, args...)}
}

// Unauthorized is a 401 with a reason.
func Unauthorized(reason, format string, args ...any) *Rejection {
	return &Rejection{Status: http.StatusUnauthorized, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsRejection unwraps a *Rejection.
func AsRejection(err error) (*Rejection, bool) {
	var r *Rejection
	ok := errors.As(err, &r)
	return r, ok
}

// MaxJSONDepth bounds nesting so a hostile body cannot exhaust the stack.
const MaxJSONDepth = 32

// Object parses body as one JSON object, keeping numbers exact (json.Number).
func Object(body []byte) (map[string]any, error) {
	var m map[string]any
	if err := Decode(body, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, Malformed("body is not a JSON object")
	}
	return m, nil
}

// Decode parses body as JSON into v with exact numbers, refusing trailing data and deep nesting.
func Decode(body []byte, v any) error {
	if err := checkDepth(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return Malformed("body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Malformed("body has data after the JSON value")
	}
	return nil
}

func checkDepth(body []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range body {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > MaxJSONDepth {
				return Malformed("JSON nested deeper than %d levels", MaxJSONDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// Str reads a field as a string: strings as they are, numbers in their exact JSON spelling (IDs are sometimes
// integers), booleans as true/false; "" when absent or null.
func Str(m map[string]any, key string) string { return Value(m[key]) }

// First is the first of keys that is present and not empty in m, as Str reads it; "" when none is.
func First(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if v := Str(m, k); v != "" {
			return v
		}
	}
	return ""
}

// Value is a JSON value as a string, as Str reads a field.
func Value(v any) string {
	switch v := v.(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// Obj reads a nested object, or nil.
func Obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// Int reads an integer field given as a number or a numeric string.
func Int(m map[string]any, key string) (int64, bool) {
	s := Str(m, key)
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Equal compares MACs in constant time.
func Equal(a, b []byte) bool { return hmac.Equal(a, b) }

// Time parses the times providers send: epoch seconds or milliseconds (number or string), RFC 3339, and
// local date-times ("2006-01-02 15:04:05", "20060102150405") in loc.
func Time(v any, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case nil:
		return time.Time{}, errors.New("time is missing")
	default:
		return time.Time{}, fmt.Errorf("time %v is neither a number nor a string", v)
	}
	if s == "" {
		return time.Time{}, errors.New("time is empty")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case len(s) == 14 && s[0] == '2': // yyyyMMddHHmmss
			return time.ParseInLocation("20060102150405", s, loc)
		case n > 1e11: // milliseconds (after 1973)
			return time.UnixMilli(n).UTC(), nil
		default:
			return time.Unix(n, 0).UTC(), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04:05.000"} {
		if layout == time.RFC3339Nano {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
			continue
		}
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q is in no known format", s)
}

// OptionalTime is Time for fields that may be absent: zero when absent, an error only when present but bad.
func OptionalTime(m map[string]any, key string, loc *time.Location) (time.Time, error) {
	v, ok := m[key]
	if !ok || v == nil || v == "" {
		return time.Time{}, nil
	}
	t, err := Time(v, loc)
	if err != nil {
		return time.Time{}, Malformed("%s: %v", key, err)
	}
	return t, nil
}

// CheckTimestamp refuses a signed timestamp too far from the receiver's clock.
func CheckTimestamp(ts, now time.Time, tolerance time.Duration) error {
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return Unauthorized(cardsv1alpha1.ReasonStaleTimestamp, "timestamp %s is more than %s from the receiver's clock", ts.UTC().Format(time.RFC3339), tolerance)
	}
	return nil
}

// Encoder builds a correctly authenticated callback from a plaintext payload, as the provider would send it:
// the headers and the wire body. `cardplane simulate`, the tests and the chaos suite use it.
type Encoder func(ep *endpointconfig.Resolved, payload []byte, now time.Time) (http.Header, []byte, error)
