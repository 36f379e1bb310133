package tevau

import (
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/internal/text"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

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
	}
	if transactionShaped(d) {
		return transaction(name, d, ev)
	}
	res.Unknown = true
	return nil
}

// transactionShaped tells a transaction notification of a type Tevau does not name (8.5 announces
// "transaction" and "additional authorization" notifications without their eventType) by its shape: a card,
// an orderId and an amount or details.
func transactionShaped(d map[string]any) bool {
	return adapter.Str(d, "cardId") != "" && adapter.Str(d, "orderId") != "" &&
		(adapter.Str(d, "transAmount") != "" || adapter.Obj(d, "details") != nil)
}

// commonFacts adds what any Tevau callback may carry whatever its type: userCode names the holder; a card
// number is reduced to BIN and last four, and a balance is the card's available balance. The last two only
// on an event about a card: a holder-level event's card facts are applied to every card of the holder.
func commonFacts(d map[string]any, ev *event.Event) {
	if ev.HolderID == "" {
		ev.HolderID = adapter.Str(d, "userCode")
	}
	if ev.CardID == "" {
		return
	}
	if n := cardNumber(d); n != nil {
		withCard(ev).Number = n
	}
	ev.Balance = balance(d)
}

func requireCard(name string, ev *event.Event) error {
	if ev.CardID == "" {
		return adapter.Malformed("%s: body has no cardId", name)
	}
	return nil
}

// cardNumber reduces whatever card number a callback carries (cardPan is masked in the docs; the others are
// guarded in case Tevau ever sends a full number).
func cardNumber(d map[string]any) *cardsv1alpha1.MaskedNumber {
	for _, k := range []string{"cardPan", "cardNo", "cardNumber"} {
		if n := pan.Reduce(adapter.Str(d, k)); n != nil {
			return n
		}
	}
	return nil
}

// balanceFields are where a card balance would be: no documented Tevau callback carries one (8.3 "Changes in
// card balance" sends only rechargeAmount), so these are guarded names, in the card currency.
var balanceFields = []string{"availableBalance", "cardBalance", "balance"}

// balance is the first balance field that reads as an amount; one that does not is ignored rather than
// refusing the callback for a field Tevau does not document.
func balance(d map[string]any) *event.Balance {
	for _, k := range balanceFields {
		if adapter.Str(d, k) == "" {
			continue
		}
		if m, err := money.Major(d[k], CardCurrency); err == nil {
			return &event.Balance{Available: *m}
		}
	}
	return nil
}

func withCard(ev *event.Event) *event.Card {
	if ev.Card == nil {
		ev.Card = &event.Card{}
	}
	return ev.Card
}

func kyc(d map[string]any, ev *event.Event) error {
	ev.HolderID = adapter.Str(d, "userCode")
	if ev.HolderID == "" {
		return adapter.Malformed("Kyc: body has no userCode")
	}
	reason, raw := freeText(d, "auditRemark"), adapter.Str(d, "auditState")
	ev.KYC = &event.KYC{State: kycState(raw, reason), Reason: reason}
	if ev.KYC.State == "" {
		ev.KYC.State, ev.KYC.ProviderStatus = cardsv1alpha1.KYCUnknown, raw
	}
	return nil
}

// kycState reads auditState: "1" (passed) is documented, "0" (pending) and "2" (rejected) are assumed, and
// other values are judged by the remark. "" when neither tells: the callback is acknowledged and the holder's
// state is Unknown with the value verbatim, as a guess could undo an approval and a 400 would only make Tevau retry.
func kycState(st, remark string) cardsv1alpha1.KYCState {
	switch st {
	case "1":
		return cardsv1alpha1.KYCApproved
	case "2":
		return cardsv1alpha1.KYCRejected
	case "0":
		return cardsv1alpha1.KYCPending
	}
	r := strings.ToLower(remark)
	switch {
	case containsAny(r, "fail", "reject", "refus", "not pass", "denied", "declin"):
		return cardsv1alpha1.KYCRejected
	case containsAny(r, "review", "pending", "processing", "progress"):
		return cardsv1alpha1.KYCPending
	case containsAny(r, "passed", "approved", "success"):
		return cardsv1alpha1.KYCApproved
	}
	return ""
}

// cardType tells Tevau's cards apart by their ID: every virtual card in Tevau's docs has a CIDV… ID, and
// physical ones are taken to be CIDP…; "" for any other ID.
func cardType(id string) cardsv1alpha1.CardType {
	switch {
	case strings.HasPrefix(id, "CIDV"):
		return cardsv1alpha1.CardVirtual
	case strings.HasPrefix(id, "CIDP"):
		return cardsv1alpha1.CardPhysical
	}
	return ""
}

// orderReference keeps a card callback's orderNo under "<event>.orderNo": each card event has its own order
// (the application, a freeze, the closing), and one key per event keeps the application's next to the rest.
func orderReference(c *event.Card, name, orderNo string) {
	if orderNo != "" {
		c.References = map[string]string{name + ".orderNo": orderNo}
	}
}

func cardStatus(name string, d map[string]any, ev *event.Event) error {
	if err := requireCard(name, ev); err != nil {
		return err
	}
	ev.ID = adapter.Str(d, "orderNo")
	c := withCard(ev)
	c.ProviderStatus = name
	orderReference(c, name, ev.ID)
	switch name {
	case "CardCreate":
		// A physical card is created before it is made and shipped, and its own CardActive activates it;
		// only a virtual card is usable on creation. A card of unknown type is not taken for usable.
		c.Type, c.Phase = cardType(ev.CardID), cardsv1alpha1.CardPendingActivation
		if c.Type == cardsv1alpha1.CardVirtual {
			c.Phase = cardsv1alpha1.CardActive
		}
	case "CardUnFreeze":
		c.Phase = cardsv1alpha1.CardActive
	case "CardFreeze":
		c.Phase = cardsv1alpha1.CardFrozen
	case "CardClose":
		c.Phase = cardsv1alpha1.CardClosed
		return closeAmount(d, c)
	}
	return nil
}

// closeAmount keeps CardClose's totalAmount, as sent and in the card currency, as a card amount: its meaning
// (most likely the balance returned on closing) is undocumented, and it is no spend of the card.
func closeAmount(d map[string]any, c *event.Card) error {
	if adapter.Str(d, "totalAmount") == "" {
		return nil
	}
	amt, err := money.Major(d["totalAmount"], CardCurrency)
	if err != nil {
		return adapter.Malformed("CardClose: totalAmount: %v", err)
	}
	c.Amounts = map[string]cardsv1alpha1.Money{"totalAmount": *amt}
	return nil
}

var logisticsStates = map[string]cardsv1alpha1.LogisticsState{
	"CardInProduction": cardsv1alpha1.LogisticsInProduction,
	"CardShipped":      cardsv1alpha1.LogisticsShipped,
	"CardActive":       cardsv1alpha1.LogisticsActivated,
	"CardBind":         cardsv1alpha1.LogisticsBound,
}

// logistics reads the logistics of a physical card (the seed lists these statuses for cards that ship).
// Only CardActive changes the phase: CardBind's place before or after activation is not documented.
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
	c := withCard(ev)
	c.Type = cardsv1alpha1.CardPhysical
	orderReference(c, name, ev.ID)
	if name == "CardActive" {
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
	t := &event.Transaction{Channel: freeText(d, "channel"), Description: freeText(det, "remark"),
		ProviderStatus: providerStatus(d, det), Merchant: merchant(adapter.Obj(d, "merchantData"))}
	var err error
	if t.OccurredAt, err = firstTime(name+": details.", det, "createTimeStamp", "createTime"); err != nil {
		return err
	}
	ev.OccurredAt = t.OccurredAt
	// subOrderId is unique per push; without it, orderId and the event type are the best key Tevau gives.
	ev.ID = adapter.Str(det, "subOrderId")
	if ev.ID == "" {
		ev.ID = orderID + ":" + name
	}
	switch name {
	case "Authorization", "Clearing":
		err = purchase(name, d, det, orderID, t)
	case "Refund", "Reversal":
		err = amendment(name, det, orderID, ev.ID, t)
	default:
		err = unknownTransaction(name, d, det, orderID, ev.ID, t)
	}
	if err != nil {
		return err
	}
	if r := strings.ToLower(t.Description); t.Phase != cardsv1alpha1.TransactionUnknown && containsAny(r, failedRemark...) {
		t.Phase, t.FailureReason = cardsv1alpha1.TransactionFailed, t.Description
		if name == "Authorization" {
			t.Phase = cardsv1alpha1.TransactionDeclined
		}
	}
	ev.Transaction = t
	return nil
}

// purchase reads an authorization or its clearing: orderId is the purchase, and its clearing (and later
// refunds) carry the same orderId. Each push's subOrderId is kept under "<event>.subOrderId".
func purchase(name string, d, det map[string]any, orderID string, t *event.Transaction) error {
	t.ID, t.Direction = orderID, cardsv1alpha1.Debit
	t.Type, t.Phase = cardsv1alpha1.TransactionAuthorization, cardsv1alpha1.TransactionPending
	if name == "Clearing" {
		t.Type, t.Phase = cardsv1alpha1.TransactionClearing, cardsv1alpha1.TransactionCompleted
	}
	if adapter.Str(d, "transCurrency") == "" || adapter.Str(d, "transAmount") == "" {
		return adapter.Malformed("%s: body has no transAmount and transCurrency", name)
	}
	if err := transAmount(name, d, t); err != nil {
		return err
	}
	if err := purchaseDetails(name, det, t); err != nil {
		return err
	}
	if sub := adapter.Str(det, "subOrderId"); sub != "" {
		t.References = put(t.References, name+".subOrderId", sub)
	}
	return nil
}

// unknownTransaction reads a transaction notification of a type Tevau does not name: its own transaction
// (keyed like a refund, so it cannot overwrite the purchase of orderId), phase Unknown, no direction, and
// whatever amounts it carries.
func unknownTransaction(name string, d, det map[string]any, orderID, id string, t *event.Transaction) error {
	t.ID, t.OriginalTransactionID = id, orderID
	t.Type, t.Phase = cardsv1alpha1.TransactionOther, cardsv1alpha1.TransactionUnknown
	t.ProviderStatus = text.Clip(strings.TrimSpace(name+" "+t.ProviderStatus), 64)
	if adapter.Str(d, "transAmount") != "" || adapter.Str(d, "transCurrency") != "" {
		if err := transAmount(name, d, t); err != nil {
			return err
		}
	}
	return purchaseDetails(name, det, t)
}

func transAmount(name string, d map[string]any, t *event.Transaction) error {
	amt, err := money.Major(d["transAmount"], adapter.Str(d, "transCurrency"))
	if err != nil {
		return adapter.Malformed("%s: transAmount/transCurrency: %v", name, err)
	}
	t.Amount = money.Abs(amt)
	return nil
}

// channelFields are Tevau's channel-side amounts of a purchase; their meaning (and currency) is undocumented,
// so they are kept verbatim as references, not as fees charged to the holder.
var channelFields = []string{"channelPrincipal", "channelAtmFee", "channelAuthorizationFee", "channelFxFee"}

// purchaseDetails reads the card-currency side of a purchase: principal (the billing amount), the holder's
// fees and the channel amounts.
func purchaseDetails(name string, det map[string]any, t *event.Transaction) error {
	var err error
	if t.BillingAmount, err = cardAmount(name, det, "principal"); err != nil {
		return err
	}
	if t.Fees, t.Fee, err = fees(name, det); err != nil {
		return err
	}
	t.References = references(t.References, det, channelFields...)
	return nil
}

// amendment reads a refund or reversal: its own credit, linked to the purchase it amends. Its transAmount,
// principal and fees repeat the original's; the amount returned is details.refund.refund /
// details.reversal.reversal, and the fee returned with it and the channel amounts are kept as references.
func amendment(name string, det map[string]any, orderID, id string, t *event.Transaction) error {
	t.ID, t.OriginalTransactionID, t.Direction = id, orderID, cardsv1alpha1.Credit
	t.Type, t.Phase = cardsv1alpha1.TransactionRefund, cardsv1alpha1.TransactionCompleted
	part, channel := "refund", "channelRefund"
	if name == "Reversal" {
		t.Type, part, channel = cardsv1alpha1.TransactionReversal, "reversal", "channelReversal"
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
	t.References = references(t.References, inner, part+"Fee", channel, channel+"Fee")
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

// feeFields are the holder's fees of a purchase, in the card currency and in the order Tevau sends them.
var feeFields = []string{"fxFee", "authorizationFee", "atmFee"}

// fees is the fee breakdown and its exact sum; nil when no fee is sent.
func fees(name string, det map[string]any) ([]cardsv1alpha1.FeeComponent, *cardsv1alpha1.Money, error) {
	var out []cardsv1alpha1.FeeComponent
	sum := decimal.Zero
	for _, k := range feeFields {
		if adapter.Str(det, k) == "" {
			continue
		}
		v, err := money.Parse(det[k])
		if err != nil {
			return nil, nil, adapter.Malformed("%s: details.%s: %v", name, k, err)
		}
		sum = sum.Add(v.Abs())
		out = append(out, cardsv1alpha1.FeeComponent{Name: k,
			Amount: cardsv1alpha1.Money{Value: money.Format(v.Abs(), CardCurrency), Currency: CardCurrency}})
	}
	if out == nil {
		return nil, nil, nil
	}
	return out, &cardsv1alpha1.Money{Value: money.Format(sum, CardCurrency), Currency: CardCurrency}, nil
}

// references adds the present keys of m to refs, verbatim.
func references(refs map[string]string, m map[string]any, keys ...string) map[string]string {
	for _, k := range keys {
		if v := adapter.Str(m, k); v != "" {
			refs = put(refs, k, v)
		}
	}
	return refs
}

func put(refs map[string]string, k, v string) map[string]string {
	if refs == nil {
		refs = map[string]string{}
	}
	refs[k] = v
	return refs
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
	return text.Clip(strings.Join(parts, " "), 64)
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
