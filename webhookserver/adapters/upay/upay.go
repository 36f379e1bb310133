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
	m, known := mappers[name]
	if !known {
		res.Unknown = true
		return res, nil
	}
	if detail == nil {
		return nil, adapter.Malformed("%s: envelope has no detail object", name)
	}
	if err := m(&input{name: name, env: env, d: detail, ev: &ev, res: res}); err != nil {
		return nil, named(name, err)
	}
	if err := identified(name, &ev); err != nil {
		return nil, err
	}
	// Every UPay event that carries the card number reduces it here, whatever else it maps.
	if n := pan.Reduce(adapter.Str(detail, "cardNumber")); n != nil {
		card(&ev).Number = n
	}
	res.Events = []event.Event{ev}
	return res, nil
}

// identified requires the ID the event is about: the holder for KYC, which is holder-level, else the card.
func identified(name string, ev *event.Event) error {
	if name == "KS_KYC" {
		if ev.HolderID == "" {
			return adapter.Malformed("KS_KYC: detail has no customerNo")
		}
		return nil
	}
	if ev.CardID == "" {
		return adapter.Malformed("%s: detail has no cardId", name)
	}
	return nil
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

// input is one callback being mapped: the envelope, its detail and the event and result being filled.
type input struct {
	name   string
	env, d map[string]any
	ev     *event.Event
	res    *adapter.Result
}

// mappers map the UPay events; an event not listed is acknowledged and counted as unknown.
var mappers = map[string]func(*input) error{
	"CC_CONSUME": mapTransaction, "CC_REFUND": mapTransaction, "CC_WITHDRAW_CASH": mapTransaction,
	"CC_REDEEM": mapTransaction, "CC_RECHARGE": mapTransaction,
	"CC_AUTHORIZATION":  mapAuthorization,
	"3DS_OTP":           map3DSOTP,
	"3DS_CONFIRM":       map3DSConfirm,
	"NE_VERIFY":         mapVerification,
	"KS_KYC":            mapKYC,
	"CSC_STATUS_CHANGE": mapStatusChange,
	"CS_APPROVED":       mapApproved,
	"CE_EVENT":          mapCardEvent,
	"CA_APPLY":          mapApplication,
	"CR_RECHARGE":       mapRechargeApplication,
	"MF_MATERIAL_FLOW":  mapMaterialFlow,
}

// card is the event's card facts, created on first use.
func card(ev *event.Event) *event.Card {
	if ev.Card == nil {
		ev.Card = &event.Card{}
	}
	return ev.Card
}

// references keeps the non-empty values of d's fields verbatim, keyed by prefix + the field name; nil when none.
func references(into map[string]string, d map[string]any, prefix string, fields ...string) map[string]string {
	for _, f := range fields {
		if v := adapter.Str(d, f); v != "" {
			if into == nil {
				into = map[string]string{}
			}
			into[prefix+f] = v
		}
	}
	return into
}

func mapTransaction(in *input) error {
	t, err := transaction(in.name, in.d)
	if err != nil {
		return err
	}
	// trace links the pushes of one transaction; orderNo and thirdOrderNo (the merchant's order of a recharge)
	// are what reconciliation matches by.
	t.References = references(nil, in.env, "", "trace")
	t.References = references(t.References, in.d, "", "orderNo", "thirdOrderNo")
	in.ev.Transaction = t
	return nil
}

func mapAuthorization(in *input) error {
	if err := authorization(in.d, in.ev, in.res); err != nil {
		return err
	}
	in.ev.Authorization.References = references(nil, in.env, "", "trace")
	return nil
}

func map3DSOTP(in *input) error {
	var err error
	in.ev.Challenge, err = challenge(in.d, "3ds", "OTP", adapter.Str(in.d, "3dsCode"))
	return err
}

func map3DSConfirm(in *input) error {
	method, code := "OTP", adapter.Str(in.d, "validateCode")
	if strings.EqualFold(adapter.Str(in.d, "type"), "link") {
		method, code = "URL", adapter.Str(in.d, "url")
	}
	var err error
	in.ev.Challenge, err = challenge(in.d, "3ds", method, code)
	return err
}

func mapVerification(in *input) error {
	purpose := "verification"
	if adapter.Str(in.d, "type") == "CARD_ACTIVATION" {
		purpose = "activation"
	}
	in.ev.Challenge = &event.Challenge{ID: adapter.Str(in.d, "orderNo"), Purpose: purpose, Method: "OTP",
		Status: adapter.Str(in.d, "type"), Code: adapter.Str(in.d, "code")}
	return nil
}

// mapKYC maps the holder's KYC result. A status UPay does not document is the state Unknown with the value
// verbatim: acknowledged, not refused, and never read as an approval.
func mapKYC(in *input) error {
	states := map[string]cardsv1alpha1.KYCState{"1": cardsv1alpha1.KYCApproved, "2": cardsv1alpha1.KYCRejected,
		"3": cardsv1alpha1.KYCPending, "4": cardsv1alpha1.KYCUnverified}
	raw := adapter.Str(in.d, "status")
	in.ev.KYC = &event.KYC{State: states[raw], Reason: adapter.Str(in.d, "reason")}
	if in.ev.KYC.State == "" {
		in.ev.KYC.State, in.ev.KYC.ProviderStatus = cardsv1alpha1.KYCUnknown, raw
	}
	return nil
}

func mapStatusChange(in *input) error {
	c := card(in.ev)
	st := adapter.Str(in.d, "status")
	c.ProviderStatus, c.Phase, c.Reason = st, cardPhase(st), adapter.Str(in.d, "reason")
	c.References = references(c.References, in.d, in.name+".", "orderNo")
	return nil
}

// mapApproved maps the issuance notice: the seed sends cardStatus 1 (Normal) for virtual cards only and
// 2 (Pending Activation) for physical ones, so only a virtual card starts Active.
func mapApproved(in *input) error {
	c := card(in.ev)
	c.ProviderStatus = adapter.Str(in.d, "cardStatus")
	switch c.ProviderStatus {
	case "1":
		c.Phase, c.Type = cardsv1alpha1.CardActive, cardsv1alpha1.CardVirtual
	case "2":
		c.Phase, c.Type = cardsv1alpha1.CardPendingActivation, cardsv1alpha1.CardPhysical
	default:
		c.Phase = cardsv1alpha1.CardUnknown
	}
	c.References = references(c.References, in.d, in.name+".", "orderNo")
	return nil
}

func mapCardEvent(in *input) error {
	c := card(in.ev)
	c.ProviderStatus, c.Reason = adapter.Str(in.d, "event"), adapter.Str(in.d, "reason")
	switch strings.ToLower(c.ProviderStatus) {
	case "frozen":
		c.Phase = cardsv1alpha1.CardFrozen
	case "unfrozen":
		c.Phase = cardsv1alpha1.CardActive
	default:
		c.Phase = cardsv1alpha1.CardUnknown
	}
	return nil
}

// mapApplication maps a submitted card application, paid (1) or awaiting payment (2): the card exists as
// requested. Its keys are prefixed with the event, as CR_RECHARGE sends fields of the same names.
func mapApplication(in *input) error {
	c := card(in.ev)
	c.Phase, c.ProviderStatus = cardsv1alpha1.CardRequested, "apply:"+adapter.Str(in.d, "status")
	c.References = references(c.References, in.d, in.name+".", "orderNo", "subscribeAt")
	return paymentAmount(in)
}

// mapRechargeApplication maps a recharge application awaiting payment (status 8). No money has reached the
// card yet: the recharge itself arrives as CC_RECHARGE (its thirdOrderNo names the order), so this is a card
// amount, not a transaction that would stay pending next to the real one.
func mapRechargeApplication(in *input) error {
	c := card(in.ev)
	c.References = references(c.References, in.d, in.name+".", "orderNo", "status", "subscribeAt")
	return paymentAmount(in)
}

// paymentAmount keeps the amount paid for an application as "<event>.amount". UPay sends no currency with it:
// with a currency field it is a card amount, without one it is kept verbatim among the references rather than
// given a guessed currency.
func paymentAmount(in *input) error {
	key := in.name + ".amount"
	if in.d["amount"] == nil {
		return nil
	}
	if _, err := money.Parse(in.d["amount"]); err != nil {
		return adapter.Malformed("amount: %v", err)
	}
	c := card(in.ev)
	cur := adapter.Str(in.d, "currency")
	if cur == "" {
		c.References = references(c.References, in.d, in.name+".", "amount")
		return nil
	}
	m, err := money.Major(in.d["amount"], cur)
	if err != nil {
		return adapter.Malformed("amount: %v", err)
	}
	c.Amounts = map[string]cardsv1alpha1.Money{key: *m}
	return nil
}

// mapMaterialFlow maps the shipping notice. recipientAddress and logisticsImage (a photo of the parcel) are
// personal data the card does not need; dispatchTime is kept verbatim, its format and zone being undocumented.
func mapMaterialFlow(in *input) error {
	in.ev.Logistics = &event.Logistics{State: cardsv1alpha1.LogisticsShipped,
		Carrier: adapter.Str(in.d, "logisticsCompanyName"), TrackingNumber: adapter.Str(in.d, "logisticsOrderNo")}
	c := card(in.ev)
	c.References = references(c.References, in.d, "", "dispatchTime")
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

// txnPhases maps the documented statuses. 5 "Unposted" is the outcome opposite to 4 "Posted" (3 "Processing" is
// the open state): the transaction ended without being booked, as a lapsed authorization does, so Expired. A
// later Posted push still wins by its newer time. Other values are Unknown.
var txnPhases = map[string]cardsv1alpha1.TransactionPhase{
	"1": cardsv1alpha1.TransactionCompleted, "2": cardsv1alpha1.TransactionFailed, "3": cardsv1alpha1.TransactionPending,
	"4": cardsv1alpha1.TransactionCompleted, "5": cardsv1alpha1.TransactionExpired, "7": cardsv1alpha1.TransactionCanceled,
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
		t.Phase = cardsv1alpha1.TransactionUnknown
	}
	switch adapter.Str(d, "direction") {
	case "1":
		t.Direction = cardsv1alpha1.Credit
	case "2":
		t.Direction = cardsv1alpha1.Debit
	}
	if err := amounts(name, d, t); err != nil {
		return nil, err
	}
	if n := adapter.Str(d, "merchantName"); n != "" || adapter.Str(d, "merchantMcc") != "" {
		t.Merchant = &cardsv1alpha1.Merchant{Name: n, MCC: adapter.Str(d, "merchantMcc"), Country: adapter.Str(d, "merchantCountry")}
	}
	var err error
	if t.OccurredAt, err = adapter.OptionalTime(d, "transactionAt", time.UTC); err != nil {
		return nil, err
	}
	t.Description = adapter.Str(d, "merchantCategory")
	return t, nil
}

// amounts reads amount/currency, the original amount when the merchant's currency differs, and the fee. UPay
// signs amounts by direction; the direction says it, so the values are kept unsigned.
func amounts(name string, d map[string]any, t *event.Transaction) error {
	cur := adapter.Str(d, "currency")
	billed, err := money.Major(d["amount"], cur)
	if err != nil {
		return adapter.Malformed("%s: amount: %v", name, err)
	}
	billed = money.Abs(billed)
	t.Amount = billed
	if oc := adapter.Str(d, "originalCurrency"); oc != "" && d["originalAmount"] != nil {
		orig, err := money.Major(d["originalAmount"], oc)
		if err != nil {
			return adapter.Malformed("%s: originalAmount: %v", name, err)
		}
		t.Amount, t.BillingAmount = money.Abs(orig), billed
	}
	if d["fee"] != nil && adapter.Str(d, "fee") != "" {
		fee, err := money.Major(d["fee"], cur)
		if err != nil {
			return adapter.Malformed("%s: fee: %v", name, err)
		}
		t.Fee = money.Abs(fee)
	}
	return nil
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
	// A request to decide, never spend: the ingester opens a Pending Authorization that only a later
	// CC_CONSUME with status 1 or 4 completes.
	ev.Authorization = a
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

// cardPhase maps UPay card status codes to phases. Transitional states (8 locking, 9 unlocking,
// 10 deactivating, 15 replacing) keep the current phase and only update providerStatus; values the seed does
// not list are Unknown.
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
	case "8", "9", "10", "15":
		return ""
	}
	return cardsv1alpha1.CardUnknown
}
