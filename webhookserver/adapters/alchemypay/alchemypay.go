// Package alchemypay decodes Alchemy Pay card order callbacks: a flat JSON object of strings describing a card
// order paid in crypto (orderType 1 creates a card, 2 recharges one), re-sent every 10 minutes for an hour and
// then hourly for 24 hours until answered with HTTP 200.
//
// Alchemy Pay signs nothing: the receiver authenticates a callback (verification.sourceCIDRs and/or
// verification.requireURLToken) before this adapter runs, so Decode checks no signature and Encode only sets
// the content type.
//
// Mapping: every callback is a CryptoOrder transaction keyed by orderNo, whose phase follows status (INIT
// Pending, SUCCESS Completed, FAIL Failed, CANCEL Canceled, REFUNDING Refunded); Amount is cardAmount in
// cardCurrency (what reaches the card, a credit); Crypto is the payment (cryptoCurrency, paymentAmount,
// network, and as fee the sum of applyFee, rechargeFee, deliveryFee and rechargeMarkup). A successful
// create-card order also makes the card Active with its type (cardType 1 virtual, 2 physical). Event.ID is
// orderNo + ":" + status, the documented idempotency key. The full cardNumber is reduced to BIN and last four
// at once; email, cryptoAddress, voucherCode and shippingInfo (personal data) are never read.
//
// What the docs leave UNKNOWN, and what this adapter assumes (no WebhookEndpoint option exists for Alchemy
// Pay):
//
//   - The time zone of orderTime ("2024-08-09 15:11:09"): not stated, and there is no option for it, so it is
//     read as UTC. A provider clock in another zone shifts occurredAt by that offset.
//   - Ordering: orderTime is the order's creation time, the same in every status push of an order. Event
//     .OccurredAt is orderTime plus a few microseconds ranking the status in the order's lifecycle (INIT, then
//     SUCCESS, FAIL or CANCEL, then REFUNDING), so a late retry of INIT never overwrites a final status.
//     Transaction.OccurredAt is orderTime itself.
//   - Units of the crypto amounts: the docs count paymentAmount and the fees "as USDT". For USDT (or no
//     cryptoCurrency) they are the crypto amounts; for another asset (BTC, ETH) they are a USDT valuation, not
//     an amount of the asset, so Crypto then names the asset and network only.
//   - REFUNDING (older docs) is mapped to Refunded: no later "refunded" status is documented, and the order will
//     not reach the card either way.
//   - An order without cardId: a create-card order that did not succeed may have no card yet. It is recorded on
//     a card named "order-<orderNo>" whose phase says what became of the application (Requested while INIT,
//     Failed otherwise), so a paid-but-failed order stays visible for reconciliation. A recharge, or a
//     successful create-card order, without cardId is Malformed: it must name its card.
package alchemypay

import (
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

// Event types, named after orderType (Alchemy Pay sends no event type).
const (
	TypeCreateCardOrder = "CREATE_CARD_ORDER"
	TypeRechargeOrder   = "RECHARGE_ORDER"
)

// OrderCardPrefix names the card of a create-card order that has no card ID.
const OrderCardPrefix = "order-"

// ack: Alchemy Pay only needs HTTP 200.
var ack = adapter.Text("success")

type status struct {
	phase cardsv1alpha1.TransactionPhase
	rank  int // position in the order's lifecycle, for ordering pushes that share one orderTime
}

var statuses = map[string]status{
	"INIT":      {cardsv1alpha1.TransactionPending, 0},
	"SUCCESS":   {cardsv1alpha1.TransactionCompleted, 1},
	"FAIL":      {cardsv1alpha1.TransactionFailed, 1},
	"CANCEL":    {cardsv1alpha1.TransactionCanceled, 1},
	"REFUNDING": {cardsv1alpha1.TransactionRefunded, 2},
}

var assetPattern = regexp.MustCompile(`^[A-Z0-9]{2,12}$`)

// Adapter is the Alchemy Pay card order adapter.
type Adapter struct{}

// Decode maps an order callback the receiver has already authenticated (source address or URL token).
func (Adapter) Decode(req *adapter.Request) (*adapter.Result, error) {
	if req == nil {
		return nil, adapter.Malformed("no request")
	}
	d, err := adapter.Object(req.Body)
	if err != nil {
		return nil, err
	}
	orderNo := adapter.Str(d, "orderNo")
	if orderNo == "" {
		return nil, adapter.Malformed("order has no orderNo")
	}
	var name string
	switch ot := adapter.Str(d, "orderType"); ot {
	case "1":
		name = TypeCreateCardOrder
	case "2":
		name = TypeRechargeOrder
	case "":
		return nil, adapter.Malformed("order %s has no orderType", orderNo)
	default:
		// A kind of order this adapter does not know: acknowledged and counted.
		return &adapter.Result{EventType: "ORDER_TYPE_" + ot, Unknown: true, Ack: ack}, nil
	}
	st := strings.ToUpper(adapter.Str(d, "status"))
	s, ok := statuses[st]
	if !ok {
		return nil, adapter.Malformed("%s: order %s has unknown status %q (want SUCCESS, FAIL, CANCEL, INIT or REFUNDING)", name, orderNo, st)
	}

	t := &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: s.phase, ProviderStatus: st,
		Direction: cardsv1alpha1.Credit, FailureReason: adapter.Str(d, "failReason")}
	if t.OccurredAt, err = adapter.OptionalTime(d, "orderTime", time.UTC); err != nil {
		if r, ok := adapter.AsRejection(err); ok {
			return nil, adapter.Malformed("%s: %s", name, r.Message)
		}
		return nil, adapter.Malformed("%s: %v", name, err)
	}
	if adapter.Str(d, "cardAmount") != "" {
		if t.Amount, err = money.Major(d["cardAmount"], adapter.Str(d, "cardCurrency")); err != nil {
			return nil, adapter.Malformed("%s: cardAmount/cardCurrency: %v", name, err)
		}
		t.Amount = money.Abs(t.Amount)
	}
	if t.Crypto, err = crypto(d); err != nil {
		return nil, adapter.Malformed("%s: %v", name, err)
	}

	ev := event.Event{Type: name, ID: orderNo + ":" + st, CardID: adapter.Str(d, "cardId"), Transaction: t}
	if !t.OccurredAt.IsZero() {
		ev.OccurredAt = t.OccurredAt.Add(time.Duration(s.rank) * time.Microsecond)
	}
	card := &event.Card{Number: pan.Reduce(adapter.Str(d, "cardNumber"))}
	switch adapter.Str(d, "cardType") {
	case "1":
		card.Type = cardsv1alpha1.CardVirtual
	case "2":
		card.Type = cardsv1alpha1.CardPhysical
	}
	switch {
	case ev.CardID != "" && name == TypeCreateCardOrder && st == "SUCCESS":
		card.Phase, card.ProviderStatus = cardsv1alpha1.CardActive, st
	case ev.CardID == "" && name == TypeCreateCardOrder && st != "SUCCESS":
		// No card was issued: the order stands for the application, so it stays visible.
		ev.CardID = OrderCardPrefix + orderNo
		card.Phase, card.ProviderStatus, card.Reason = cardsv1alpha1.CardFailed, st, t.FailureReason
		if st == "INIT" {
			card.Phase = cardsv1alpha1.CardRequested
		}
	case ev.CardID == "":
		return nil, adapter.Malformed("%s: order %s (status %s) has no cardId", name, orderNo, st)
	}
	if card.Phase != "" || card.Type != "" || card.Number != nil {
		ev.Card = card
	}
	return &adapter.Result{EventType: name, Ack: ack, Events: []event.Event{ev}}, nil
}

// crypto is the payment side of the order. The documented amounts are counted in USDT, so they are amounts
// of the asset only when the asset is USDT.
func crypto(d map[string]any) (*cardsv1alpha1.CryptoPayment, error) {
	asset := strings.ToUpper(adapter.Str(d, "cryptoCurrency"))
	paid := adapter.Str(d, "paymentAmount")
	if asset == "" {
		if paid == "" {
			return nil, nil
		}
		asset = "USDT"
	}
	if !assetPattern.MatchString(asset) {
		return nil, fmt.Errorf("cryptoCurrency %q is not a crypto asset code", asset)
	}
	c := &cardsv1alpha1.CryptoPayment{Asset: asset, Network: adapter.Str(d, "network")}
	if asset != "USDT" {
		return c, nil
	}
	var err error
	if paid != "" {
		if c.Amount, err = money.Decimal(paid); err != nil {
			return nil, fmt.Errorf("paymentAmount: %w", err)
		}
	}
	var fee cardsv1alpha1.Decimal
	for _, k := range []string{"applyFee", "rechargeFee", "deliveryFee", "rechargeMarkup"} {
		v := adapter.Str(d, k)
		if v == "" {
			continue
		}
		if fee, err = add(fee, v); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	c.Fee = fee
	return c, nil
}

// add sums exact decimals.
func add(sum cardsv1alpha1.Decimal, v string) (cardsv1alpha1.Decimal, error) {
	x, err := money.Parse(v)
	if err != nil {
		return "", err
	}
	if sum != "" {
		s, err := money.Parse(string(sum))
		if err != nil {
			return "", err
		}
		x = x.Add(s)
	}
	return cardsv1alpha1.Decimal(x.String()), nil
}

// Encode returns the payload as Alchemy Pay sends it: plain JSON, unsigned.
func Encode(_ *endpointconfig.Resolved, payload []byte, _ time.Time) (http.Header, []byte, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return h, payload, nil
}
