// Package tevau decodes Tevau callbacks: flat JSON objects told apart by `eventType`, sent with the headers
// x-nexus-api-key, versions, appId, timestamp, nonce and sign (64 hex characters). The ack is the JSON body
// {"code":"200","msg":"Received successfully"}.
//
// Signature. Tevau documents the signed string only as "all non-empty fields except sign, x-nexus-api-key and
// versions, sorted ascending by key". What is UNKNOWN, and how spec.tevau (TevauOptions) covers it:
//   - the joiner: k=v pairs joined by '&' (the common form of this scheme; not configurable);
//   - whether the appId, timestamp and nonce headers are among the fields: includeHeaders (default true);
//   - hash or HMAC, and the key: algorithm HMACSHA256 (default; hex HMAC keyed with signingKey) or SHA256
//     (hex SHA-256 of the signed string + "&key=" + signingKey);
//   - the timestamp header's format: timestampFormat Auto (by length: 14 digits yyyyMMddHHmmss, 13 epoch
//     milliseconds, 10 epoch seconds), EpochMillis, EpochSeconds or Compact; Compact times are read in
//     timeZone (IANA, default UTC). Tevau's own examples send Compact ("20250901150426").
//
// Field values in the signed string: top-level strings as sent (untrimmed), numbers in their exact JSON spelling,
// booleans as true/false. Nested values (merchantData, details) are UNKNOWN in the docs; this adapter uses their
// compact JSON with object keys sorted ascending and no HTML escaping. "Non-empty" skips null, "" and empty
// objects/arrays. A header that is also a body field wins. Keys sort bytewise. The hex is compared
// case-insensitively in constant time; the timestamp must be within the endpoint's tolerance, and
// appId + ":" + nonce is the replay key.
//
// Events and the facts they carry (events.go):
//   - Kyc: KYC of holder userCode. auditState "1" is documented as passed; "0" (pending) and "2" (rejected)
//     are assumed; other values are judged by auditRemark, and when that does not tell either the holder's KYC
//     state is Unknown with auditState verbatim (never refused: a 400 only makes Tevau retry).
//   - CardCreate: Active for a virtual card (CIDV… IDs), else PendingActivation: a physical card is made and
//     shipped first and is activated by its own CardActive. CardFreeze, CardUnFreeze, CardClose: card phase.
//     CardClose's totalAmount is kept as the card amount "totalAmount" (its meaning is undocumented).
//   - CardInProduction, CardShipped, CardActive, CardBind: logistics of a physical card (CardActive also makes
//     the card Active). Each card event's orderNo is kept as the card reference "<event>.orderNo".
//   - CardTopup: a TopUp transaction of rechargeAmount keyed by orderNo (not a balance increment).
//   - 3DS: a challenge (authId, amount, merchant, expiry); the masked cardPan gives the last four digits.
//     An OTP, if Tevau ever adds one, goes only to Challenge.Code.
//   - Authorization, Clearing: one transaction per orderId (Pending, then Completed), with the fee breakdown
//     and the channel amounts; Refund and Reversal: their own credit transactions keyed by details.subOrderId
//     and linked to orderId. A transaction notification of another type (8.5 announces some it does not name)
//     is its own transaction with phase Unknown.
//   - BusinessDeposit: a deposit to the business (prefund) account, about no card: acknowledged, no facts.
//   - Any callback: userCode is the holder; a card number (cardPan, cardNo, cardNumber) is reduced to BIN and
//     last four, and a balance (none is documented) is the card's available balance, on events about a card.
//
// UNKNOWN as well: the card currency. Amounts without a currency (principal, fees, refund, reversal,
// rechargeAmount, totalAmount) are in the card's currency, which Tevau does not send; Tevau cards are USD cards,
// so CardCurrency is USD. The meaning of status, subStatus and subType is undocumented: they are kept verbatim
// in providerStatus, and a remark saying declined/failed/rejected marks the transaction Declined (authorizations)
// or Failed.
package tevau

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Headers Tevau sends.
const (
	HeaderAPIKey    = "x-nexus-api-key"
	HeaderVersions  = "versions"
	HeaderAppID     = "appId"
	HeaderTimestamp = "timestamp"
	HeaderNonce     = "nonce"
	HeaderSign      = "sign"
)

// CardCurrency is the currency of amounts Tevau sends without one (see the package doc).
const CardCurrency = "USD"

// Option values of TevauOptions.
const (
	AlgorithmHMACSHA256 = "HMACSHA256"
	AlgorithmSHA256     = "SHA256"

	TimestampAuto         = "Auto"
	TimestampEpochMillis  = "EpochMillis"
	TimestampEpochSeconds = "EpochSeconds"
	TimestampCompact      = "Compact"
)

const compactLayout = "20060102150405"

// Adapter is the Tevau adapter.
type Adapter struct{}

var ack = adapter.JSON(`{"code":"200","msg":"Received successfully"}`)

// Decode verifies the signature and timestamp, then maps the event.
func (Adapter) Decode(req *adapter.Request) (*adapter.Result, error) {
	sig := strings.TrimSpace(req.Header.Get(HeaderSign))
	ts := strings.TrimSpace(req.Header.Get(HeaderTimestamp))
	if sig == "" || ts == "" {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "missing %s or %s header", HeaderSign, HeaderTimestamp)
	}
	if req.Endpoint == nil || len(req.Endpoint.SigningKey) == 0 {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "the endpoint has no signing key")
	}
	o, err := options(req.Endpoint)
	if err != nil {
		return nil, err
	}
	body, err := adapter.Object(req.Body)
	if err != nil {
		return nil, err
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "%s is not 64 hex characters", HeaderSign)
	}
	want, err := sign(o, req.Endpoint.SigningKey, body, headerFields(req.Header))
	if err != nil {
		return nil, err
	}
	if !adapter.Equal(got, want) {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "%s does not match the signed fields", HeaderSign)
	}
	sent, err := o.parseTimestamp(ts)
	if err != nil {
		return nil, adapter.Malformed("%s header: %v", HeaderTimestamp, err)
	}
	if err := adapter.CheckTimestamp(sent, req.Received, req.Endpoint.TimestampTolerance); err != nil {
		return nil, err
	}

	name := adapter.Str(body, "eventType")
	if name == "" {
		return nil, adapter.Malformed("body has no eventType")
	}
	res := &adapter.Result{EventType: name, Ack: ack}
	if nonce := strings.TrimSpace(req.Header.Get(HeaderNonce)); nonce != "" {
		res.DeliveryID = strings.TrimSpace(req.Header.Get(HeaderAppID)) + ":" + nonce
	}
	ev := event.Event{Type: name, CardID: adapter.Str(body, "cardId")}
	if err := mapEvent(name, body, &ev, res); err != nil {
		return nil, err
	}
	if res.Unknown || name == "BusinessDeposit" {
		return res, nil
	}
	commonFacts(body, &ev)
	if ev.OccurredAt.IsZero() {
		// Card and KYC callbacks carry no time of their own; the signed send time is the closest provider time.
		ev.OccurredAt = sent
	}
	res.Events = []event.Event{ev}
	return res, nil
}

// Encode signs a plaintext payload the way Tevau does (in the variant the endpoint's options select), for the
// simulator and tests.
func Encode(ep *endpointconfig.Resolved, payload []byte, now time.Time) (http.Header, []byte, error) {
	if ep == nil || len(ep.SigningKey) == 0 {
		return nil, nil, fmt.Errorf("tevau: the endpoint has no signing key")
	}
	o, err := options(ep)
	if err != nil {
		return nil, nil, err
	}
	body, err := adapter.Object(payload)
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderAPIKey, "cardplane-simulator")
	h.Set(HeaderVersions, "v1")
	h.Set(HeaderAppID, "cardplane")
	h.Set(HeaderTimestamp, o.formatTimestamp(now))
	h.Set(HeaderNonce, nonce())
	mac, err := sign(o, ep.SigningKey, body, headerFields(h))
	if err != nil {
		return nil, nil, err
	}
	h.Set(HeaderSign, hex.EncodeToString(mac))
	return h, payload, nil
}

// opts are the resolved TevauOptions.
type opts struct {
	algorithm      string
	includeHeaders bool
	format         string
	loc            *time.Location
}

var zones sync.Map // IANA name -> *time.Location

// ValidateConfig checks the tevau options (algorithm, timestamp format, time zone) once per generation.
func (Adapter) ValidateConfig(ep *cardsv1alpha1.WebhookEndpoint) error {
	if _, err := options(&endpointconfig.Resolved{Endpoint: ep}); err != nil {
		if rej, ok := adapter.AsRejection(err); ok {
			return errors.New(rej.Message)
		}
		return err
	}
	return nil
}

func options(ep *endpointconfig.Resolved) (opts, error) {
	o := opts{algorithm: AlgorithmHMACSHA256, includeHeaders: true, format: TimestampAuto, loc: time.UTC}
	if ep == nil || ep.Endpoint == nil || ep.Endpoint.Spec.Tevau == nil {
		return o, nil
	}
	t := ep.Endpoint.Spec.Tevau
	switch t.Algorithm {
	case "", AlgorithmHMACSHA256:
	case AlgorithmSHA256:
		o.algorithm = AlgorithmSHA256
	default:
		return o, adapter.Malformed("tevau.algorithm %q is neither HMACSHA256 nor SHA256", t.Algorithm)
	}
	if t.IncludeHeaders != nil {
		o.includeHeaders = *t.IncludeHeaders
	}
	switch t.TimestampFormat {
	case "", TimestampAuto:
	case TimestampEpochMillis, TimestampEpochSeconds, TimestampCompact:
		o.format = t.TimestampFormat
	default:
		return o, adapter.Malformed("tevau.timestampFormat %q is not Auto, EpochMillis, EpochSeconds or Compact", t.TimestampFormat)
	}
	if tz := strings.TrimSpace(t.TimeZone); tz != "" && tz != "UTC" {
		if l, ok := zones.Load(tz); ok {
			o.loc = l.(*time.Location)
		} else {
			l, err := time.LoadLocation(tz)
			if err != nil {
				return o, adapter.Malformed("tevau.timeZone %q is not an IANA time zone", tz)
			}
			zones.Store(tz, l)
			o.loc = l
		}
	}
	return o, nil
}

func (o opts) parseTimestamp(s string) (time.Time, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return time.Time{}, fmt.Errorf("%q is not a number", s)
	}
	format := o.format
	if format == TimestampAuto {
		switch len(s) {
		case 14:
			format = TimestampCompact
		case 13:
			format = TimestampEpochMillis
		case 10:
			format = TimestampEpochSeconds
		default:
			return time.Time{}, fmt.Errorf("%q is neither yyyyMMddHHmmss nor epoch seconds or milliseconds", s)
		}
	}
	if format == TimestampCompact {
		if len(s) != 14 {
			return time.Time{}, fmt.Errorf("%q is not yyyyMMddHHmmss", s)
		}
		t, err := time.ParseInLocation(compactLayout, s, o.loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a valid yyyyMMddHHmmss time", s)
		}
		return t.UTC(), nil
	}
	if len(s) > 18 {
		return time.Time{}, fmt.Errorf("%q is out of range", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is out of range", s)
	}
	if format == TimestampEpochMillis {
		return time.UnixMilli(n).UTC(), nil
	}
	return time.Unix(n, 0).UTC(), nil
}

func (o opts) formatTimestamp(t time.Time) string {
	switch o.format {
	case TimestampEpochMillis:
		return strconv.FormatInt(t.UnixMilli(), 10)
	case TimestampEpochSeconds:
		return strconv.FormatInt(t.Unix(), 10)
	}
	// Auto and Compact: Tevau's examples use yyyyMMddHHmmss.
	return t.In(o.loc).Format(compactLayout)
}

func headerFields(h http.Header) map[string]string {
	return map[string]string{
		HeaderAppID:     h.Get(HeaderAppID),
		HeaderTimestamp: h.Get(HeaderTimestamp),
		HeaderNonce:     h.Get(HeaderNonce),
	}
}

// excluded never take part in the signed string.
var excluded = map[string]bool{HeaderSign: true, HeaderAPIKey: true, HeaderVersions: true}

// signedString builds the sorted k=v&k=v string from the body's fields and, with includeHeaders, the headers.
func signedString(o opts, body map[string]any, headers map[string]string) (string, error) {
	fields := make(map[string]string, len(body)+len(headers))
	for k, v := range body {
		s, err := fieldValue(v)
		if err != nil {
			return "", adapter.Malformed("field %q: %v", k, err)
		}
		if s != "" && !excluded[k] {
			fields[k] = s
		}
	}
	if o.includeHeaders {
		for k, v := range headers {
			if v != "" {
				fields[k] = v
			}
		}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(fields[k])
	}
	return b.String(), nil
}

// fieldValue renders one field for the signed string; "" means empty (left out).
func fieldValue(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case map[string]any:
		if len(x) == 0 {
			return "", nil
		}
	case []any:
		if len(x) == 0 {
			return "", nil
		}
	}
	// Nested values: compact JSON, object keys sorted (encoding/json sorts map keys), no HTML escaping.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

func sign(o opts, key []byte, body map[string]any, headers map[string]string) ([]byte, error) {
	s, err := signedString(o, body, headers)
	if err != nil {
		return nil, err
	}
	if o.algorithm == AlgorithmSHA256 {
		sum := sha256.Sum256([]byte(s + "&key=" + string(key)))
		return sum[:], nil
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s))
	return mac.Sum(nil), nil
}

const nonceAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// nonce is 32 random characters like Tevau's ("83D52F6DS38P3FTCH3M4B0CQ6AJZQDW4").
func nonce() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = nonceAlphabet[int(b[i])%len(nonceAlphabet)]
	}
	return string(b)
}
