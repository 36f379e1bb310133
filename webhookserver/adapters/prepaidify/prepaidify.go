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
// Holders: the virtual card events name the holder by userId (else cardHolderId, cardCustomerId, customerId),
// the physical ones by holderId. Facts about the holder alone (an audit result, an account freeze) carry the
// holder ID and no card ID, so the receiver keeps them on the CardHolder before any card exists and applies
// their card facts to every card of the holder. The KYC result's requestNo names the request, not the holder:
// it is never used as a holder ID.
//
// Acks: the physical card notifications want {"returnCode":"success"}; everything else only needs HTTP 200 and
// gets the body "success".
//
// Secrets: card numbers (CREATE_CARD number, RISK_CONTROL numbers, transaction cardNumber, physical cardNo or
// cardNumber) are reduced to BIN and last four at once; CVCs are never read; cardholder names, phone numbers
// and identity documents of the audit result are never read; neither are the email and link fields some
// variants add.
//
// What the docs leave UNKNOWN, and what this adapter assumes (no WebhookEndpoint option exists for Prepaidify;
// each assumption is the reading the docs and their examples support):
//
//   - Currency of virtual card amounts. The docs only say the cards are USD cards (preAuthCurrency "USD"); the
//     balance, deposit, consume and refundAmount carry no currency and are taken as USD (CardCurrency), as is
//     a transaction amount sent without a currency.
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
//   - Undocumented status values are kept verbatim with a neutral phase (CardUnknown, TransactionUnknown)
//     instead of being refused: a refusal makes the provider retry and loses the event. Only ACTIVE is
//     documented for CREATE_CARD; self-explaining values (FROZEN, CLOSED, DELETED, FAILED) map to their
//     phase. An unknown tradeType is an Other transaction. An unknown auditStatus is the holder's KYC
//     state Unknown (value verbatim); an unknown kycStatus, which names no holder, is acknowledged as an
//     unknown event.
//   - A DELETE_CARD_SUCCESS settles the card's balance with the main account (refundAmount), so the card's
//     balance after it is zero.
package prepaidify

import (
	"net/http"
	"strings"
	"time"

	"github.com/cardplane/cardplane/internal/endpointconfig"
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

// Envelope event types.
const (
	TypeCreateCard     = "CREATE_CARD"
	TypeCreateCardFail = "CREATE_CARD_FAIL"
	TypeRiskControl    = "RISK_CONTROL"
	TypeDeleteCard     = "DELETE_CARD_SUCCESS"
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
	case TypeCreateCard, TypeCreateCardFail, TypeRiskControl, TypeDeleteCard, TypeTransaction:
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
	base := event.Event{Type: name, ID: id, OccurredAt: at, HolderID: holderID(d), CardID: adapter.Str(d, "cardId")}
	switch name {
	case TypeRiskControl:
		base.CardID = ""
		res.Events, err = riskControl(base, d)
	case TypeCreateCardFail:
		res.Events = createCardFail(base, d)
	case TypeCreateCard:
		res.Events, err = one(base, func(ev *event.Event) error { return createCard(env, d, ev) })
	case TypeDeleteCard:
		res.Events, err = one(base, func(ev *event.Event) error { return deleteCard(d, ev) })
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// one builds the single event of a card event, which needs its card ID.
func one(ev event.Event, fill func(*event.Event) error) ([]event.Event, error) {
	if ev.CardID == "" {
		return nil, adapter.Malformed("%s: data has no cardId", ev.Type)
	}
	if err := fill(&ev); err != nil {
		return nil, err
	}
	return []event.Event{ev}, nil
}

// holderID is the user ID, which every virtual card event carries, so a card keeps one holder ID.
func holderID(d map[string]any) string {
	return adapter.First(d, "userId", "cardHolderId", "cardCustomerId", "customerId")
}

// references keeps the values of keys present in m verbatim, keyed by the provider's field name; nil when none is.
func references(m map[string]any, keys ...string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v := adapter.Str(m, k); v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// merge adds src to dst (allocating it when needed) and returns dst.
func merge(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[string]string{}
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

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
