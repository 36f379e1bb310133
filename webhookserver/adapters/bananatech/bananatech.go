// Package bananatech decodes BananaTech callbacks. Every callback is one JSON envelope
//
//	{"encrypted_payload": "<base64>", "type": "CARD_APPLY_RESULT", "hmac": "<hex>"}
//
// where hmac = hex(HMAC-SHA256(signingKey, encrypted_payload)), computed over the base64 string exactly as sent,
// and encrypted_payload = base64(IV ‖ AES-CBC(PKCS7(json))) with a random 16-byte IV. The MAC is checked (in
// constant time) before anything is decrypted. The decrypted JSON is snake_case, times are occur_time in epoch
// milliseconds (UTC), IDs may be JSON integers and amounts are decimal numbers in major units.
//
// UNKNOWN in BananaTech's docs, and how the adapter covers it:
//   - How the merchant Secret Key becomes the AES key: the option spec.bananatech.aesKey (Raw, Hex, Base64,
//     SHA256), applied by endpointconfig.DeriveAESKey; the adapter only sees the derived key. A key that does
//     not fit surfaces as a DecryptFailed rejection that names the option.
//   - The acknowledgement: only "HTTP 200" is implied. The adapter answers 200 with {"code":0,"message":"success"}:
//     valid JSON for a sender that parses the answer, code 0 for one that checks a code, and the word success for
//     one that matches text.
//   - Retries, idempotency keys and replay protection: none are documented and the envelope carries no
//     timestamp or nonce. The only time is occur_time inside the encrypted (so MAC-covered) payload, so it is
//     the replay guard: every type the docs give an occur_time must carry one (400 Malformed naming occur_time
//     otherwise), and one further than the endpoint's verification.timestampTolerance (default 5 minutes) from
//     the receiver's clock is refused 401 StaleTimestamp, as UPay's and Tevau's signed timestamps are. A
//     captured CARD_STATUS_CHANGE replayed later therefore cannot unfreeze a card, and within the tolerance
//     OccurredAt ordering ("newer wins") keeps a replay from overwriting newer state. The cost: a retry sent
//     later than the tolerance after the fact is refused too (raise the tolerance if BananaTech retries late).
//     USER_CREATE_RESULT is the one documented type without occur_time: it is accepted without one (refusing
//     it would lose every KYC result), checked when it has one, and ordered by receive time otherwise; a replay
//     of it can only repeat a KYC result BananaTech really sent for that user. CARD_BALANCE_CHANGE is not in
//     the seed document; BananaTech's fuller docs give every result occur_time, so it is required there too.
//     There is no DeliveryID; Event.ID is derived from the fact's non-secret identity (type, IDs, status,
//     amounts, occur_time), so a retry of the same fact has the same ID.
//   - The outer type is not covered by the MAC. The adapter therefore requires the decrypted payload to fit its
//     claimed type: a "type" inside the payload must agree, every type that has a distinctive field must carry
//     it (refund_amount, receive_amount, card_status, ...), and the types without one refuse the distinctive
//     fields of the others. A captured callback cannot be relabelled as another event.
//   - Status vocabularies are only partly documented (SUCCESS/FAILED, PENDING, APPROVED, LOCKED/ACTIVE,
//     ACCEPTED/DECLINED, "etc."). Common synonyms are mapped; any other value is the Unknown phase (card or
//     transaction) with the value verbatim, acknowledged: a 400 would make BananaTech retry a callback that can
//     never succeed. A USER_CREATE_RESULT status no KYC state fits is the holder's KYC Unknown, verbatim.
//   - CARD_CLOSE_RESULT sends refund_amount without a currency. The refund is a fact about the card, not
//     spending (no transaction is made of it): Card.Amounts["refund_amount"] when a currency field is present,
//     else the exact decimal verbatim in Card.References["refund_amount"]; a currency is never guessed.
//   - When a card becomes active: the seed documents CARD_ACTIVATE_RESULT (with the card number) and says to
//     wait for CARD_ASSIGN_RESULT "before proceeding with card activation". A successful application or
//     assignment is therefore PendingActivation and only the activation makes a card Active. Assigned cards are
//     physical; an application does not say the card's type, so none is claimed. LOCKED (the merchant's Update
//     Status) is a temporary block: Frozen.
//   - Failed results: USER_CREATE_RESULT FAILED and a failed application or assignment are Failures with the
//     reason verbatim, on the holder (user_id) when sent, else on the endpoint. A failed assignment names no card
//     (the seed: card_id "only present for successful assigns"); one it does name is only the reference.
//   - TRANSACTION_CREATED AUTHORIZATION is a hold whatever its status says (SUCCESS is Pending): the purchase
//     arrives under its own transaction_id and is the Completed debit, so the money is counted once.
//
// A card_number on any card event is reduced with pan.Reduce at once; one-time codes (CARD_3DS value,
// CARD_VERIFICATION otp_value) go only into Challenge.Code. Rejection messages never quote decrypted secrets.
package bananatech

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Envelope fields.
const (
	FieldPayload = "encrypted_payload"
	FieldHMAC    = "hmac"
	FieldType    = "type"
)

// Event types BananaTech sends.
const (
	UserCreateResult   = "USER_CREATE_RESULT"
	CardApplyResult    = "CARD_APPLY_RESULT"
	CardActivateResult = "CARD_ACTIVATE_RESULT"
	CardAssignResult   = "CARD_ASSIGN_RESULT"
	CardStatusChange   = "CARD_STATUS_CHANGE"
	CardBalanceChange  = "CARD_BALANCE_CHANGE"
	CardRechargeResult = "CARD_RECHARGE_RESULT"
	CardCloseResult    = "CARD_CLOSE_RESULT"
	TransactionCreated = "TRANSACTION_CREATED"
	CardCorrection     = "CARD_CORRECTION"
	Card3DS            = "CARD_3DS"
	CardVerification   = "CARD_VERIFICATION"
)

// Adapter is the BananaTech adapter.
type Adapter struct{}

var ack = adapter.JSON(`{"code":0,"message":"success"}`)

// markers are the fields that identify a type (any one must be present); no other documented type has them.
var markers = map[string][]string{
	CardApplyResult:    {"template_id"},
	CardStatusChange:   {"card_status"},
	CardBalanceChange:  {"available"},
	CardRechargeResult: {"receive_amount"},
	CardCloseResult:    {"refund_amount"},
	TransactionCreated: {"billing_amount", "transaction_amount"},
	CardCorrection:     {"correction_id"},
	Card3DS:            {"securement_id"},
	CardVerification:   {"verification_id"},
}

var strongMarkers = []string{"card_status", "available", "receive_amount", "refund_amount", "billing_amount",
	"transaction_amount", "correction_id", "securement_id", "verification_id"}

// forbidden are fields of other types that a type with a weak or no marker must not carry.
var forbidden = map[string][]string{
	UserCreateResult:   append([]string{"card_id", "template_id", "card_number", "error_reason"}, strongMarkers...),
	CardApplyResult:    append([]string{"card_number"}, strongMarkers...),
	CardActivateResult: append([]string{"template_id"}, strongMarkers...),
	CardAssignResult:   append([]string{"template_id", "card_number"}, strongMarkers...),
}

// known lists every mapped type; ownType marks those whose payload has a "type" field of its own.
var known = map[string]bool{UserCreateResult: false, CardApplyResult: false, CardActivateResult: false,
	CardAssignResult: false, CardStatusChange: false, CardBalanceChange: false, CardRechargeResult: false,
	CardCloseResult: false, TransactionCreated: true, CardCorrection: true, Card3DS: false, CardVerification: false}

// typeName bounds the outer type, which the MAC does not cover, before it becomes a metric label.
var typeName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)

// Decode verifies the MAC, decrypts the payload and maps the event.
func (Adapter) Decode(req *adapter.Request) (*adapter.Result, error) {
	ep := req.Endpoint
	if ep == nil || len(ep.SigningKey) == 0 {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "the endpoint has no signing key")
	}
	env, err := adapter.Object(req.Body)
	if err != nil {
		return nil, err
	}
	mac := adapter.Str(env, FieldHMAC)
	if mac == "" {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "envelope has no %s", FieldHMAC)
	}
	// The MAC covers the string exactly as sent, so it is not trimmed.
	payload, _ := env[FieldPayload].(string)
	if payload == "" {
		return nil, adapter.Malformed("envelope has no %s string", FieldPayload)
	}
	if !verify(ep.SigningKey, payload, mac) {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "%s does not match %s", FieldHMAC, FieldPayload)
	}
	plain, err := decrypt(ep.EncryptionKey, payload)
	if err != nil {
		return nil, err
	}
	d, err := plaintextObject(plain)
	if err != nil {
		return nil, err
	}
	name, err := eventType(env, d)
	if err != nil {
		return nil, err
	}

	res := &adapter.Result{EventType: name, Ack: ack}
	kind := strings.ToUpper(name)
	if _, ok := known[kind]; !ok {
		res.Unknown = true
		return res, nil
	}
	if err := checkShape(kind, d); err != nil {
		return nil, err
	}
	ev := event.Event{Type: name, ID: eventID(kind, d), CardID: adapter.Str(d, "card_id"), HolderID: adapter.Str(d, "user_id")}
	if ev.OccurredAt, err = occurTime(kind, d); err != nil {
		return nil, err
	}
	if err := checkFresh(kind, ev.OccurredAt, req); err != nil {
		return nil, err
	}
	if ev.CardID == "" && !cardless[kind] {
		return nil, adapter.Malformed("%s: decrypted payload has no card_id", kind)
	}
	if err := mapEvent(kind, d, &ev); err != nil {
		return nil, err
	}
	keepCardNumber(d, &ev)
	// A pending or unknown result that names neither card nor holder has nothing to record.
	if ev.CardID != "" || ev.HolderID != "" || ev.Failure != nil {
		res.Events = []event.Event{ev}
	}
	return res, nil
}

// occurTime reads occur_time (epoch milliseconds, UTC); zero when absent.
func occurTime(kind string, d map[string]any) (time.Time, error) {
	t, err := adapter.OptionalTime(d, "occur_time", time.UTC)
	if err != nil {
		if r, ok := adapter.AsRejection(err); ok {
			return time.Time{}, adapter.Malformed("%s: %s", kind, r.Message)
		}
		return time.Time{}, adapter.Malformed("%s: occur_time: %v", kind, err)
	}
	return t, nil
}

// untimed are the types BananaTech documents without occur_time.
var untimed = map[string]bool{UserCreateResult: true}

// checkFresh is the replay guard: occur_time is required (but for untimed types) and must be within the
// endpoint's timestamp tolerance of the receiver's clock.
func checkFresh(kind string, at time.Time, req *adapter.Request) error {
	if at.IsZero() {
		if untimed[kind] {
			return nil
		}
		return adapter.Malformed("%s: decrypted payload has no occur_time (epoch milliseconds): BananaTech documents it for %s, and without it a replayed callback cannot be told from a new one", kind, kind)
	}
	if tol := tolerance(req.Endpoint); adapter.CheckTimestamp(at, req.Received, tol) != nil {
		return adapter.Unauthorized(cardsv1alpha1.ReasonStaleTimestamp, "%s: occur_time %s is more than %s from the receiver's clock (a replayed or late callback)",
			kind, at.UTC().Format(time.RFC3339Nano), tol)
	}
	return nil
}

func tolerance(ep *endpointconfig.Resolved) time.Duration {
	if ep == nil || ep.TimestampTolerance <= 0 {
		return endpointconfig.DefaultTimestampTolerance
	}
	return ep.TimestampTolerance
}

func verify(key []byte, payload, mac string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(mac))
	if err != nil {
		return false
	}
	return adapter.Equal(got, sign(key, payload))
}

func sign(key []byte, payload string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// decodeBase64 accepts standard base64, with or without padding or line breaks, and the URL alphabet.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

const keyHint = "check the encryptionKey (or signingKey) and spec.bananatech.aesKey"

func decrypt(key []byte, payload string) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonDecryptFailed, "the endpoint has no usable AES key: %s", keyHint)
	}
	raw, err := decodeBase64(payload)
	if err != nil {
		return nil, adapter.Malformed("%s is not base64", FieldPayload)
	}
	if len(raw) < 2*aes.BlockSize || len(raw)%aes.BlockSize != 0 {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonDecryptFailed,
			"%s is %d bytes, not a 16-byte IV followed by whole AES blocks", FieldPayload, len(raw))
	}
	plain := make([]byte, len(raw)-aes.BlockSize)
	cipher.NewCBCDecrypter(block, raw[:aes.BlockSize]).CryptBlocks(plain, raw[aes.BlockSize:])
	// No padding oracle: the MAC was verified before decrypting.
	n := int(plain[len(plain)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonDecryptFailed, "decrypted payload has no PKCS7 padding: %s", keyHint)
	}
	for _, b := range plain[len(plain)-n:] {
		if int(b) != n {
			return nil, adapter.Unauthorized(cardsv1alpha1.ReasonDecryptFailed, "decrypted payload has no PKCS7 padding: %s", keyHint)
		}
	}
	return plain[:len(plain)-n], nil
}

// plaintextObject parses the decrypted JSON without ever quoting it in an error.
func plaintextObject(plain []byte) (map[string]any, error) {
	plain = bytes.TrimPrefix(plain, []byte("\xef\xbb\xbf"))
	var m map[string]any
	if err := adapter.Decode(plain, &m); err != nil || m == nil {
		if !json.Valid(plain) {
			return nil, adapter.Unauthorized(cardsv1alpha1.ReasonDecryptFailed, "decrypted payload is not JSON: %s", keyHint)
		}
		return nil, adapter.Malformed("decrypted payload is not a JSON object of at most %d levels", adapter.MaxJSONDepth)
	}
	return m, nil
}

// eventType is the outer type, checked against a type inside the payload.
func eventType(env, d map[string]any) (string, error) {
	outer, inner := adapter.Str(env, FieldType), adapter.Str(d, FieldType)
	_, innerIsEvent := known[strings.ToUpper(inner)]
	if outer == "" {
		if innerIsEvent {
			return inner, nil
		}
		return "", adapter.Malformed("envelope has no %s", FieldType)
	}
	if !typeName.MatchString(outer) {
		return "", adapter.Malformed("envelope type is not an event name")
	}
	if inner != "" && !strings.EqualFold(inner, outer) {
		ownType, outerKnown := known[strings.ToUpper(outer)]
		if innerIsEvent || (outerKnown && !ownType) {
			return "", adapter.Malformed("envelope type %s disagrees with the decrypted payload's type %q", outer, pan.Clean(inner, 64))
		}
	}
	return outer, nil
}

func present(d map[string]any, key string) bool {
	v, ok := d[key]
	return ok && v != nil && v != ""
}

// checkShape refuses a payload that does not fit its claimed type (the outer type is not under the MAC).
func checkShape(kind string, d map[string]any) error {
	if ms := markers[kind]; len(ms) > 0 {
		found := false
		for _, m := range ms {
			found = found || present(d, m)
		}
		if !found {
			return adapter.Malformed("%s: decrypted payload has no %s", kind, strings.Join(ms, " or "))
		}
	}
	for _, f := range forbidden[kind] {
		if present(d, f) {
			return adapter.Malformed("%s: decrypted payload carries %s, a field of another event type", kind, f)
		}
	}
	return nil
}

// idFields are the non-secret fields that identify a fact; never card_number, value or otp_value.
var idFields = []string{"user_id", "card_id", "template_id", "transaction_id", "correction_id", "securement_id",
	"verification_id", "original_transaction_id", "type", "status", "card_status", "confirm", "method", "amount",
	"currency", "available", "before_available", "receive_amount", "refund_amount", "billing_amount",
	"billing_currency", "transaction_amount", "transaction_currency", "occur_time"}

// eventID derives an idempotency key, as BananaTech sends none: the same fact gives the same ID.
func eventID(kind string, d map[string]any) string {
	h := sha256.New()
	h.Write([]byte("bananatech\x00" + kind))
	for _, f := range idFields {
		fmt.Fprintf(h, "\x00%s=%s", f, adapter.Str(d, f))
	}
	return strings.ToLower(kind) + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Encode encrypts and signs a decrypted payload the way BananaTech does, for the simulator and tests.
// The payload is the decrypted JSON. Its event type is, in order: the type of a wrapper
// {"type": "...", "data": {...}} (data is then the decrypted JSON, needed for TRANSACTION_CREATED and
// CARD_CORRECTION whose payload has a type of its own); a top-level "type" naming a known event (kept in the
// plaintext, which Decode accepts); the type the payload's fields identify (so the docs' examples, which carry
// no type, work as they are); else a top-level "type" naming an unknown event.
// occur_time is the only time BananaTech sends, and Decode refuses one outside the endpoint's tolerance: an
// occur_time further than that from now (an example written days ago) is replaced by now, the way the other
// providers' encoders stamp a fresh signed timestamp. One within the tolerance is kept, so tests can order
// events; an absent one stays absent.
func Encode(ep *endpointconfig.Resolved, payload []byte, now time.Time) (http.Header, []byte, error) {
	name, plain, err := plaintextFor(payload)
	if err != nil {
		return nil, nil, err
	}
	if plain, err = freshen(plain, now, tolerance(ep)); err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(ep.EncryptionKey)
	if err != nil {
		return nil, nil, fmt.Errorf("bananatech AES key: %w", err)
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(append([]byte{}, plain...), bytes.Repeat([]byte{byte(n)}, n)...)
	out := make([]byte, aes.BlockSize+len(padded))
	if _, err := rand.Read(out[:aes.BlockSize]); err != nil {
		return nil, nil, err
	}
	cipher.NewCBCEncrypter(block, out[:aes.BlockSize]).CryptBlocks(out[aes.BlockSize:], padded)
	enc := base64.StdEncoding.EncodeToString(out)
	body, err := json.Marshal(struct {
		EncryptedPayload string `json:"encrypted_payload"`
		Type             string `json:"type"`
		HMAC             string `json:"hmac"`
	}{enc, name, hex.EncodeToString(sign(ep.SigningKey, enc))})
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return h, body, nil
}

// freshen replaces an occur_time further than tolerance from now by now (epoch milliseconds).
func freshen(plain []byte, now time.Time, tolerance time.Duration) ([]byte, error) {
	m, err := adapter.Object(plain)
	if err != nil {
		return nil, err
	}
	v, ok := m["occur_time"]
	if !ok || now.IsZero() {
		return plain, nil
	}
	at, err := adapter.Time(v, time.UTC)
	if err != nil || adapter.CheckTimestamp(at, now, tolerance) == nil {
		return plain, nil
	}
	m["occur_time"] = json.Number(strconv.FormatInt(now.UnixMilli(), 10))
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func plaintextFor(payload []byte) (string, []byte, error) {
	m, err := adapter.Object(payload)
	if err != nil {
		return "", nil, err
	}
	if len(m) == 2 && adapter.Obj(m, "data") != nil && adapter.Str(m, FieldType) != "" {
		var w struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(payload, &w); err != nil {
			return "", nil, err
		}
		return w.Type, []byte(w.Data), nil
	}
	typ := adapter.Str(m, FieldType)
	if _, ok := known[strings.ToUpper(typ)]; ok {
		return typ, payload, nil
	}
	if inferred := inferType(m); inferred != "" {
		return inferred, payload, nil
	}
	if typ != "" {
		return typ, payload, nil
	}
	return "", nil, errors.New("bananatech: cannot tell the event type of the payload: wrap it as {\"type\": ..., \"data\": {...}}")
}

// inferType names the event whose documented fields the payload has, or "".
func inferType(d map[string]any) string {
	for _, kind := range []string{CardCorrection, Card3DS, CardVerification, CardStatusChange, CardBalanceChange,
		CardRechargeResult, CardCloseResult, TransactionCreated} {
		for _, m := range markers[kind] {
			if present(d, m) {
				return kind
			}
		}
	}
	switch {
	case present(d, "card_number"):
		return CardActivateResult
	case present(d, "template_id"):
		return CardApplyResult
	case present(d, "error_reason") || present(d, "card_id"):
		return CardAssignResult
	case present(d, "user_id"):
		return UserCreateResult
	}
	return ""
}

type outcome int

// unknownOutcome is a status value none of the lists below has: the seed's lists are open ("SUCCESS, FAILED,
// etc."), so it is kept verbatim as an Unknown phase and acknowledged, never refused (a 400 makes BananaTech
// retry a callback that can never succeed, and the event is lost).
const (
	unknownOutcome outcome = iota
	succeeded
	failed
	pending
)

var outcomes = map[string]outcome{
	"SUCCESS": succeeded, "SUCCEEDED": succeeded, "SUCCESSFUL": succeeded, "COMPLETED": succeeded,
	"COMPLETE": succeeded, "APPROVED": succeeded, "DONE": succeeded, "OK": succeeded,
	"FAILED": failed, "FAIL": failed, "FAILURE": failed, "ERROR": failed, "REJECTED": failed, "DECLINED": failed,
	"DENIED": failed, "CANCELLED": failed, "CANCELED": failed,
	"PENDING": pending, "PROCESSING": pending, "IN_PROGRESS": pending, "INIT": pending, "CREATED": pending,
}

// statusOf reads the status of an operation result. Only a missing status is malformed.
func statusOf(kind string, d map[string]any) (string, outcome, error) {
	st := adapter.Str(d, "status")
	if st == "" {
		return "", 0, adapter.Malformed("%s: decrypted payload has no status", kind)
	}
	return pan.Clean(st, 64), outcomes[strings.ToUpper(st)], nil
}

// cardless are the types that may name no card: holder-level results and failed requests. Every other type
// needs card_id: its facts (a transaction, a balance) belong to one card.
var cardless = map[string]bool{UserCreateResult: true, CardApplyResult: true, CardAssignResult: true}

func mapEvent(kind string, d map[string]any, ev *event.Event) error {
	var err error
	switch kind {
	case UserCreateResult:
		err = userCreate(d, ev)
	case CardApplyResult, CardAssignResult:
		err = cardResult(kind, d, ev)
	case CardActivateResult:
		err = activate(d, ev)
	case CardStatusChange:
		err = statusChange(d, ev)
	case CardBalanceChange:
		var avail *cardsv1alpha1.Money
		if avail, err = amount(kind, d, "available", "currency", true); err == nil {
			// The available balance is absolute (not a delta); a negative one is kept as such.
			ev.Balance = &event.Balance{Available: *avail}
		}
	case CardRechargeResult:
		ev.Transaction, err = recharge(d)
		ev.Card = cardRefs(ev.Card, d, "template_id")
	case CardCloseResult:
		err = closeCard(d, ev)
	case TransactionCreated:
		ev.Transaction, err = transaction(d)
	case CardCorrection:
		ev.Transaction, err = correction(d)
	case Card3DS:
		ev.Challenge, err = threeDS(d)
	case CardVerification:
		ev.Challenge, err = verification(d)
	}
	return err
}

// keepCardNumber reduces a card_number that any card event carries to BIN + last 4 (the seed documents it on
// CARD_ACTIVATE_RESULT only, but a full number must never pass, and the masked one is worth keeping).
func keepCardNumber(d map[string]any, ev *event.Event) {
	n := pan.Reduce(adapter.Str(d, "card_number"))
	// Card facts of an event without a card would reach every card of the holder.
	if n == nil || ev.CardID == "" || (ev.Card != nil && ev.Card.Number != nil) {
		return
	}
	if ev.Card == nil {
		ev.Card = &event.Card{}
	}
	ev.Card.Number = n
}

// cardRefs adds the named fields, when sent, to the card's references, verbatim.
func cardRefs(c *event.Card, d map[string]any, fields ...string) *event.Card {
	for _, f := range fields {
		v := pan.Clean(adapter.Str(d, f), 256)
		if v == "" {
			continue
		}
		if c == nil {
			c = &event.Card{}
		}
		if c.References == nil {
			c.References = map[string]string{}
		}
		c.References[f] = v
	}
	return c
}

var kycStates = map[string]cardsv1alpha1.KYCState{
	"APPROVED": cardsv1alpha1.KYCApproved, "SUCCESS": cardsv1alpha1.KYCApproved, "PASSED": cardsv1alpha1.KYCApproved,
	"VERIFIED": cardsv1alpha1.KYCApproved, "ACTIVE": cardsv1alpha1.KYCApproved,
	"REJECTED": cardsv1alpha1.KYCRejected, "DECLINED": cardsv1alpha1.KYCRejected, "DENIED": cardsv1alpha1.KYCRejected,
	"PENDING": cardsv1alpha1.KYCPending, "PROCESSING": cardsv1alpha1.KYCPending, "REVIEWING": cardsv1alpha1.KYCPending,
	"IN_REVIEW": cardsv1alpha1.KYCPending, "UNDER_REVIEW": cardsv1alpha1.KYCPending, "SUBMITTED": cardsv1alpha1.KYCPending,
	"INIT": cardsv1alpha1.KYCUnverified, "CREATED": cardsv1alpha1.KYCUnverified, "UNVERIFIED": cardsv1alpha1.KYCUnverified,
}

// userFailures are the USER_CREATE_RESULT statuses that say the creation failed, rather than judged the user.
var userFailures = map[string]bool{"FAILED": true, "FAIL": true, "FAILURE": true, "ERROR": true}

// userCreate is holder-level: a KYC verdict, or a Failure when the user could not be created. A status no
// state fits is left out rather than guessed (the event still reaches the holder).
func userCreate(d map[string]any, ev *event.Event) error {
	if ev.HolderID == "" {
		return adapter.Malformed("%s: decrypted payload has no user_id", UserCreateResult)
	}
	st, _, err := statusOf(UserCreateResult, d)
	if err != nil {
		return err
	}
	reason := pan.Clean(adapter.Str(d, "message"), 512)
	if userFailures[strings.ToUpper(st)] {
		ev.Failure = &event.Failure{Kind: UserCreateResult, Reason: reason, ProviderStatus: st, Reference: ev.HolderID}
		return nil
	}
	ev.KYC = &event.KYC{State: kycStates[strings.ToUpper(st)], Reason: reason}
	if ev.KYC.State == "" {
		ev.KYC.State, ev.KYC.ProviderStatus = cardsv1alpha1.KYCUnknown, st
	}
	return nil
}

// resultPhases: a successful application or assignment issues a card that still needs CARD_ACTIVATE_RESULT
// (the seed says to wait for the assignment result "before proceeding with card activation", and documents an
// activation result with the card number for every card); it is not Active before that.
var resultPhases = map[outcome]cardsv1alpha1.CardPhase{succeeded: cardsv1alpha1.CardPendingActivation,
	pending: cardsv1alpha1.CardRequested, failed: cardsv1alpha1.CardFailed, unknownOutcome: cardsv1alpha1.CardUnknown}

// cardResult maps CARD_APPLY_RESULT and CARD_ASSIGN_RESULT. Assignments are of physical cards (the seed); an
// application says nothing of the card's type, so none is claimed.
func cardResult(kind string, d map[string]any, ev *event.Event) error {
	st, o, err := statusOf(kind, d)
	if err != nil {
		return err
	}
	op, typ := "apply", cardsv1alpha1.CardType("")
	if kind == CardAssignResult {
		op, typ = "assign", cardsv1alpha1.CardPhysical
	}
	if o == failed {
		failedResult(kind, st, d, ev)
	}
	if ev.CardID == "" {
		if o == succeeded {
			return adapter.Malformed("%s: decrypted payload has no card_id", kind)
		}
		return nil // the holder (or, for a Failure, the endpoint) records it
	}
	c := &event.Card{Phase: resultPhases[o], ProviderStatus: pan.Clean(op+":"+st, 64), Type: typ}
	if o == failed {
		c.Reason = ev.Failure.Reason
	}
	ev.Card = cardRefs(c, d, "template_id")
	return nil
}

// failedResult records a failed application or assignment as a Failure: of the holder when user_id is sent,
// else of the endpoint. A failed assignment leaves the card (if it names one) out of the event: the card was
// not given to the holder and is not broken, so it is only the Failure's reference. A failed application's
// card_id is the card applied for, which fails with it; without one, the template is the only reference.
func failedResult(kind, st string, d map[string]any, ev *event.Event) {
	f := &event.Failure{Kind: kind, ProviderStatus: st, Reason: pan.Clean(adapter.First(d, "error_reason", "message", "description"), 512),
		Reference: pan.Clean(adapter.First(d, "card_id", "template_id"), 128)}
	if kind == CardAssignResult {
		f.Reference = pan.Clean(adapter.Str(d, "card_id"), 128)
		ev.CardID = ""
	}
	ev.Failure = f
}

func activate(d map[string]any, ev *event.Event) error {
	st, o, err := statusOf(CardActivateResult, d)
	if err != nil {
		return err
	}
	c := &event.Card{ProviderStatus: pan.Clean("activate:"+st, 64), Number: pan.Reduce(adapter.Str(d, "card_number"))}
	switch o {
	case succeeded:
		// The card number is what tells an activation apart from an assignment of the same card.
		if c.Number == nil {
			return adapter.Malformed("%s: a successful activation has no usable card_number", CardActivateResult)
		}
		c.Phase = cardsv1alpha1.CardActive
	case failed:
		c.Reason = pan.Clean(adapter.First(d, "error_reason", "message", "description"), 512)
		if c.Reason == "" {
			c.Reason = "activation failed"
		}
	case unknownOutcome:
		c.Phase = cardsv1alpha1.CardUnknown
	}
	ev.Card = c
	return nil
}

var cardStatuses = map[string]cardsv1alpha1.CardPhase{
	"ACTIVE": cardsv1alpha1.CardActive, "NORMAL": cardsv1alpha1.CardActive,
	"LOCKED": cardsv1alpha1.CardFrozen, "FROZEN": cardsv1alpha1.CardFrozen, "FREEZE": cardsv1alpha1.CardFrozen,
	"SUSPENDED": cardsv1alpha1.CardFrozen, "BLOCKED": cardsv1alpha1.CardLocked,
	"CLOSED": cardsv1alpha1.CardClosed, "CANCELLED": cardsv1alpha1.CardClosed, "CANCELED": cardsv1alpha1.CardClosed,
	"TERMINATED": cardsv1alpha1.CardClosed, "DELETED": cardsv1alpha1.CardClosed,
	"TBA": cardsv1alpha1.CardPendingActivation, "INACTIVE": cardsv1alpha1.CardPendingActivation,
}

// statusChange: status is the outcome of the operation, card_status the card's new status. A value of either
// that no list has makes the phase Unknown, with that value verbatim.
func statusChange(d map[string]any, ev *event.Event) error {
	st, o, err := statusOf(CardStatusChange, d)
	if err != nil {
		return err
	}
	cs := pan.Clean(adapter.Str(d, "card_status"), 64)
	phase, ok := cardStatuses[strings.ToUpper(cs)]
	if !ok {
		phase = cardsv1alpha1.CardUnknown
	}
	switch o {
	case succeeded:
		ev.Card = &event.Card{Phase: phase, ProviderStatus: cs}
	case failed:
		// The card keeps its status; only the failed attempt is recorded.
		ev.Card = &event.Card{Reason: pan.Clean(fmt.Sprintf("status change to %s %s", cs, strings.ToLower(st)), 512)}
	case pending:
		ev.Card = &event.Card{}
	default:
		ev.Card = &event.Card{Phase: cardsv1alpha1.CardUnknown, ProviderStatus: st,
			Reason: pan.Clean(fmt.Sprintf("status change to %s: %s", cs, st), 512)}
	}
	return nil
}

func recharge(d map[string]any) (*event.Transaction, error) {
	t, err := txnBase(CardRechargeResult, "transaction_id", d)
	if err != nil {
		return nil, err
	}
	t.Type, t.Direction = cardsv1alpha1.TransactionTopUp, cardsv1alpha1.Credit
	if t.Amount, err = amount(CardRechargeResult, d, "receive_amount", "currency", true); err != nil {
		return nil, err
	}
	t.Amount = money.Abs(t.Amount)
	return t, nil
}

// closeCard: the card is closed and its remaining balance (refund_amount) goes back to the merchant account.
// The refund is a fact about the card, not spending: it is kept in Card.Amounts, not as a debit that the
// totals would count. The seed sends no currency with it; without one the exact amount is kept verbatim in
// Card.References (a currency is never guessed).
func closeCard(d map[string]any, ev *event.Event) error {
	st, o, err := statusOf(CardCloseResult, d)
	if err != nil {
		return err
	}
	c := &event.Card{ProviderStatus: pan.Clean("close:"+st, 64), Reason: pan.Clean(adapter.Str(d, "description"), 512)}
	switch o {
	case succeeded:
		c.Phase = cardsv1alpha1.CardClosed
	case failed:
		if c.Reason == "" {
			c.Reason = pan.Clean(adapter.First(d, "error_reason", "message"), 512)
		}
		if c.Reason == "" {
			c.Reason = "closing failed"
		}
	case unknownOutcome:
		c.Phase = cardsv1alpha1.CardUnknown
	}
	c = cardRefs(c, d, "transaction_id")
	if !present(d, "refund_amount") {
		ev.Card = c
		return nil
	}
	if adapter.Str(d, "currency") != "" {
		refund, err := amount(CardCloseResult, d, "refund_amount", "currency", true)
		if err != nil {
			return err
		}
		c.Amounts = map[string]cardsv1alpha1.Money{"refund_amount": *refund}
	} else {
		if _, err := money.Parse(d["refund_amount"]); err != nil {
			return adapter.Malformed("%s: refund_amount: %v", CardCloseResult, err)
		}
		c = cardRefs(c, d, "refund_amount")
	}
	ev.Card = c
	return nil
}

var txnTypes = map[string]cardsv1alpha1.TransactionType{
	"AUTHORIZATION": cardsv1alpha1.TransactionAuthorization, "AUTHORISATION": cardsv1alpha1.TransactionAuthorization,
	"AUTH": cardsv1alpha1.TransactionAuthorization, "PRE_AUTH": cardsv1alpha1.TransactionAuthorization,
	"PREAUTH": cardsv1alpha1.TransactionAuthorization, "VERIFICATION": cardsv1alpha1.TransactionAuthorization,
	"PURCHASE": cardsv1alpha1.TransactionPurchase, "CONSUME": cardsv1alpha1.TransactionPurchase,
	"PAYMENT": cardsv1alpha1.TransactionPurchase, "SALE": cardsv1alpha1.TransactionPurchase,
	"CLEARING": cardsv1alpha1.TransactionClearing, "SETTLEMENT": cardsv1alpha1.TransactionClearing,
	"CAPTURE": cardsv1alpha1.TransactionClearing, "REFUND": cardsv1alpha1.TransactionRefund,
	"RETURN": cardsv1alpha1.TransactionRefund, "REVERSAL": cardsv1alpha1.TransactionReversal,
	"REVERSE": cardsv1alpha1.TransactionReversal, "VOID": cardsv1alpha1.TransactionReversal,
	"RECHARGE": cardsv1alpha1.TransactionTopUp, "TOPUP": cardsv1alpha1.TransactionTopUp,
	"TOP_UP": cardsv1alpha1.TransactionTopUp, "DEPOSIT": cardsv1alpha1.TransactionTopUp,
	"FEE": cardsv1alpha1.TransactionFee, "WITHDRAWAL": cardsv1alpha1.TransactionWithdrawal,
	"ATM": cardsv1alpha1.TransactionWithdrawal, "CASH_WITHDRAWAL": cardsv1alpha1.TransactionWithdrawal,
	"CORRECTION": cardsv1alpha1.TransactionCorrection,
}

var credits = map[cardsv1alpha1.TransactionType]bool{cardsv1alpha1.TransactionRefund: true,
	cardsv1alpha1.TransactionReversal: true, cardsv1alpha1.TransactionTopUp: true}

var txnPhases = map[string]cardsv1alpha1.TransactionPhase{
	"SUCCESS": cardsv1alpha1.TransactionCompleted, "SUCCEEDED": cardsv1alpha1.TransactionCompleted,
	"SUCCESSFUL": cardsv1alpha1.TransactionCompleted, "COMPLETED": cardsv1alpha1.TransactionCompleted,
	"COMPLETE": cardsv1alpha1.TransactionCompleted, "APPROVED": cardsv1alpha1.TransactionCompleted,
	"ACCEPTED": cardsv1alpha1.TransactionCompleted, "SETTLED": cardsv1alpha1.TransactionCompleted,
	"POSTED": cardsv1alpha1.TransactionCompleted, "PENDING": cardsv1alpha1.TransactionPending,
	"PROCESSING": cardsv1alpha1.TransactionPending, "IN_PROGRESS": cardsv1alpha1.TransactionPending,
	"CREATED": cardsv1alpha1.TransactionPending,
	"FAILED":  cardsv1alpha1.TransactionFailed, "FAIL": cardsv1alpha1.TransactionFailed,
	"FAILURE": cardsv1alpha1.TransactionFailed, "ERROR": cardsv1alpha1.TransactionFailed,
	"DECLINED": cardsv1alpha1.TransactionDeclined, "REJECTED": cardsv1alpha1.TransactionDeclined,
	"DENIED": cardsv1alpha1.TransactionDeclined, "EXPIRED": cardsv1alpha1.TransactionExpired,
	"REVERSED": cardsv1alpha1.TransactionReversed, "REFUNDED": cardsv1alpha1.TransactionRefunded,
	"CANCELLED": cardsv1alpha1.TransactionCanceled, "CANCELED": cardsv1alpha1.TransactionCanceled,
	"VOIDED": cardsv1alpha1.TransactionCanceled,
}

// txnBase reads the ID, status, description and time every transaction-like event has. A status no list has
// is the Unknown phase, verbatim.
func txnBase(kind, idField string, d map[string]any) (*event.Transaction, error) {
	t := &event.Transaction{ID: adapter.Str(d, idField), ProviderStatus: pan.Clean(adapter.Str(d, "status"), 64),
		Description: pan.Clean(adapter.Str(d, "description"), 512), FailureReason: pan.Clean(adapter.Str(d, "failure_reason"), 512)}
	if t.ID == "" {
		return nil, adapter.Malformed("%s: decrypted payload has no %s", kind, idField)
	}
	if len(t.ID) > 128 {
		return nil, adapter.Malformed("%s: %s is longer than 128 characters", kind, idField)
	}
	if t.ProviderStatus == "" {
		return nil, adapter.Malformed("%s: decrypted payload has no status", kind)
	}
	var ok bool
	if t.Phase, ok = txnPhases[strings.ToUpper(t.ProviderStatus)]; !ok {
		t.Phase = cardsv1alpha1.TransactionUnknown
	}
	var err error
	if t.OccurredAt, err = occurTime(kind, d); err != nil {
		return nil, err
	}
	return t, nil
}

// txnRef adds a provider value to the transaction's references, verbatim.
func txnRef(t *event.Transaction, key, value string) {
	if value = pan.Clean(value, 256); value == "" {
		return
	}
	if t.References == nil {
		t.References = map[string]string{}
	}
	t.References[key] = value
}

func transaction(d map[string]any) (*event.Transaction, error) {
	t, err := txnBase(TransactionCreated, "transaction_id", d)
	if err != nil {
		return nil, err
	}
	raw := adapter.Str(d, "type")
	var ok bool
	if t.Type, ok = txnTypes[strings.ToUpper(raw)]; !ok {
		t.Type = cardsv1alpha1.TransactionOther
		txnRef(t, "type", raw)
		if t.Description == "" {
			t.Description = pan.Clean(raw, 512)
		}
	}
	switch {
	case t.Type == cardsv1alpha1.TransactionAuthorization && t.Phase == cardsv1alpha1.TransactionCompleted:
		// An approved authorization is a hold, never spend: only the purchase or clearing that follows (under
		// its own transaction_id) is a Completed debit, so the totals count the money once.
		t.Phase = cardsv1alpha1.TransactionPending
	case t.Phase == cardsv1alpha1.TransactionFailed &&
		(t.Type == cardsv1alpha1.TransactionAuthorization || t.Type == cardsv1alpha1.TransactionPurchase):
		// A failed authorization or purchase is the issuer declining the card.
		t.Phase = cardsv1alpha1.TransactionDeclined
	}
	if err := txnAmounts(t, d); err != nil {
		return nil, err
	}
	if m := adapter.Obj(d, "merchant"); m != nil {
		t.Merchant = merchant(adapter.Str(m, "name"), adapter.Str(m, "country"), adapter.Str(m, "mcc"))
		txnRef(t, "merchant.description", adapter.Str(m, "description"))
		if t.Description == "" {
			t.Description = pan.Clean(adapter.Str(m, "description"), 512)
		}
	}
	return t, nil
}

// txnAmounts: amount is the transaction amount (else the billed one), billingAmount the amount in the card's
// currency whenever sent (the totals sum it), fee billing_transaction_fee as its only component.
func txnAmounts(t *event.Transaction, d map[string]any) error {
	const kind = TransactionCreated
	billed, err := amount(kind, d, "billing_amount", "billing_currency", false)
	if err != nil {
		return err
	}
	orig, err := amount(kind, d, "transaction_amount", "transaction_currency", false)
	if err != nil {
		return err
	}
	if billed == nil && orig == nil {
		return adapter.Malformed("%s: decrypted payload has no billing_amount or transaction_amount", kind)
	}
	negative := (billed != nil && strings.HasPrefix(string(billed.Value), "-")) ||
		(orig != nil && strings.HasPrefix(string(orig.Value), "-"))
	switch {
	case credits[t.Type]:
		t.Direction = cardsv1alpha1.Credit
	case t.Type != cardsv1alpha1.TransactionOther || negative:
		t.Direction = cardsv1alpha1.Debit
	}
	t.Amount, t.BillingAmount = money.Abs(orig), money.Abs(billed)
	if orig == nil {
		t.Amount = t.BillingAmount
	}
	if present(d, "billing_transaction_fee") {
		fee, err := amount(kind, d, "billing_transaction_fee", "billing_currency", true)
		if err != nil {
			return err
		}
		t.Fee = money.Abs(fee)
		t.Fees = []cardsv1alpha1.FeeComponent{{Name: "billing_transaction_fee", Amount: *t.Fee}}
	}
	return nil
}

func correction(d map[string]any) (*event.Transaction, error) {
	const kind = CardCorrection
	t, err := txnBase(kind, "correction_id", d)
	if err != nil {
		return nil, err
	}
	t.Type = cardsv1alpha1.TransactionCorrection
	t.OriginalTransactionID = pan.Clean(adapter.Str(d, "original_transaction_id"), 128)
	amt, err := amount(kind, d, "amount", "currency", true)
	if err != nil {
		return nil, err
	}
	ctype := strings.ToUpper(adapter.Str(d, "type"))
	switch {
	case strings.Contains(ctype, "CREDIT") || strings.Contains(ctype, "REFUND") || strings.Contains(ctype, "REVERS"):
		t.Direction = cardsv1alpha1.Credit
	case strings.Contains(ctype, "DEBIT") || strings.Contains(ctype, "CHARGE"):
		t.Direction = cardsv1alpha1.Debit
	case strings.HasPrefix(string(amt.Value), "-"):
		t.Direction = cardsv1alpha1.Debit
	}
	t.Amount = money.Abs(amt)
	code, msg := adapter.Str(d, "response_code"), adapter.Str(d, "response_message")
	for k, v := range map[string]string{"type": adapter.Str(d, "type"), "response_code": code, "response_message": msg} {
		txnRef(t, k, v)
	}
	resp := strings.TrimSpace(code + " " + msg)
	if t.Description == "" {
		t.Description = pan.Clean(strings.TrimSpace(ctype+" "+msg), 512)
	}
	if t.Phase != cardsv1alpha1.TransactionCompleted && t.Phase != cardsv1alpha1.TransactionPending && resp != "" {
		t.FailureReason = pan.Clean(resp, 512)
	}
	return t, nil
}

func threeDS(d map[string]any) (*event.Challenge, error) {
	c := &event.Challenge{ID: adapter.Str(d, "securement_id"), Purpose: "3ds", Method: strings.ToUpper(adapter.Str(d, "method")),
		Status: challengeStatus(d), Code: adapter.Str(d, "value")}
	if present(d, "amount") || present(d, "currency") {
		amt, err := amount(Card3DS, d, "amount", "currency", true)
		if err != nil {
			return nil, err
		}
		c.Amount = money.Abs(amt)
	}
	c.Merchant = merchant(adapter.Str(d, "merchant_name"), adapter.Str(d, "merchant_country"), adapter.Str(d, "merchant_mcc"))
	return c, nil
}

func verification(d map[string]any) (*event.Challenge, error) {
	c := &event.Challenge{ID: adapter.Str(d, "verification_id"), Purpose: "verification",
		Method: strings.ToUpper(adapter.Str(d, "method")), Status: challengeStatus(d), Code: adapter.Str(d, "otp_value")}
	if c.Method == "" {
		c.Method = "OTP" // the only method BananaTech supports
	}
	return c, nil
}

// challengeStatus joins the process status (PENDING/SUCCESS/FAILED) and the confirmation
// (PENDING/ACCEPTED/DECLINED), both verbatim: e.g. "SUCCESS/ACCEPTED".
func challengeStatus(d map[string]any) string {
	st, confirm := adapter.Str(d, "status"), adapter.Str(d, "confirm")
	if confirm == "" {
		return pan.Clean(st, 64)
	}
	return pan.Clean(st+"/"+confirm, 64)
}

// amount reads a major-unit amount and its currency; absent amounts are nil unless required.
func amount(kind string, d map[string]any, amountField, currencyField string, required bool) (*cardsv1alpha1.Money, error) {
	if !present(d, amountField) {
		if required {
			return nil, adapter.Malformed("%s: decrypted payload has no %s", kind, amountField)
		}
		return nil, nil
	}
	cur := adapter.Str(d, currencyField)
	if cur == "" {
		return nil, adapter.Malformed("%s: %s has no %s", kind, amountField, currencyField)
	}
	m, err := money.Major(d[amountField], cur)
	if err != nil {
		return nil, adapter.Malformed("%s: %s: %v", kind, amountField, err)
	}
	return m, nil
}

var (
	countryCode = regexp.MustCompile(`^[A-Z]{2,3}$`)
	mccCode     = regexp.MustCompile(`^[0-9]{1,4}$`)
)

// merchant keeps only values the API accepts: an MCC sent as a number loses its leading zeros, which are restored.
func merchant(name, country, mcc string) *cardsv1alpha1.Merchant {
	m := &cardsv1alpha1.Merchant{Name: pan.Clean(name, 256)}
	if c := strings.ToUpper(country); countryCode.MatchString(c) {
		m.Country = c
	}
	if mccCode.MatchString(mcc) {
		m.MCC = strings.Repeat("0", 4-len(mcc)) + mcc
	}
	if *m == (cardsv1alpha1.Merchant{}) {
		return nil
	}
	return m
}
