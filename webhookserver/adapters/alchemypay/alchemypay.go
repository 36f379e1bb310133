// Package alchemypay decodes Alchemy Pay card order callbacks: a flat JSON object of strings describing a card
// order paid in crypto (orderType 1 creates a card, 2 recharges one), re-sent every 10 minutes for an hour and
// then hourly for 24 hours until answered with HTTP 200.
//
// Alchemy Pay signs nothing: the receiver authenticates a callback (verification.sourceCIDRs and/or
// verification.requireURLToken) before this adapter runs, so Decode checks no signature and Encode only sets
// the content type.
//
// Mapping: every callback is a CryptoOrder transaction keyed by orderNo, whose phase follows status (INIT
// Pending, SUCCESS Completed, FAIL Failed, CANCEL Canceled, REFUNDING Refunded, anything else Unknown with the
// status verbatim); Amount is cardAmount in cardCurrency (what reaches the card, a credit); ExchangeRate is
// currencyExchangeRate; Crypto is the payment (cryptoCurrency, paymentAmount, network, and as fee the sum of
// applyFee, rechargeFee, deliveryFee and rechargeMarkup). The fee breakdown, the second rate
// (cryptoCurrencyExchangeRate) and orderAmount are kept verbatim in References: they are USDT amounts, which
// Money (ISO 4217 only) cannot hold. rechargeMarkup is the merchant's commission, never part of a card fee.
// A paid create-card order makes a virtual card Active and leaves a physical one Requested: it still has to be
// produced, shipped and activated. Event.ID is orderNo + ":" + status, the documented idempotency key. The
// full cardNumber is reduced to BIN and last four at once; email, cryptoAddress, voucherCode and shippingInfo
// (personal data or a redeemable code) are never read, so no holder ID is set: email is the only user
// identifier sent.
//
// orderTime ("2024-08-09 15:11:09") is read in spec.alchemypay.timeZone, +08:00 by default: the docs' own
// example orderNo 100217231874691123456 embeds the epoch 1723187469 (07:11:09 UTC) next to orderTime 15:11:09.
//
// What the docs leave UNKNOWN, and what this adapter assumes:
//
//   - Ordering: orderTime is the order's creation time, the same in every status push of an order. Event
//     .OccurredAt is orderTime plus a few microseconds ranking the status in the order's lifecycle (INIT and
//     unknown statuses, then SUCCESS, FAIL or CANCEL, then REFUNDING), so a late retry never overwrites a
//     final status. Transaction.OccurredAt is orderTime itself.
//   - Units of the crypto amounts: the docs count paymentAmount and the fees "as USDT". For USDT (or no
//     cryptoCurrency) they are the crypto amounts; for another asset (BTC, ETH) they are a USDT valuation, not
//     an amount of the asset, so Crypto then names the asset and network only and paymentAmount goes to
//     References.
//   - REFUNDING (older docs) is mapped to Refunded: no later "refunded" status is documented, and the order will
//     not reach the card either way.
//   - An order without cardId: a create-card order that did not succeed may have no card yet. It is recorded on
//     a card named "order-<orderNo>" whose phase says what became of the application (Requested while INIT,
//     Unknown for an unknown status, Failed otherwise), so a paid-but-failed order stays visible for
//     reconciliation. A recharge, or a successful create-card order, without cardId is Malformed: it must name
//     its card.
package alchemypay

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
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

// Event types, named after orderType (Alchemy Pay sends no event type).
const (
	TypeCreateCardOrder = "CREATE_CARD_ORDER"
	TypeRechargeOrder   = "RECHARGE_ORDER"
)

// OrderCardPrefix names the card of a create-card order that has no card ID.
const OrderCardPrefix = "order-"

// DefaultTimeZone is the zone of orderTime when spec.alchemypay.timeZone is unset (see the package comment).
const DefaultTimeZone = "+08:00"

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

// unknownStatus ranks with INIT: a status nobody knows never displaces a known final one of the same order.
var unknownStatus = status{cardsv1alpha1.TransactionUnknown, 0}

// referenceFields are kept verbatim on the transaction, keyed by their own names: the crypto rate beside
// ExchangeRate, the order total, and the fee breakdown with the merchant's markup (all USDT, not ISO 4217).
var referenceFields = []string{"cryptoCurrencyExchangeRate", "orderAmount", "applyFee", "rechargeFee", "deliveryFee", "rechargeMarkup"}

// feeFields make up Crypto.Fee, everything the payer paid in the asset besides the card amount.
var feeFields = []string{"applyFee", "rechargeFee", "deliveryFee", "rechargeMarkup"}

var (
	assetPattern   = regexp.MustCompile(`^[A-Z0-9]{2,12}$`)
	decimalPattern = regexp.MustCompile(`^-?[0-9]{1,18}(\.[0-9]{1,18})?$`)
	offsetPattern  = regexp.MustCompile(`^([+-])([0-9]{2}):?([0-9]{2})$`)
)

// Adapter is the Alchemy Pay card order adapter.
type Adapter struct{}

var _ adapter.ConfigValidator = Adapter{}

// ValidateConfig checks spec.alchemypay.timeZone once per generation, so Decode never meets a bad zone.
func (Adapter) ValidateConfig(ep *cardsv1alpha1.WebhookEndpoint) error {
	_, err := zoneOf(ep)
	return err
}

var zones sync.Map // spec value -> *time.Location; loading an IANA zone reads the database, once per value

// zoneOf is the endpoint's spec.alchemypay.timeZone, or DefaultTimeZone.
func zoneOf(ep *cardsv1alpha1.WebhookEndpoint) (*time.Location, error) {
	tz := DefaultTimeZone
	if ep != nil && ep.Spec.AlchemyPay != nil && strings.TrimSpace(ep.Spec.AlchemyPay.TimeZone) != "" {
		tz = strings.TrimSpace(ep.Spec.AlchemyPay.TimeZone)
	}
	if l, ok := zones.Load(tz); ok {
		return l.(*time.Location), nil
	}
	l, err := parseZone(tz)
	if err != nil {
		return nil, fmt.Errorf("spec.alchemypay.timeZone %q %w", tz, err)
	}
	zones.Store(tz, l)
	return l, nil
}

var errZone = errors.New("is neither an IANA time zone name (e.g. Asia/Singapore) nor an offset from UTC (e.g. +08:00)")

// parseZone reads a fixed offset (+08:00, -0530) or an IANA name. "Local" is refused: it would make the
// times depend on the host the receiver runs on.
func parseZone(tz string) (*time.Location, error) {
	if m := offsetPattern.FindStringSubmatch(tz); m != nil {
		h, _ := strconv.Atoi(m[2])
		mins, _ := strconv.Atoi(m[3])
		if h > 14 || mins > 59 || h == 14 && mins > 0 {
			return nil, errors.New("is not an offset between -14:00 and +14:00")
		}
		off := (h*60 + mins) * 60
		if m[1] == "-" {
			off = -off
		}
		return time.FixedZone(fmt.Sprintf("%s%s:%s", m[1], m[2], m[3]), off), nil
	}
	if tz == "Local" {
		return nil, errZone
	}
	l, err := time.LoadLocation(tz)
	if err != nil {
		return nil, errZone
	}
	return l, nil
}

// Decode maps an order callback the receiver has already authenticated (source address or URL token).
func (Adapter) Decode(req *adapter.Request) (*adapter.Result, error) {
	if req == nil {
		return nil, adapter.Malformed("no request")
	}
	var ep *cardsv1alpha1.WebhookEndpoint
	if req.Endpoint != nil {
		ep = req.Endpoint.Endpoint
	}
	loc, err := zoneOf(ep)
	if err != nil {
		// Unreachable behind the reconciler's check. Not a 200: Alchemy Pay retries, so the order survives a fix.
		return nil, &adapter.Rejection{Status: http.StatusServiceUnavailable, Reason: cardsv1alpha1.ReasonInvalidConfig, Message: err.Error()}
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
	ev, err := decodeOrder(d, name, orderNo, loc)
	if err != nil {
		return nil, err
	}
	return &adapter.Result{EventType: name, Ack: ack, Events: []event.Event{*ev}}, nil
}

// decodeOrder builds the order's event: its transaction and what it says about the card.
func decodeOrder(d map[string]any, name, orderNo string, loc *time.Location) (*event.Event, error) {
	raw := adapter.Str(d, "status")
	if raw == "" {
		return nil, adapter.Malformed("%s: order %s has no status", name, orderNo)
	}
	st := strings.ToUpper(raw)
	s, known := statuses[st]
	if !known {
		// Acknowledged and kept: a 400 would have Alchemy Pay retry for 24 hours and then drop the order.
		s = unknownStatus
	}
	t, err := transaction(d, orderNo, raw, s.phase, loc)
	if err != nil {
		return nil, adapter.Malformed("%s: %v", name, err)
	}
	ev := &event.Event{Type: name, ID: orderNo + ":" + st, CardID: adapter.Str(d, "cardId"), Transaction: t}
	if !t.OccurredAt.IsZero() {
		ev.OccurredAt = t.OccurredAt.Add(time.Duration(s.rank) * time.Microsecond)
	}
	if err := cardFacts(d, ev, st, known); err != nil {
		return nil, err
	}
	return ev, nil
}

// transaction is the order as a CryptoOrder credit of the card.
func transaction(d map[string]any, orderNo, raw string, phase cardsv1alpha1.TransactionPhase, loc *time.Location) (*event.Transaction, error) {
	t := &event.Transaction{ID: orderNo, Type: cardsv1alpha1.TransactionCryptoOrder, Phase: phase, ProviderStatus: raw,
		Direction: cardsv1alpha1.Credit, FailureReason: adapter.Str(d, "failReason")}
	var err error
	if t.OccurredAt, err = adapter.OptionalTime(d, "orderTime", loc); err != nil {
		if r, ok := adapter.AsRejection(err); ok {
			return nil, errors.New(r.Message)
		}
		return nil, err
	}
	if adapter.Str(d, "cardAmount") != "" {
		if t.Amount, err = money.Major(d["cardAmount"], adapter.Str(d, "cardCurrency")); err != nil {
			return nil, fmt.Errorf("cardAmount/cardCurrency: %w", err)
		}
		t.Amount = money.Abs(t.Amount)
	}
	if t.ExchangeRate, err = rate(adapter.Str(d, "currencyExchangeRate")); err != nil {
		return nil, fmt.Errorf("currencyExchangeRate: %w", err)
	}
	if t.Crypto, err = crypto(d); err != nil {
		return nil, err
	}
	keys := referenceFields
	if t.Crypto != nil && t.Crypto.Asset != "USDT" {
		// A USDT valuation of a payment in another asset, not an amount of it: kept as sent.
		keys = append(keys[:len(keys):len(keys)], "paymentAmount")
	}
	if t.References, err = references(d, keys); err != nil {
		return nil, err
	}
	return t, nil
}

// rate is an exchange rate as sent when it is a plain decimal, else its exact canonical form.
func rate(v string) (cardsv1alpha1.Decimal, error) {
	if v == "" || decimalPattern.MatchString(v) {
		return cardsv1alpha1.Decimal(v), nil
	}
	return money.Decimal(v)
}

// references are the fields of keys present, verbatim, after checking they are decimals.
func references(d map[string]any, keys []string) (map[string]string, error) {
	refs := map[string]string{}
	for _, k := range keys {
		v := adapter.Str(d, k)
		if v == "" {
			continue
		}
		if _, err := money.Parse(v); err != nil || len(v) > 40 {
			return nil, fmt.Errorf("%s %q is not a decimal of at most 40 characters", k, v)
		}
		refs[k] = v
	}
	if len(refs) == 0 {
		return nil, nil
	}
	return refs, nil
}

// cardFacts sets what the order says about its card: number, type and, for create-card orders, the phase.
func cardFacts(d map[string]any, ev *event.Event, st string, known bool) error {
	card := &event.Card{Number: pan.Reduce(adapter.Str(d, "cardNumber"))}
	switch ct := adapter.Str(d, "cardType"); ct {
	case "1":
		card.Type = cardsv1alpha1.CardVirtual
	case "2":
		card.Type = cardsv1alpha1.CardPhysical
	case "":
	default:
		card.References = map[string]string{"cardType": ct}
	}
	create := ev.Type == TypeCreateCardOrder
	switch {
	case ev.CardID != "" && create && st == "SUCCESS":
		// Paid for. Only a virtual card is usable at once; a physical one is yet to be made, shipped and activated,
		// and no Alchemy Pay order reports its activation.
		card.Phase, card.ProviderStatus = cardsv1alpha1.CardRequested, ev.Transaction.ProviderStatus
		if card.Type == cardsv1alpha1.CardVirtual {
			card.Phase = cardsv1alpha1.CardActive
		}
	case ev.CardID == "" && create && st != "SUCCESS":
		// No card was issued: the order stands for the application, so it stays visible.
		ev.CardID = OrderCardPrefix + ev.Transaction.ID
		card.ProviderStatus, card.Reason = ev.Transaction.ProviderStatus, ev.Transaction.FailureReason
		switch {
		case st == "INIT":
			card.Phase = cardsv1alpha1.CardRequested
		case !known:
			card.Phase = cardsv1alpha1.CardUnknown
		default:
			card.Phase = cardsv1alpha1.CardFailed
		}
	case ev.CardID == "":
		return adapter.Malformed("%s: order %s (status %s) has no cardId", ev.Type, ev.Transaction.ID, st)
	}
	if card.Phase != "" || card.Type != "" || card.Number != nil || card.References != nil {
		ev.Card = card
	}
	return nil
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
	for _, k := range feeFields {
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
