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
// Events and the facts they carry:
//   - Kyc: KYC of holder userCode. auditState "1" is documented as passed; "0" (pending) and "2" (rejected)
//     are assumed; other values are judged by auditRemark or refused.
//   - CardCreate, CardFreeze, CardUnFreeze, CardClose: card phase. CardClose's totalAmount is read as the
//     balance paid out on closing and recorded as a Redemption transaction keyed by orderNo.
//   - CardInProduction, CardShipped, CardActive, CardBind: logistics of a physical card (CardActive also makes
//     the card Active).
//   - CardTopup: a TopUp transaction of rechargeAmount keyed by orderNo (not a balance increment).
//   - 3DS: a challenge (authId, amount, merchant, expiry); the masked cardPan gives the last four digits.
//     An OTP, if Tevau ever adds one, goes only to Challenge.Code.
//   - Authorization, Clearing: one transaction per orderId (Pending, then Completed); Refund and Reversal: their
//     own credit transactions keyed by details.subOrderId and linked to orderId.
//   - BusinessDeposit: a deposit to the business (prefund) account, about no card: acknowledged, no facts.
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
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/internal/pan"
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

func mapEvent(name string, d map[string]any, ev *event.Event, res *adapter.Result) error {
	switch name {
	case "Kyc":
		return kyc(d, ev)
	case "CardCreate", "CardFreeze", "CardUnFreeze", "CardClose":
		return cardStatus(name, d, ev)
	case "CardInProduction", "CardShipped", "CardActive", "CardBind":
		return logistics(name, d, ev)
	case "CardTopup":
		return topUp(d, ev)
	case "3DS":
		return challenge(d, ev)
	case "Authorization", "Clearing", "Refund", "Reversal":
		return transaction(name, d, ev)
	case "BusinessDeposit":
		// A deposit to the business (prefund) account: about no card or holder, so nothing to store.
		return nil
	default:
		res.Unknown = true
		return nil
	}
}

func requireCard(name string, ev *event.Event) error {
	if ev.CardID == "" {
		return adapter.Malformed("%s: body has no cardId", name)
	}
	return nil
}

// cardNumber reduces whatever card number a callback carries (cardPan is masked in the docs; the others are
// guarded in case Tevau ever sends a full number).
func cardNumber(d map[string]any) *event.Card {
	for _, k := range []string{"cardPan", "cardNo", "cardNumber"} {
		if n := pan.Reduce(adapter.Str(d, k)); n != nil {
			return &event.Card{Number: n}
		}
	}
	return nil
}

func withCard(ev *event.Event, d map[string]any) *event.Card {
	if ev.Card == nil {
		ev.Card = cardNumber(d)
		if ev.Card == nil {
			ev.Card = &event.Card{}
		}
	}
	return ev.Card
}

func kyc(d map[string]any, ev *event.Event) error {
	ev.HolderID = adapter.Str(d, "userCode")
	if ev.HolderID == "" {
		return adapter.Malformed("Kyc: body has no userCode")
	}
	st := adapter.Str(d, "auditState")
	k := &event.KYC{Reason: freeText(d, "auditRemark")}
	switch st {
	case "1":
		k.State = cardsv1alpha1.KYCApproved
	case "2":
		k.State = cardsv1alpha1.KYCRejected
	case "0":
		k.State = cardsv1alpha1.KYCPending
	case "":
		return adapter.Malformed("Kyc: body has no auditState")
	default:
		// Only "1" is documented; judge other values by the remark rather than refuse a final result.
		r := strings.ToLower(k.Reason)
		switch {
		case containsAny(r, "fail", "reject", "refus", "not pass", "denied", "declin"):
			k.State = cardsv1alpha1.KYCRejected
		case containsAny(r, "review", "pending", "processing", "progress"):
			k.State = cardsv1alpha1.KYCPending
		case containsAny(r, "passed", "approved", "success"):
			k.State = cardsv1alpha1.KYCApproved
		default:
			return adapter.Malformed("Kyc: unknown auditState %q", st)
		}
	}
	ev.KYC = k
	return nil
}

func cardStatus(name string, d map[string]any, ev *event.Event) error {
	if err := requireCard(name, ev); err != nil {
		return err
	}
	ev.ID = adapter.Str(d, "orderNo")
	c := withCard(ev, d)
	c.ProviderStatus = name
	switch name {
	case "CardCreate", "CardUnFreeze":
		c.Phase = cardsv1alpha1.CardActive
	case "CardFreeze":
		c.Phase = cardsv1alpha1.CardFrozen
	case "CardClose":
		c.Phase = cardsv1alpha1.CardClosed
		if s := adapter.Str(d, "totalAmount"); s != "" {
			amt, err := money.Major(d["totalAmount"], CardCurrency)
			if err != nil {
				return adapter.Malformed("CardClose: totalAmount: %v", err)
			}
			if amt = money.Abs(amt); !isZero(amt) {
				if ev.ID == "" {
					return adapter.Malformed("CardClose: body has totalAmount but no orderNo")
				}
				ev.Transaction = &event.Transaction{ID: ev.ID, Type: cardsv1alpha1.TransactionRedemption,
					Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: name, Direction: cardsv1alpha1.Debit,
					Amount: amt, Description: "balance paid out on card close"}
			}
		}
	}
	return nil
}

var logisticsStates = map[string]cardsv1alpha1.LogisticsState{
	"CardInProduction": cardsv1alpha1.LogisticsInProduction,
	"CardShipped":      cardsv1alpha1.LogisticsShipped,
	"CardActive":       cardsv1alpha1.LogisticsActivated,
	"CardBind":         cardsv1alpha1.LogisticsBound,
}

func logistics(name string, d map[string]any, ev *event.Event) error {
	if err := requireCard(name, ev); err != nil {
		return err
	}
	ev.ID = adapter.Str(d, "orderNo")
	// The logistics webhook's body beyond cardId and orderNo is undocumented; carrier and tracking number are
	// read under their usual names when present.
	ev.Logistics = &event.Logistics{State: logisticsStates[name],
		Carrier:        pan.Redact(adapter.First(d, "logisticsCompany", "logisticsCompanyName", "expressCompany", "carrier")),
		TrackingNumber: adapter.First(d, "trackingNumber", "trackingNo", "logisticsNo", "logisticsOrderNo", "expressNo")}
	ev.Card = cardNumber(d)
	if name == "CardActive" {
		c := withCard(ev, d)
		c.Phase, c.ProviderStatus = cardsv1alpha1.CardActive, name
	}
	return nil
}

func topUp(d map[string]any, ev *event.Event) error {
	if err := requireCard("CardTopup", ev); err != nil {
		return err
	}
	ev.ID = adapter.Str(d, "orderNo")
	if ev.ID == "" {
		return adapter.Malformed("CardTopup: body has no orderNo")
	}
	key := "rechargeAmount"
	if adapter.Str(d, key) == "" {
		key = "totalAmount" // the card-status variant of CardTopup may name it like CardClose does
	}
	if adapter.Str(d, key) == "" {
		return adapter.Malformed("CardTopup: body has no rechargeAmount")
	}
	amt, err := money.Major(d[key], CardCurrency)
	if err != nil {
		return adapter.Malformed("CardTopup: %s: %v", key, err)
	}
	ev.Transaction = &event.Transaction{ID: ev.ID, Type: cardsv1alpha1.TransactionTopUp,
		Phase: cardsv1alpha1.TransactionCompleted, ProviderStatus: "CardTopup", Direction: cardsv1alpha1.Credit,
		Amount: money.Abs(amt)}
	ev.Card = cardNumber(d)
	return nil
}

// otpFields are where a one-time code would be; Tevau's 3DS callback documents none today.
var otpFields = []string{"otp", "otpCode", "code", "verifyCode", "verificationCode", "passcode"}

func challenge(d map[string]any, ev *event.Event) error {
	if err := requireCard("3DS", ev); err != nil {
		return err
	}
	c := &event.Challenge{ID: adapter.Str(d, "authId"), Purpose: "3ds", Method: "OOB"}
	if c.ID == "" {
		return adapter.Malformed("3DS: body has no authId")
	}
	ev.ID = c.ID
	if code := adapter.First(d, otpFields...); code != "" {
		c.Method, c.Code = "OTP", code
	}
	if cur := adapter.Str(d, "txnCurrency"); cur != "" || adapter.Str(d, "txnAmount") != "" {
		amt, err := money.Major(d["txnAmount"], cur)
		if err != nil {
			return adapter.Malformed("3DS: txnAmount/txnCurrency: %v", err)
		}
		c.Amount = money.Abs(amt)
	}
	if m := freeText(d, "cardAcceptorLocationName"); m != "" {
		c.Merchant = &cardsv1alpha1.Merchant{Name: m}
	}
	var err error
	if c.ExpiresAt, err = firstTime("3DS: ", d, "expireTimeStamp"); err != nil {
		return err
	}
	// The example carries several creation times (created, createdStamp, createTimeStamp, createdTime) that
	// disagree; the millisecond creation stamp comes first.
	if ev.OccurredAt, err = firstTime("3DS: ", d, "createdStamp", "created", "createTimeStamp", "createdTime"); err != nil {
		return err
	}
	ev.Challenge = c
	ev.Card = cardNumber(d)
	return nil
}

var failedRemark = []string{"declin", "fail", "reject", "refus", "insufficient", "denied"}

func transaction(name string, d map[string]any, ev *event.Event) error {
	if err := requireCard(name, ev); err != nil {
		return err
	}
	orderID := adapter.Str(d, "orderId")
	if orderID == "" {
		return adapter.Malformed("%s: body has no orderId", name)
	}
	det := adapter.Obj(d, "details")
	if det == nil {
		det = map[string]any{}
	}
	sub := adapter.Str(det, "subOrderId")
	t := &event.Transaction{Channel: freeText(d, "channel"), Description: freeText(det, "remark"),
		ProviderStatus: providerStatus(d, det), Merchant: merchant(adapter.Obj(d, "merchantData"))}
	var err error
	if t.OccurredAt, err = firstTime(name+": details.", det, "createTimeStamp", "createTime"); err != nil {
		return err
	}
	ev.OccurredAt = t.OccurredAt
	// subOrderId is unique per push; without it, orderId and the event type are the best key Tevau gives.
	ev.ID = sub
	if ev.ID == "" {
		ev.ID = orderID + ":" + name
	}

	switch name {
	case "Authorization", "Clearing":
		err = purchase(name, d, det, orderID, t)
	case "Refund", "Reversal":
		err = amendment(name, det, orderID, ev.ID, t)
	}
	if err != nil {
		return err
	}
	if r := strings.ToLower(t.Description); containsAny(r, failedRemark...) {
		t.Phase, t.FailureReason = cardsv1alpha1.TransactionFailed, t.Description
		if name == "Authorization" {
			t.Phase = cardsv1alpha1.TransactionDeclined
		}
	}
	ev.Transaction = t
	ev.Card = cardNumber(d)
	return nil
}

// purchase reads an authorization or its clearing: orderId is the purchase, and its clearing (and later
// refunds) carry the same orderId.
func purchase(name string, d, det map[string]any, orderID string, t *event.Transaction) error {
	t.ID, t.Direction = orderID, cardsv1alpha1.Debit
	t.Type, t.Phase = cardsv1alpha1.TransactionAuthorization, cardsv1alpha1.TransactionPending
	if name == "Clearing" {
		t.Type, t.Phase = cardsv1alpha1.TransactionClearing, cardsv1alpha1.TransactionCompleted
	}
	cur := adapter.Str(d, "transCurrency")
	if cur == "" || adapter.Str(d, "transAmount") == "" {
		return adapter.Malformed("%s: body has no transAmount and transCurrency", name)
	}
	amt, err := money.Major(d["transAmount"], cur)
	if err != nil {
		return adapter.Malformed("%s: transAmount: %v", name, err)
	}
	t.Amount = money.Abs(amt)
	if t.BillingAmount, err = cardAmount(name, det, "principal"); err != nil {
		return err
	}
	t.Fee, err = fees(name, det)
	return err
}

// amendment reads a refund or reversal: its own credit, linked to the purchase it amends. Its transAmount and
// principal repeat the original's; the amount returned is details.refund.refund / details.reversal.reversal.
func amendment(name string, det map[string]any, orderID, id string, t *event.Transaction) error {
	t.ID, t.OriginalTransactionID, t.Direction = id, orderID, cardsv1alpha1.Credit
	t.Type, t.Phase = cardsv1alpha1.TransactionRefund, cardsv1alpha1.TransactionCompleted
	part := "refund"
	if name == "Reversal" {
		t.Type, part = cardsv1alpha1.TransactionReversal, "reversal"
	}
	var err error
	inner := adapter.Obj(det, part)
	if inner != nil && adapter.Str(inner, part) != "" {
		t.Amount, err = cardAmount(name, inner, part)
	} else {
		t.Amount, err = cardAmount(name, det, "principal")
	}
	if err != nil {
		return err
	}
	if t.Amount == nil {
		return adapter.Malformed("%s: details has no %s.%s or principal", name, part, part)
	}
	return nil
}

// cardAmount reads an amount in the card currency; nil when absent.
func cardAmount(name string, m map[string]any, key string) (*cardsv1alpha1.Money, error) {
	if adapter.Str(m, key) == "" {
		return nil, nil
	}
	amt, err := money.Major(m[key], CardCurrency)
	if err != nil {
		return nil, adapter.Malformed("%s: details.%s: %v", name, key, err)
	}
	return money.Abs(amt), nil
}

// fees sums the holder's fees (fxFee, authorizationFee, atmFee) in the card currency; the channel* amounts are
// Tevau's own costs. Nil when none is sent.
func fees(name string, det map[string]any) (*cardsv1alpha1.Money, error) {
	sum, _ := money.Parse("0")
	seen := false
	for _, k := range []string{"fxFee", "authorizationFee", "atmFee"} {
		if adapter.Str(det, k) == "" {
			continue
		}
		v, err := money.Parse(det[k])
		if err != nil {
			return nil, adapter.Malformed("%s: details.%s: %v", name, k, err)
		}
		sum, seen = sum.Add(v.Abs()), true
	}
	if !seen {
		return nil, nil
	}
	return money.Major(sum.String(), CardCurrency)
}

var (
	mccPattern     = regexp.MustCompile(`^[0-9]{4}$`)
	countryPattern = regexp.MustCompile(`^[A-Z]{2,3}$`)
)

func merchant(m map[string]any) *cardsv1alpha1.Merchant {
	if m == nil {
		return nil
	}
	out := &cardsv1alpha1.Merchant{Name: freeText(m, "merchantName"), ID: adapter.Str(m, "merchantId")}
	// Values the API would refuse are dropped rather than failing the whole transaction.
	if mcc := adapter.Str(m, "mccCode"); mccPattern.MatchString(mcc) {
		out.MCC = mcc
	}
	if c := strings.ToUpper(adapter.Str(m, "merchantCountry")); countryPattern.MatchString(c) {
		out.Country = c
	}
	if len(out.ID) > 64 {
		out.ID = ""
	}
	if *out == (cardsv1alpha1.Merchant{}) {
		return nil
	}
	return out
}

func providerStatus(d, det map[string]any) string {
	var parts []string
	for _, f := range []struct {
		m   map[string]any
		key string
	}{{d, "status"}, {det, "subStatus"}, {det, "subType"}} {
		if v := adapter.Str(f.m, f.key); v != "" {
			parts = append(parts, f.key+"="+v)
		}
	}
	s := strings.Join(parts, " ")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// firstTime is the first of keys present in m as a time (zero when none is); prefix names the event.
func firstTime(prefix string, m map[string]any, keys ...string) (time.Time, error) {
	for _, k := range keys {
		t, err := adapter.OptionalTime(m, k, time.UTC)
		if err != nil {
			if r, ok := adapter.AsRejection(err); ok {
				return time.Time{}, adapter.Malformed("%s%s", prefix, r.Message)
			}
			return time.Time{}, err
		}
		if !t.IsZero() {
			return t, nil
		}
	}
	return time.Time{}, nil
}

// freeText is a free-text field (remark, merchant name, ...): a card number typed into it is removed here, at
// the adapter boundary, so no full PAN reaches the event even by accident. Identifiers are never rewritten.
func freeText(m map[string]any, key string) string { return pan.Redact(adapter.Str(m, key)) }

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func isZero(m *cardsv1alpha1.Money) bool {
	d, err := money.Parse(string(m.Value))
	return err == nil && d.IsZero()
}
