// Package prepaidify decodes Prepaidify callbacks (Prepaidify is a white label of Alchemy Pay cards).
//
// Prepaidify signs nothing: the receiver authenticates a callback (verification.sourceCIDRs and/or
// verification.requireURLToken) before this adapter runs, so Decode checks no signature and Encode only sets
// the content type. Several body shapes arrive at the same URL and carry no common type field, so Decode tells
// them apart by structure:
//
//   - virtual card envelope {eventType, eventId, webhookSubscribeId, data{}}: CREATE_CARD, CREATE_CARD_FAIL,
//     RISK_CONTROL, DELETE_CARD_SUCCESS, and TRANSACTION (the enveloped form of the card transaction below).
//     Event.ID is eventId. Other event types are acknowledged as unknown.
//   - virtual card transaction, flat {transactionId, cardId, status, ...} (type "TRANSACTION").
//   - physical card transaction, flat {tradeId, tradeType, tradeStatus, tradeSrc, cardNo, ...}
//     (type "BANK_CARD_TRANSACTION").
//   - cardholder audit result, flat {holderId, auditStatus, errMsg, ...} (type "CARDHOLDER_AUDIT").
//   - KYC result {kycStatus, requestNo} (type "KYC_RESULT").
//
// Flat shapes send no event ID; their Event.ID is built from the provider's own keys (transactionId, status
// and gmtModified; tradeId, tradeStatus and tradeSrc; holderId and auditStatus; requestNo and kycStatus), so it
// is the same for every retry of one state.
//
// Acks: the physical card notifications want {"returnCode":"success"}; everything else only needs HTTP 200 and
// gets the body "success".
//
// Secrets: full card numbers (CREATE_CARD number, transaction cardNumber) are reduced to BIN and last four at
// once; CVCs and RISK_CONTROL's list of numbers are never read; cardholder names, phone numbers and identity
// documents of the audit result are never read; neither are the email and link fields some variants add.
//
// What the docs leave UNKNOWN, and what this adapter assumes (no WebhookEndpoint option exists for Prepaidify;
// each assumption is the reading the docs and their examples support):
//
//   - Currency of virtual card amounts. The docs only say the cards are USD cards (preAuthCurrency "USD"); the
//     CREATE_CARD balance and DELETE_CARD_SUCCESS refundAmount carry no currency and are taken as USD
//     (CardCurrency), as is a transaction amount sent without a currency.
//   - Units of virtual card transaction amounts. The card API counts in cents (deposit, consume, balance,
//     refundAmount), and the transaction example sends preAuthAmount -1992 for a 19.92 USD charge: integer
//     amounts are read as cents, amounts written with a decimal point as major units. Physical card amounts
//     are documented as decimals in major units (EUR), and an account in USDT (not an ISO 4217 currency)
//     is reported as the transaction's crypto side.
//   - Time zone of "yyyy-MM-dd HH:mm:ss" times (preAuthTime, transactionTime, gmtModified in some variants) and
//     of the physical card businessDate: not stated; read as UTC. Epoch times (gmtCreate in seconds or
//     milliseconds) need no zone.
//   - The physical card transaction sends only a business date. Its Event.OccurredAt is that date (UTC
//     midnight) plus a few microseconds ranking the record in the trade's lifecycle (authorization, then
//     settlement, then reversal or refund), so a late retry of an earlier state never overwrites a later one
//     of the same day. Transaction.OccurredAt is the plain date.
//   - Undocumented status values: only ACTIVE is documented for CREATE_CARD; self-explaining values (FROZEN,
//     CLOSED, DELETED, FAILED) map to their phase and any other keeps the card Active (the event means the card
//     was opened), the value kept in providerStatus. tradeType and tradeStatus lists end in "…": an unknown
//     tradeType is an Other transaction and an unknown tradeStatus leaves the phase unset, both kept verbatim.
//     Unknown virtual transaction statuses, audit statuses, KYC statuses and RISK_CONTROL types are refused as
//     Malformed, because guessing them could misstate money, verification or a freeze.
package prepaidify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Event types of the flat shapes, which send none.
const (
	TypeTransaction         = "TRANSACTION"
	TypeBankCardTransaction = "BANK_CARD_TRANSACTION"
	TypeCardholderAudit     = "CARDHOLDER_AUDIT"
	TypeKYCResult           = "KYC_RESULT"
)

// CardCurrency is the currency of Prepaidify virtual cards, whose balances and refunds are sent without one.
const CardCurrency = "USD"

var (
	// virtualAck: the virtual card and KYC callbacks only need HTTP 200.
	virtualAck = adapter.Text("success")
	// physicalAck is the answer the physical card notifications document.
	physicalAck = adapter.JSON(`{"returnCode":"success"}`)
)

const shapes = "expected a virtual card envelope {eventType, eventId, data}, a card transaction {transactionId, cardId, status}, " +
	"a physical card transaction {tradeId, tradeType, tradeStatus, cardNo}, a cardholder audit result {holderId, auditStatus} " +
	"or a KYC result {kycStatus, requestNo}"

// Adapter is the Prepaidify adapter.
type Adapter struct{}

// Decode maps a callback the receiver has already authenticated (source address or URL token).
func (Adapter) Decode(req *adapter.Request) (*adapter.Result, error) {
	if req == nil {
		return nil, adapter.Malformed("no request")
	}
	body, err := adapter.Object(req.Body)
	if err != nil {
		return nil, err
	}
	switch {
	case has(body, "eventType") || has(body, "webhookSubscribeId"):
		return decodeEnvelope(body)
	case has(body, "kycStatus"):
		return decodeKYC(body)
	case has(body, "auditStatus"):
		return decodeAudit(body)
	case has(body, "tradeId") || has(body, "tradeType") || has(body, "tradeStatus"):
		return decodeBankCardTransaction(body)
	case has(body, "transactionId"):
		ev, err := transaction(TypeTransaction, body)
		if err != nil {
			return nil, err
		}
		ev.ID = joinID(ev.Transaction.ID, ev.Transaction.ProviderStatus, adapter.Str(body, "gmtModified"))
		return &adapter.Result{EventType: TypeTransaction, Ack: virtualAck, Events: []event.Event{*ev}}, nil
	}
	return nil, adapter.Malformed("body matches no Prepaidify callback: %s", shapes)
}

// Encode returns the payload as Prepaidify sends it: plain JSON, unsigned.
func Encode(_ *endpointconfig.Resolved, payload []byte, _ time.Time) (http.Header, []byte, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return h, payload, nil
}

func decodeEnvelope(env map[string]any) (*adapter.Result, error) {
	name := adapter.Str(env, "eventType")
	if name == "" {
		return nil, adapter.Malformed("envelope has no eventType")
	}
	res := &adapter.Result{EventType: name, Ack: virtualAck}
	switch name {
	case "CREATE_CARD", "CREATE_CARD_FAIL", "RISK_CONTROL", "DELETE_CARD_SUCCESS", TypeTransaction:
	default:
		res.Unknown = true
		return res, nil
	}
	id := adapter.Str(env, "eventId")
	if id == "" {
		return nil, adapter.Malformed("%s: envelope has no eventId", name)
	}
	d := adapter.Obj(env, "data")
	if d == nil {
		return nil, adapter.Malformed("%s: envelope has no data object", name)
	}
	if name == TypeTransaction {
		ev, err := transaction(name, d)
		if err != nil {
			return nil, err
		}
		ev.ID = id
		res.Events = []event.Event{*ev}
		return res, nil
	}
	at, err := optionalTime(name, d, "gmtCreate")
	if err != nil {
		return nil, err
	}
	base := event.Event{Type: name, ID: id, OccurredAt: at, HolderID: holderID(d)}
	if name == "RISK_CONTROL" {
		res.Events, err = riskControl(base, d)
		return res, err
	}
	base.CardID = adapter.Str(d, "cardId")
	if base.CardID == "" {
		return nil, adapter.Malformed("%s: data has no cardId", name)
	}
	switch name {
	case "CREATE_CARD":
		err = createCard(d, &base)
	case "CREATE_CARD_FAIL":
		base.Card = &event.Card{Phase: cardsv1alpha1.CardFailed, Type: cardsv1alpha1.CardVirtual}
	case "DELETE_CARD_SUCCESS":
		err = deleteCard(d, &base)
	}
	if err != nil {
		return nil, err
	}
	res.Events = []event.Event{base}
	return res, nil
}

// holderID is the user ID, which every virtual card event carries, so a card keeps one holder ID.
func holderID(d map[string]any) string {
	for _, k := range []string{"userId", "cardHolderId", "cardCustomerId", "customerId"} {
		if v := adapter.Str(d, k); v != "" {
			return v
		}
	}
	return ""
}

var createStatus = map[string]cardsv1alpha1.CardPhase{
	"ACTIVE": cardsv1alpha1.CardActive, "NORMAL": cardsv1alpha1.CardActive,
	"FROZEN": cardsv1alpha1.CardFrozen, "FREEZE": cardsv1alpha1.CardFrozen,
	"DELETED": cardsv1alpha1.CardClosed, "CLOSED": cardsv1alpha1.CardClosed, "CANCELLED": cardsv1alpha1.CardClosed,
	"FAIL": cardsv1alpha1.CardFailed, "FAILED": cardsv1alpha1.CardFailed,
}

// createCard reads the opened card. cvc is never read; cardBin is a provider segment ID, not the PAN prefix,
// so the BIN comes only from number.
func createCard(d map[string]any, ev *event.Event) error {
	c := &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: adapter.Str(d, "status"), Type: cardsv1alpha1.CardVirtual}
	if p, ok := createStatus[strings.ToUpper(c.ProviderStatus)]; ok {
		c.Phase = p
	}
	c.Number = pan.Reduce(adapter.Str(d, "number"))
	if l4 := adapter.Str(d, "last4"); digits(l4, 4) && (c.Number == nil || c.Number.Last4 == "") {
		if c.Number == nil {
			c.Number = &cardsv1alpha1.MaskedNumber{}
		}
		c.Number.Last4 = l4
	}
	year, yok := adapter.Int(d, "expYear")
	month, mok := adapter.Int(d, "expMonth")
	if yok && mok {
		if year >= 0 && year < 100 {
			year += 2000
		}
		if month < 1 || month > 12 || year < 2000 || year > 2200 {
			return adapter.Malformed("CREATE_CARD: expiry %d/%d is out of range", month, year)
		}
		c.Expiry = &cardsv1alpha1.Expiry{Month: int32(month), Year: int32(year)}
	}
	ev.Card = c
	if adapter.Str(d, "balance") != "" {
		b, err := money.Minor(d["balance"], CardCurrency)
		if err != nil {
			return adapter.Malformed("CREATE_CARD: balance: %v", err)
		}
		ev.Balance = &event.Balance{Available: *b}
	}
	return nil
}

// riskControl freezes every card listed. The numbers list (full card numbers) is never read. A
// FREEZE_ACCOUNT without card IDs names no card: it is acknowledged with nothing to store.
func riskControl(base event.Event, d map[string]any) ([]event.Event, error) {
	typ := adapter.Str(d, "type")
	switch typ {
	case "", "FREEZE_CARD", "FREEZE_ACCOUNT":
	default:
		return nil, adapter.Malformed("RISK_CONTROL: unknown type %q (want FREEZE_CARD or FREEZE_ACCOUNT)", typ)
	}
	ids, err := stringList(d, "cardIds")
	if err != nil {
		return nil, adapter.Malformed("RISK_CONTROL: %v", err)
	}
	if len(ids) == 0 {
		if id := adapter.Str(d, "cardId"); id != "" {
			ids = []string{id}
		}
	}
	// The reason type is written both HIGH_REFUSE_RATE and "HIGH REFUSE RATE": keep one spelling.
	reason := strings.Join(strings.Fields(strings.ToUpper(adapter.Str(d, "riskControlReasonType"))), "_")
	if r := adapter.Str(d, "reason"); r != "" {
		if reason != "" {
			reason += ": "
		}
		reason += r
	}
	var out []event.Event
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		ev := base
		ev.CardID = id
		ev.Card = &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: typ, Reason: reason}
		out = append(out, ev)
	}
	return out, nil
}

// deleteCard closes the card. A positive refundAmount is the balance paid back to the main account (money
// leaves the card); a negative one is an overdraft the main account covered (money reaches the card).
func deleteCard(d map[string]any, ev *event.Event) error {
	typ := adapter.Str(d, "type")
	ev.Card = &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: typ, Reason: adapter.Str(d, "reason")}
	if adapter.Str(d, "refundAmount") == "" {
		return nil
	}
	amt, sign, err := virtualAmount(d["refundAmount"], CardCurrency)
	if err != nil {
		return adapter.Malformed("DELETE_CARD_SUCCESS: refundAmount: %v", err)
	}
	if sign == 0 {
		return nil
	}
	t := &event.Transaction{ID: ev.ID, Type: cardsv1alpha1.TransactionRefund, Phase: cardsv1alpha1.TransactionCompleted,
		ProviderStatus: typ, Direction: cardsv1alpha1.Debit, Amount: amt, Description: ev.Card.Reason, OccurredAt: ev.OccurredAt}
	if sign < 0 {
		t.Direction = cardsv1alpha1.Credit
	}
	ev.Transaction = t
	return nil
}

type txnKind struct {
	typ       cardsv1alpha1.TransactionType
	phase     cardsv1alpha1.TransactionPhase
	direction cardsv1alpha1.Direction
}

var txnStatus = map[string]txnKind{
	"PENDING":     {cardsv1alpha1.TransactionPurchase, cardsv1alpha1.TransactionPending, cardsv1alpha1.Debit},
	"COMPLETE":    {cardsv1alpha1.TransactionPurchase, cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit},
	"EXPIRED":     {cardsv1alpha1.TransactionPurchase, cardsv1alpha1.TransactionExpired, cardsv1alpha1.Debit},
	"REVERSED":    {cardsv1alpha1.TransactionPurchase, cardsv1alpha1.TransactionReversed, cardsv1alpha1.Debit},
	"DECLINED":    {cardsv1alpha1.TransactionPurchase, cardsv1alpha1.TransactionDeclined, cardsv1alpha1.Debit},
	"REFUND":      {cardsv1alpha1.TransactionRefund, cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Credit},
	"FEE":         {cardsv1alpha1.TransactionFee, cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit},
	"MONTHLY_FEE": {cardsv1alpha1.TransactionFee, cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit},
}

// transaction maps a virtual card transaction (flat, or the data of a TRANSACTION envelope). The direction
// follows the status, not the amount's sign, because the docs do not promise signed amounts.
func transaction(name string, d map[string]any) (*event.Event, error) {
	t := &event.Transaction{ID: adapter.Str(d, "transactionId"), ProviderStatus: strings.ToUpper(adapter.Str(d, "status")),
		Description: adapter.Str(d, "desp"), FailureReason: adapter.Str(d, "reason")}
	ev := &event.Event{Type: name, CardID: adapter.Str(d, "cardId"), HolderID: adapter.Str(d, "userId"), Transaction: t}
	if t.ID == "" {
		return nil, adapter.Malformed("%s: no transactionId", name)
	}
	if ev.CardID == "" {
		return nil, adapter.Malformed("%s: transaction %s has no cardId", name, t.ID)
	}
	k, ok := txnStatus[t.ProviderStatus]
	if !ok {
		return nil, adapter.Malformed("%s: unknown transaction status %q (want PENDING, EXPIRED, REVERSED, DECLINED, COMPLETE, REFUND, FEE or MONTHLY_FEE)", name, t.ProviderStatus)
	}
	t.Type, t.Phase, t.Direction = k.typ, k.phase, k.direction
	if adapter.Str(d, "status") == "MONTHLY_FEE" && t.Description == "" {
		t.Description = "monthly fee"
	}
	// The settled amount when there is one, else the pre-authorization's.
	amountKey, currencyKey, timeKey := "transactionAmount", "transactionCurrency", "transactionTime"
	if adapter.Str(d, amountKey) == "" {
		amountKey, currencyKey = "preAuthAmount", "preAuthCurrency"
	}
	if adapter.Str(d, amountKey) != "" {
		cur := adapter.Str(d, currencyKey)
		if cur == "" {
			cur = CardCurrency
		}
		amt, _, err := virtualAmount(d[amountKey], cur)
		if err != nil {
			return nil, adapter.Malformed("%s: %s: %v", name, amountKey, err)
		}
		t.Amount = amt
	}
	if adapter.Str(d, timeKey) == "" {
		timeKey = "preAuthTime"
	}
	var err error
	if t.OccurredAt, err = optionalTime(name, d, timeKey); err != nil {
		return nil, err
	}
	if ev.OccurredAt, err = optionalTime(name, d, "gmtModified"); err != nil {
		return nil, err
	}
	if ev.OccurredAt.IsZero() {
		if ev.OccurredAt, err = optionalTime(name, d, "gmtCreate"); err != nil {
			return nil, err
		}
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = t.OccurredAt
	}
	if n := pan.Reduce(adapter.Str(d, "cardNumber")); n != nil {
		ev.Card = &event.Card{Number: n}
	}
	return ev, nil
}

var tradeTypes = map[string]txnKind{
	"100": {typ: cardsv1alpha1.TransactionTopUp, direction: cardsv1alpha1.Credit},
	"110": {typ: cardsv1alpha1.TransactionWithdrawal, direction: cardsv1alpha1.Debit},
	"120": {typ: cardsv1alpha1.TransactionTopUp, direction: cardsv1alpha1.Credit},        // transfer in
	"121": {typ: cardsv1alpha1.TransactionWithdrawal, direction: cardsv1alpha1.Debit},    // transfer out
	"150": {typ: cardsv1alpha1.TransactionAuthorization, direction: cardsv1alpha1.Debit}, // pre-authorization
	"151": {typ: cardsv1alpha1.TransactionPurchase, direction: cardsv1alpha1.Debit},
	"200": {typ: cardsv1alpha1.TransactionCorrection}, // settlement adjustment: direction from the sign
	"300": {typ: cardsv1alpha1.TransactionOther},      // balance inquiry
	"500": {typ: cardsv1alpha1.TransactionFee, direction: cardsv1alpha1.Debit},
}

var assetPattern = regexp.MustCompile(`^[A-Z0-9]{2,12}$`)

// decodeBankCardTransaction maps a physical card transaction. cardNo is already masked (first 6, last 4).
func decodeBankCardTransaction(d map[string]any) (*adapter.Result, error) {
	const name = TypeBankCardTransaction
	t := &event.Transaction{ID: adapter.Str(d, "tradeId"), ProviderStatus: adapter.Str(d, "tradeStatus"),
		AuthorizationID: adapter.Str(d, "authCode"), Description: adapter.Str(d, "remark")}
	ev := event.Event{Type: name, CardID: adapter.Str(d, "cardId"), HolderID: adapter.Str(d, "holderId"), Transaction: t}
	switch {
	case t.ID == "":
		return nil, adapter.Malformed("%s: no tradeId", name)
	case ev.CardID == "":
		return nil, adapter.Malformed("%s: trade %s has no cardId (card token), so it belongs to no card", name, t.ID)
	case t.ProviderStatus == "":
		return nil, adapter.Malformed("%s: trade %s has no tradeStatus", name, t.ID)
	}
	tradeType := adapter.Str(d, "tradeType")
	k, ok := tradeTypes[tradeType]
	if !ok {
		k = txnKind{typ: cardsv1alpha1.TransactionOther}
	}
	t.Type, t.Direction = k.typ, k.direction
	src := strings.ToUpper(adapter.Str(d, "tradeSrc"))
	rank := bankCardPhase(t, src, tradeType)
	if err := bankCardAmounts(d, t); err != nil {
		return nil, adapter.Malformed("%s: %v", name, err)
	}
	if m := adapter.Str(d, "merchantName"); m != "" {
		t.Merchant = &cardsv1alpha1.Merchant{Name: m}
	}
	date, err := businessDate(d)
	if err != nil {
		return nil, adapter.Malformed("%s: businessDate: %v", name, err)
	}
	if !date.IsZero() {
		t.OccurredAt = date
		srcRank := 0
		if src == "S" {
			srcRank = 1
		}
		// The records of one trade share a business date: their lifecycle order breaks the tie.
		ev.OccurredAt = date.Add(time.Duration(2*rank+srcRank) * time.Microsecond)
	}
	ev.Card = &event.Card{Number: pan.Reduce(adapter.Str(d, "cardNo")), Type: cardsv1alpha1.CardPhysical}
	ev.ID = joinID(t.ID, t.ProviderStatus, src)
	return &adapter.Result{EventType: name, Ack: physicalAck, Events: []event.Event{ev}}, nil
}

// bankCardPhase sets the phase of a physical card record and returns its rank in the lifecycle order of the
// records of one trade on one business date.
func bankCardPhase(t *event.Transaction, src, tradeType string) int {
	switch t.ProviderStatus {
	case "1":
		// An authorization record is approved but not settled; a settlement record completes the trade.
		if src == "A" || (src == "" && tradeType == "150") {
			t.Phase = cardsv1alpha1.TransactionPending
			return 0
		}
		t.Phase = cardsv1alpha1.TransactionCompleted
		return 1
	case "2":
		t.Phase = cardsv1alpha1.TransactionReversed
		return 2
	case "10":
		t.Phase = cardsv1alpha1.TransactionRefunded
		return 2
	}
	return 0
}

// bankCardAmounts reads the amount and fee in the card account's currency (or crypto asset), the direction of a
// correction from its sign, and the amount paid when the merchant's currency differs.
func bankCardAmounts(d map[string]any, t *event.Transaction) error {
	cur := strings.ToUpper(adapter.Str(d, "currency"))
	if adapter.Str(d, "amount") == "" || cur == "" {
		return fmt.Errorf("trade %s has no amount or currency", t.ID)
	}
	var err error
	switch _, cerr := money.Currency(cur); {
	case cerr == nil:
		err = fiatAmounts(d, t, cur)
	case assetPattern.MatchString(cur):
		// A USDT card account: not an ISO 4217 currency, so the amount is the crypto side.
		err = cryptoAmounts(d, t, cur)
	default:
		return fmt.Errorf("currency %q is neither an ISO 4217 code nor a crypto asset", cur)
	}
	if err != nil {
		return err
	}
	negative := t.Amount != nil && strings.HasPrefix(string(t.Amount.Value), "-") ||
		t.Crypto != nil && strings.HasPrefix(string(t.Crypto.Amount), "-")
	if t.Direction == "" && t.Type == cardsv1alpha1.TransactionCorrection {
		t.Direction = cardsv1alpha1.Credit
		if negative {
			t.Direction = cardsv1alpha1.Debit
		}
	}
	if t.Crypto != nil {
		t.Crypto.Amount = cardsv1alpha1.Decimal(strings.TrimPrefix(string(t.Crypto.Amount), "-"))
	}
	t.Amount = money.Abs(t.Amount)
	if tc := strings.ToUpper(adapter.Str(d, "currencyTxn")); tc != "" && tc != cur && adapter.Str(d, "txnAmount") != "" {
		paid, err := money.Major(d["txnAmount"], tc)
		if err != nil {
			return fmt.Errorf("txnAmount: %w", err)
		}
		t.Amount, t.BillingAmount = money.Abs(paid), t.Amount
	}
	return nil
}

func fiatAmounts(d map[string]any, t *event.Transaction, cur string) error {
	var err error
	if t.Amount, err = money.Major(d["amount"], cur); err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	if adapter.Str(d, "fee") != "" {
		if t.Fee, err = money.Major(d["fee"], cur); err != nil {
			return fmt.Errorf("fee: %w", err)
		}
		t.Fee = money.Abs(t.Fee)
	}
	return nil
}

func cryptoAmounts(d map[string]any, t *event.Transaction, asset string) error {
	c := &cardsv1alpha1.CryptoPayment{Asset: asset}
	var err error
	if c.Amount, err = money.Decimal(d["amount"]); err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	if adapter.Str(d, "fee") != "" {
		if c.Fee, err = money.Decimal(d["fee"]); err != nil {
			return fmt.Errorf("fee: %w", err)
		}
		c.Fee = cardsv1alpha1.Decimal(strings.TrimPrefix(string(c.Fee), "-"))
	}
	t.Crypto = c
	return nil
}

// businessDate reads the physical card's business date: a date (yyyy-MM-dd, yyyyMMdd) or any time
// adapter.Time knows, in UTC.
func businessDate(d map[string]any) (time.Time, error) {
	s := adapter.Str(d, "businessDate")
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02", "20060102"} {
		if len(s) == len(layout) {
			if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
				return t, nil
			}
		}
	}
	return adapter.Time(s, time.UTC)
}

var auditStates = map[string]cardsv1alpha1.KYCState{
	"0": cardsv1alpha1.KYCPending,    // pending review
	"1": cardsv1alpha1.KYCPending,    // under review
	"2": cardsv1alpha1.KYCApproved,   // approved
	"3": cardsv1alpha1.KYCRejected,   // rejected
	"4": cardsv1alpha1.KYCUnverified, // data to be completed
}

// decodeAudit maps a physical cardholder audit result. The names, mobile number and identity document it
// carries are never read.
func decodeAudit(d map[string]any) (*adapter.Result, error) {
	const name = TypeCardholderAudit
	holder := adapter.Str(d, "holderId")
	if holder == "" {
		return nil, adapter.Malformed("%s: no holderId", name)
	}
	status := adapter.Str(d, "auditStatus")
	state, ok := auditStates[status]
	if !ok {
		return nil, adapter.Malformed("%s: unknown auditStatus %q (want 0 to 4)", name, status)
	}
	ev := event.Event{Type: name, ID: joinID(holder, status), HolderID: holder,
		KYC: &event.KYC{State: state, Reason: adapter.Str(d, "errMsg")}}
	return &adapter.Result{EventType: name, Ack: physicalAck, Events: []event.Event{ev}}, nil
}

var kycStates = map[string]cardsv1alpha1.KYCState{
	"approved": cardsv1alpha1.KYCApproved, "rejected": cardsv1alpha1.KYCRejected,
	"reviewing": cardsv1alpha1.KYCPending, "init": cardsv1alpha1.KYCUnverified,
}

// decodeKYC maps a KYC sharing result. Its only identity is requestNo, used as the holder ID: it reaches
// the cards whose holder ID is the same value.
func decodeKYC(d map[string]any) (*adapter.Result, error) {
	const name = TypeKYCResult
	req := adapter.Str(d, "requestNo")
	if req == "" {
		return nil, adapter.Malformed("%s: no requestNo", name)
	}
	status := strings.ToLower(adapter.Str(d, "kycStatus"))
	state, ok := kycStates[status]
	if !ok {
		return nil, adapter.Malformed("%s: unknown kycStatus %q (want approved, rejected, reviewing or init)", name, status)
	}
	ev := event.Event{Type: name, ID: joinID(req, status), HolderID: req, KYC: &event.KYC{State: state}}
	return &adapter.Result{EventType: name, Ack: virtualAck, Events: []event.Event{ev}}, nil
}

// virtualAmount reads a virtual card amount: integers are cents, decimals major units. It returns the absolute
// amount and the sign.
func virtualAmount(v any, currency string) (*cardsv1alpha1.Money, int, error) {
	d, err := money.Parse(v)
	if err != nil {
		return nil, 0, err
	}
	var m *cardsv1alpha1.Money
	if strings.Contains(adapter.Value(v), ".") {
		m, err = money.Major(v, currency)
	} else {
		m, err = money.Minor(v, currency)
	}
	if err != nil {
		return nil, 0, err
	}
	return money.Abs(m), d.Sign(), nil
}

func optionalTime(name string, d map[string]any, key string) (time.Time, error) {
	t, err := adapter.OptionalTime(d, key, time.UTC)
	if err != nil {
		if r, ok := adapter.AsRejection(err); ok {
			return time.Time{}, adapter.Malformed("%s: %s", name, r.Message)
		}
		return time.Time{}, err
	}
	return t, nil
}

func stringList(d map[string]any, key string) ([]string, error) {
	v, ok := d[key]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, &listError{key}
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		switch x.(type) {
		case string, json.Number:
			out = append(out, adapter.Value(x))
		default:
			return nil, &listError{key}
		}
	}
	return out, nil
}

type listError struct{ key string }

func (e *listError) Error() string { return e.key + " is not a list of IDs" }

func has(m map[string]any, key string) bool {
	v, ok := m[key]
	return ok && v != nil
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func joinID(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ":")
}
