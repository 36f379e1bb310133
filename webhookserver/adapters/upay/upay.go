// Package upay decodes UPay callbacks: a JSON envelope {event, trace, orderNo, timestamp, detail} signed with
// X-UPA-SIGN = base64(HMAC-SHA256(signingKey, event + "|" + X-UPA-TIMESTAMP + "|" + body)).
//
// UPay may encrypt bodies with a key set in its back office (scheme undocumented, probably JWE); such bodies
// are refused as Malformed with a message saying so, so the operator switches encryption off at UPay.
package upay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
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

// Headers UPay sends.
const (
	HeaderSign      = "X-UPA-SIGN"
	HeaderTimestamp = "X-UPA-TIMESTAMP"
	HeaderRequestID = "X-UPA-REQUESTID"
)

// Adapter is the UPay adapter.
type Adapter struct{}

var ack = adapter.Text("SUCCESS")

// Decode verifies the signature and timestamp, then maps the event.
func (Adapter) Decode(req *adapter.Request) (*adapter.Result, error) {
	ts := req.Header.Get(HeaderTimestamp)
	sig := req.Header.Get(HeaderSign)
	if ts == "" || sig == "" {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "missing %s or %s header", HeaderSign, HeaderTimestamp)
	}
	body := strings.TrimSpace(string(req.Body))
	if !strings.HasPrefix(body, "{") {
		return nil, adapter.Malformed("body is not a JSON object; encrypted UPay bodies are not supported: turn body encryption off in the UPay back office")
	}
	env, err := adapter.Object(req.Body)
	if err != nil {
		return nil, err
	}
	name := adapter.Str(env, "event")
	if name == "" {
		return nil, adapter.Malformed("envelope has no event")
	}
	if !verify(req.Endpoint, name, ts, req.Body, sig) {
		return nil, adapter.Unauthorized(cardsv1alpha1.ReasonInvalidSignature, "%s does not match the body", HeaderSign)
	}
	tsv, err := adapter.Time(ts, time.UTC)
	if err != nil {
		return nil, adapter.Malformed("%s: %v", HeaderTimestamp, err)
	}
	if err := adapter.CheckTimestamp(tsv, req.Received, req.Endpoint.TimestampTolerance); err != nil {
		return nil, err
	}

	res := &adapter.Result{EventType: name, Ack: ack, DeliveryID: req.Header.Get(HeaderRequestID)}
	// A nil detail reads as empty, so an unknown event without one is still acknowledged.
	detail := adapter.Obj(env, "detail")
	ev := event.Event{Type: name, ID: adapter.Str(env, "orderNo"), CardID: adapter.Str(detail, "cardId"),
		HolderID: adapter.Str(detail, "customerNo")}
	if ev.OccurredAt, err = adapter.OptionalTime(env, "timestamp", time.UTC); err != nil {
		return nil, named(name, err)
	}
	if err := mapEvent(name, detail, &ev, res); err != nil || (!res.Unknown && detail == nil) {
		if detail == nil {
			return nil, adapter.Malformed("%s: envelope has no detail object", name)
		}
		return nil, named(name, err)
	}
	if !res.Unknown {
		if ev.CardID == "" && ev.KYC == nil {
			return nil, adapter.Malformed("%s: detail has no cardId", name)
		}
		res.Events = []event.Event{ev}
	}
	return res, nil
}

// named prefixes the event name to rejections of the shared parsers, which do not know it.
func named(name string, err error) error {
	if r, ok := adapter.AsRejection(err); ok && !strings.HasPrefix(r.Message, name+":") {
		return &adapter.Rejection{Status: r.Status, Reason: r.Reason, Message: name + ": " + r.Message}
	}
	return err
}

func verify(ep *endpointconfig.Resolved, name, ts string, body []byte, sig string) bool {
	mac := hmac.New(sha256.New, ep.SigningKey)
	mac.Write([]byte(name + "|" + ts + "|"))
	mac.Write(body)
	want := mac.Sum(nil)
	var got []byte
	var err error
	if o := ep.Endpoint.Spec.UPay; o != nil && o.SignatureEncoding == "Hex" {
		got, err = hex.DecodeString(strings.TrimSpace(sig))
	} else {
		got, err = base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	}
	return err == nil && adapter.Equal(got, want)
}

// Encode signs a plaintext payload the way UPay does, for the simulator and tests.
func Encode(ep *endpointconfig.Resolved, body []byte, now time.Time) (http.Header, []byte, error) {
	env, err := adapter.Object(body)
	if err != nil {
		return nil, nil, err
	}
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	mac := hmac.New(sha256.New, ep.SigningKey)
	mac.Write([]byte(adapter.Str(env, "event") + "|" + ts + "|"))
	mac.Write(body)
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if o := ep.Endpoint.Spec.UPay; o != nil && o.SignatureEncoding == "Hex" {
		sig = hex.EncodeToString(mac.Sum(nil))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSign, sig)
	h.Set(HeaderRequestID, adapter.Str(env, "orderNo")+"-"+ts)
	return h, body, nil
}

func mapEvent(name string, d map[string]any, ev *event.Event, res *adapter.Result) error {
	var err error
	switch name {
	case "CC_CONSUME", "CC_REFUND", "CC_WITHDRAW_CASH", "CC_REDEEM", "CC_RECHARGE":
		ev.Transaction, err = transaction(name, d)
	case "CC_AUTHORIZATION":
		err = authorization(d, ev, res)
	case "3DS_OTP":
		ev.Challenge, err = challenge(d, "3ds", "OTP", adapter.Str(d, "3dsCode"))
	case "3DS_CONFIRM":
		method, code := "OTP", adapter.Str(d, "validateCode")
		if strings.EqualFold(adapter.Str(d, "type"), "link") {
			method, code = "URL", adapter.Str(d, "url")
		}
		ev.Challenge, err = challenge(d, "3ds", method, code)
	case "NE_VERIFY":
		purpose := "verification"
		if adapter.Str(d, "type") == "CARD_ACTIVATION" {
			purpose = "activation"
		}
		ev.Challenge = &event.Challenge{ID: adapter.Str(d, "orderNo"), Purpose: purpose, Method: "OTP",
			Status: adapter.Str(d, "type"), Code: adapter.Str(d, "code")}
		ev.Card = numberOnly(d)
	case "KS_KYC":
		ev.KYC, err = kyc(d)
	case "CSC_STATUS_CHANGE":
		ev.Card = numberOnly(d)
		if ev.Card == nil {
			ev.Card = &event.Card{}
		}
		st := adapter.Str(d, "status")
		ev.Card.ProviderStatus, ev.Card.Phase, ev.Card.Reason = st, cardPhase(st), adapter.Str(d, "reason")
		if ev.Card.Phase == "" && !knownCardStatus(st) {
			return adapter.Malformed("CSC_STATUS_CHANGE: unknown card status %q", st)
		}
	case "CS_APPROVED":
		ev.Card = numberOnly(d)
		if ev.Card == nil {
			ev.Card = &event.Card{}
		}
		switch st := adapter.Str(d, "cardStatus"); st {
		case "1":
			ev.Card.Phase, ev.Card.Type = cardsv1alpha1.CardActive, cardsv1alpha1.CardVirtual
		case "2":
			ev.Card.Phase, ev.Card.Type = cardsv1alpha1.CardPendingActivation, cardsv1alpha1.CardPhysical
		default:
			return adapter.Malformed("CS_APPROVED: unknown cardStatus %q", st)
		}
		ev.Card.ProviderStatus = adapter.Str(d, "cardStatus")
	case "CE_EVENT":
		ev.Card = &event.Card{ProviderStatus: adapter.Str(d, "event"), Reason: adapter.Str(d, "reason")}
		switch strings.ToLower(ev.Card.ProviderStatus) {
		case "frozen":
			ev.Card.Phase = cardsv1alpha1.CardFrozen
		case "unfrozen":
			ev.Card.Phase = cardsv1alpha1.CardActive
		default:
			return adapter.Malformed("CE_EVENT: unknown event %q (want Frozen or Unfrozen)", ev.Card.ProviderStatus)
		}
	case "CA_APPLY":
		// Card application submitted and paid (1) or awaiting payment (2): the card exists as requested.
		ev.Card = &event.Card{Phase: cardsv1alpha1.CardRequested, ProviderStatus: "apply:" + adapter.Str(d, "status")}
	case "CR_RECHARGE":
		// A recharge application awaiting payment; the recharge itself arrives as CC_RECHARGE.
		// It carries no currency, so only the card's lastEvent records it.
		ev.Card = numberOnly(d)
	case "MF_MATERIAL_FLOW":
		// recipientAddress and logisticsImage are personal data the card object does not need.
		ev.Logistics = &event.Logistics{State: cardsv1alpha1.LogisticsShipped,
			Carrier: adapter.Str(d, "logisticsCompanyName"), TrackingNumber: adapter.Str(d, "logisticsOrderNo")}
	default:
		res.Unknown = true
	}
	return err
}

func numberOnly(d map[string]any) *event.Card {
	if n := pan.Reduce(adapter.Str(d, "cardNumber")); n != nil {
		return &event.Card{Number: n}
	}
	return nil
}

var txnTypes = map[string]cardsv1alpha1.TransactionType{
	"1": cardsv1alpha1.TransactionTopUp, "2": cardsv1alpha1.TransactionPurchase, "3": cardsv1alpha1.TransactionRefund,
	"4": cardsv1alpha1.TransactionWithdrawal, "5": cardsv1alpha1.TransactionRedemption, "6": cardsv1alpha1.TransactionFee,
}

var eventTxnTypes = map[string]cardsv1alpha1.TransactionType{
	"CC_CONSUME": cardsv1alpha1.TransactionPurchase, "CC_REFUND": cardsv1alpha1.TransactionRefund,
	"CC_WITHDRAW_CASH": cardsv1alpha1.TransactionWithdrawal, "CC_REDEEM": cardsv1alpha1.TransactionRedemption,
	"CC_RECHARGE": cardsv1alpha1.TransactionTopUp,
}

var txnPhases = map[string]cardsv1alpha1.TransactionPhase{
	"1": cardsv1alpha1.TransactionCompleted, "2": cardsv1alpha1.TransactionFailed, "3": cardsv1alpha1.TransactionPending,
	"4": cardsv1alpha1.TransactionCompleted, "5": cardsv1alpha1.TransactionPending, "7": cardsv1alpha1.TransactionCanceled,
}

func transaction(name string, d map[string]any) (*event.Transaction, error) {
	t := &event.Transaction{ID: adapter.Str(d, "transactionId"), ProviderStatus: adapter.Str(d, "status"),
		FailureReason: adapter.Str(d, "reason"), Channel: adapter.Str(d, "transactionChannel")}
	if t.ID == "" {
		return nil, adapter.Malformed("%s: detail has no transactionId", name)
	}
	t.Type = txnTypes[adapter.Str(d, "type")]
	if t.Type == "" {
		t.Type = eventTxnTypes[name]
	}
	var ok bool
	if t.Phase, ok = txnPhases[t.ProviderStatus]; !ok {
		return nil, adapter.Malformed("%s: unknown transaction status %q", name, t.ProviderStatus)
	}
	switch adapter.Str(d, "direction") {
	case "1":
		t.Direction = cardsv1alpha1.Credit
	case "2":
		t.Direction = cardsv1alpha1.Debit
	}
	cur := adapter.Str(d, "currency")
	billed, err := money.Major(d["amount"], cur)
	if err != nil {
		return nil, adapter.Malformed("%s: amount: %v", name, err)
	}
	billed = money.Abs(billed)
	t.Amount = billed
	if oc := adapter.Str(d, "originalCurrency"); oc != "" && d["originalAmount"] != nil {
		orig, err := money.Major(d["originalAmount"], oc)
		if err != nil {
			return nil, adapter.Malformed("%s: originalAmount: %v", name, err)
		}
		t.Amount, t.BillingAmount = money.Abs(orig), billed
	}
	if d["fee"] != nil && adapter.Str(d, "fee") != "" {
		fee, err := money.Major(d["fee"], cur)
		if err != nil {
			return nil, adapter.Malformed("%s: fee: %v", name, err)
		}
		t.Fee = money.Abs(fee)
	}
	if n := adapter.Str(d, "merchantName"); n != "" || adapter.Str(d, "merchantMcc") != "" {
		t.Merchant = &cardsv1alpha1.Merchant{Name: n, MCC: adapter.Str(d, "merchantMcc"), Country: adapter.Str(d, "merchantCountry")}
	}
	if t.OccurredAt, err = adapter.OptionalTime(d, "transactionAt", time.UTC); err != nil {
		return nil, err
	}
	t.Description = adapter.Str(d, "merchantCategory")
	return t, nil
}

func authorization(d map[string]any, ev *event.Event, res *adapter.Result) error {
	amt, err := money.Major(d["amount"], adapter.Str(d, "currency"))
	if err != nil {
		return adapter.Malformed("CC_AUTHORIZATION: amount: %v", err)
	}
	a := &event.AuthorizationRequest{TransactionID: adapter.Str(d, "transactionId"), AuthorizationID: adapter.Str(d, "authorizationId"),
		Amount: *money.Abs(amt), Channel: adapter.Str(d, "transactionChannel")}
	if a.TransactionID == "" {
		return adapter.Malformed("CC_AUTHORIZATION: detail has no transactionId")
	}
	if mcc := adapter.Str(d, "merchantMcc"); mcc != "" {
		a.Merchant = &cardsv1alpha1.Merchant{MCC: mcc, Name: adapter.Str(d, "merchantName"), Country: adapter.Str(d, "merchantCountry")}
	}
	ev.Authorization = a
	ev.Card = numberOnly(d)
	res.Authorize = func(approved bool) adapter.Answer {
		if approved {
			return adapter.Text("approve")
		}
		return adapter.Text("decline")
	}
	return nil
}

func challenge(d map[string]any, purpose, method, code string) (*event.Challenge, error) {
	c := &event.Challenge{ID: adapter.Str(d, "orderNo"), Purpose: purpose, Method: method, Code: code}
	if cur := adapter.Str(d, "transactionCurrency"); cur != "" {
		amt, err := money.Major(d["amount"], cur)
		if err != nil {
			return nil, adapter.Malformed("amount: %v", err)
		}
		c.Amount = money.Abs(amt)
	}
	if m := adapter.Str(d, "merchants"); m != "" {
		c.Merchant = &cardsv1alpha1.Merchant{Name: m}
	}
	return c, nil
}

func kyc(d map[string]any) (*event.KYC, error) {
	k := &event.KYC{Reason: adapter.Str(d, "reason")}
	switch adapter.Str(d, "status") {
	case "1":
		k.State = cardsv1alpha1.KYCApproved
	case "2":
		k.State = cardsv1alpha1.KYCRejected
	case "3":
		k.State = cardsv1alpha1.KYCPending
	case "4":
		k.State = cardsv1alpha1.KYCUnverified
	default:
		return nil, adapter.Malformed("KS_KYC: unknown status %q", adapter.Str(d, "status"))
	}
	if adapter.Str(d, "customerNo") == "" {
		return nil, adapter.Malformed("KS_KYC: detail has no customerNo")
	}
	return k, nil
}

// cardPhase maps UPay card status codes to phases; transitional states (locking, unlocking, deactivating,
// replacing) keep the current phase and only update providerStatus.
func cardPhase(code string) cardsv1alpha1.CardPhase {
	switch code {
	case "1":
		return cardsv1alpha1.CardActive
	case "2", "7":
		return cardsv1alpha1.CardPendingActivation
	case "3":
		return cardsv1alpha1.CardFrozen
	case "4":
		return cardsv1alpha1.CardLocked
	case "5", "14", "16":
		return cardsv1alpha1.CardClosed
	case "6":
		return cardsv1alpha1.CardRequested
	case "13":
		return cardsv1alpha1.CardFailed
	}
	return ""
}

func knownCardStatus(code string) bool {
	switch code {
	case "8", "9", "10", "15":
		return true
	}
	return false
}
