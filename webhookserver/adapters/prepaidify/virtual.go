package prepaidify

import (
	"cmp"
	"encoding/json"
	"strings"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// createStatus maps the CREATE_CARD status: only ACTIVE is documented, the others explain themselves.
var createStatus = map[string]cardsv1alpha1.CardPhase{
	"ACTIVE": cardsv1alpha1.CardActive, "NORMAL": cardsv1alpha1.CardActive,
	"FROZEN": cardsv1alpha1.CardFrozen, "FREEZE": cardsv1alpha1.CardFrozen,
	"DELETED": cardsv1alpha1.CardClosed, "CLOSED": cardsv1alpha1.CardClosed, "CANCELLED": cardsv1alpha1.CardClosed,
	"FAIL": cardsv1alpha1.CardFailed, "FAILED": cardsv1alpha1.CardFailed,
}

// cardRefs are the provider IDs of a virtual card kept verbatim. cardBin is a card segment (product) ID, not
// the PAN prefix.
var cardRefs = []string{"cardHolderId", "cardSeqNo", "cardCustomerId", "customerId", "cardBin", "orderNo"}

// createCard reads the opened virtual card: a successful opening, so Active when no status says otherwise.
// cvc is never read; the BIN comes only from number.
func createCard(env, d map[string]any, ev *event.Event) error {
	const name = TypeCreateCard
	c := &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: adapter.Str(d, "status"), Type: cardsv1alpha1.CardVirtual,
		Reason: adapter.Str(d, "statusText"), References: merge(references(d, cardRefs...), references(env, "customerTradeId"))}
	if c.ProviderStatus != "" {
		c.Phase = cmp.Or(createStatus[strings.ToUpper(c.ProviderStatus)], cardsv1alpha1.CardUnknown)
	}
	c.Number = cardNumber(d)
	if l4 := adapter.Str(d, "last4"); digits(l4, 4) && (c.Number == nil || c.Number.Last4 == "") {
		if c.Number == nil {
			c.Number = &cardsv1alpha1.MaskedNumber{}
		}
		c.Number.Last4 = l4
	}
	exp, err := expiry(d)
	if err != nil {
		return err
	}
	c.Expiry = exp
	for _, k := range []string{"deposit", "consume"} {
		if adapter.Str(d, k) == "" {
			continue
		}
		m, err := money.Minor(d[k], CardCurrency)
		if err != nil {
			return adapter.Malformed("%s: %s: %v", name, k, err)
		}
		if c.Amounts == nil {
			c.Amounts = map[string]cardsv1alpha1.Money{}
		}
		c.Amounts[k] = *m
	}
	ev.Card = c
	return cardBalance(name, d, ev)
}

func expiry(d map[string]any) (*cardsv1alpha1.Expiry, error) {
	year, yok := adapter.Int(d, "expYear")
	month, mok := adapter.Int(d, "expMonth")
	if !yok || !mok {
		return nil, nil
	}
	if year >= 0 && year < 100 {
		year += 2000
	}
	if month < 1 || month > 12 || year < 2000 || year > 2200 {
		return nil, adapter.Malformed("%s: expiry %d/%d is out of range", TypeCreateCard, month, year)
	}
	return &cardsv1alpha1.Expiry{Month: int32(month), Year: int32(year)}, nil
}

// cardNumber reduces whichever card number field an event carries to BIN and last four.
func cardNumber(d map[string]any) *cardsv1alpha1.MaskedNumber {
	return pan.Reduce(adapter.First(d, "number", "cardNumber", "cardNo"))
}

// cardBalance sets the card's available balance when the event carries it: integer cents of the card currency,
// as CREATE_CARD documents balance.
func cardBalance(name string, d map[string]any, ev *event.Event) error {
	if adapter.Str(d, "balance") == "" {
		return nil
	}
	b, err := money.Minor(d["balance"], CardCurrency)
	if err != nil {
		return adapter.Malformed("%s: balance: %v", name, err)
	}
	ev.Balance = &event.Balance{Available: *b}
	return nil
}

// createCardFail marks the card failed and records the failed opening on the holder. Without a card ID the
// failure is the holder's alone (or, naming no holder either, the endpoint's).
func createCardFail(base event.Event, d map[string]any) []event.Event {
	order := adapter.Str(d, "orderNo")
	base.Failure = &event.Failure{Kind: TypeCreateCardFail, Reference: cmp.Or(order, base.CardID)}
	if base.CardID != "" {
		base.Card = &event.Card{Phase: cardsv1alpha1.CardFailed, Type: cardsv1alpha1.CardVirtual,
			Number: cardNumber(d), References: references(d, "orderNo")}
	}
	if base.Failure.Reference == "" {
		base.Failure.Reference = base.ID
	}
	return []event.Event{base}
}

// Risk-control types: the documented ones freeze; others are kept verbatim with the neutral phase Unknown.
const (
	freezeCard    = "FREEZE_CARD"
	freezeAccount = "FREEZE_ACCOUNT"
)

// riskControl freezes every card listed (numbers, when paired one to one with cardIds, give their BIN and last
// four), and records an account freeze, or a risk action naming no card, on the holder: a FREEZE_ACCOUNT's
// holder event carries the freeze for every card of the holder.
func riskControl(base event.Event, d map[string]any) ([]event.Event, error) {
	typ := adapter.Str(d, "type")
	ids, err := stringList(d, "cardIds")
	if err != nil {
		return nil, adapter.Malformed("%s: %v", TypeRiskControl, err)
	}
	if len(ids) == 0 {
		if id := adapter.Str(d, "cardId"); id != "" {
			ids = []string{id}
		}
	}
	numbers, err := stringList(d, "numbers")
	if err != nil || len(numbers) != len(ids) {
		numbers = nil // unpaired numbers name no card
	}
	reason := riskReason(d)
	phase := cardsv1alpha1.CardUnknown
	if typ == "" || typ == freezeCard || typ == freezeAccount {
		phase = cardsv1alpha1.CardFrozen
	}
	var out []event.Event
	seen := map[string]bool{}
	for i, id := range ids {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		ev := base
		ev.CardID = id
		ev.Card = &event.Card{Phase: phase, ProviderStatus: typ, Reason: reason}
		if numbers != nil {
			ev.Card.Number = pan.Reduce(numbers[i])
		}
		out = append(out, ev)
	}
	if base.HolderID != "" && (len(out) == 0 || typ == freezeAccount) {
		out = append(out, holderRisk(base, typ, reason, phase))
	}
	return out, nil
}

// holderRisk is the risk action on the holder as a whole. A FREEZE_ACCOUNT (or an unknown type) also carries
// its card facts for every card of the holder; a FREEZE_CARD naming no card freezes none of them.
func holderRisk(base event.Event, typ, reason string, phase cardsv1alpha1.CardPhase) event.Event {
	base.Risk = &event.RiskAction{Action: cmp.Or(typ, base.Type), Reason: reason}
	if typ == freezeAccount || phase == cardsv1alpha1.CardUnknown {
		base.Card = &event.Card{Phase: phase, ProviderStatus: typ, Reason: reason}
	}
	return base
}

// riskReason joins the reason type and the reason. The type is written both HIGH_REFUSE_RATE and
// "HIGH REFUSE RATE": one spelling is kept.
func riskReason(d map[string]any) string {
	reason := strings.Join(strings.Fields(strings.ToUpper(adapter.Str(d, "riskControlReasonType"))), "_")
	if r := adapter.Str(d, "reason"); r != "" {
		if reason != "" {
			reason += ": "
		}
		reason += r
	}
	return reason
}

// deleteCard closes the card. refundAmount settles the card's balance with the main account (positive: paid
// back to it; negative: an overdraft it covered), so it is a card amount, not a transaction of the card, and the
// card holds nothing afterwards.
func deleteCard(d map[string]any, ev *event.Event) error {
	const name = TypeDeleteCard
	ev.Card = &event.Card{Phase: cardsv1alpha1.CardClosed, ProviderStatus: adapter.Str(d, "type"), Reason: adapter.Str(d, "reason"),
		Number: cardNumber(d)}
	if adapter.Str(d, "refundAmount") != "" {
		amt, err := virtualMoney(d["refundAmount"], CardCurrency)
		if err != nil {
			return adapter.Malformed("%s: refundAmount: %v", name, err)
		}
		ev.Card.Amounts = map[string]cardsv1alpha1.Money{"refundAmount": *amt}
		ev.Balance = &event.Balance{Available: cardsv1alpha1.Money{Value: "0.00", Currency: CardCurrency}}
	}
	return cardBalance(name, d, ev)
}

type txnKind struct {
	typ       cardsv1alpha1.TransactionType
	phase     cardsv1alpha1.TransactionPhase
	direction cardsv1alpha1.Direction
}

// txnStatus maps the virtual card transaction status. PENDING, EXPIRED, REVERSED and DECLINED are states of
// the pre-authorization, which is never spend; COMPLETE is the settled purchase.
var txnStatus = map[string]txnKind{
	"PENDING":     {cardsv1alpha1.TransactionAuthorization, cardsv1alpha1.TransactionPending, cardsv1alpha1.Debit},
	"EXPIRED":     {cardsv1alpha1.TransactionAuthorization, cardsv1alpha1.TransactionExpired, cardsv1alpha1.Debit},
	"REVERSED":    {cardsv1alpha1.TransactionAuthorization, cardsv1alpha1.TransactionReversed, cardsv1alpha1.Debit},
	"DECLINED":    {cardsv1alpha1.TransactionAuthorization, cardsv1alpha1.TransactionDeclined, cardsv1alpha1.Debit},
	"COMPLETE":    {cardsv1alpha1.TransactionPurchase, cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit},
	"REFUND":      {cardsv1alpha1.TransactionRefund, cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Credit},
	"FEE":         {cardsv1alpha1.TransactionFee, cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit},
	"MONTHLY_FEE": {cardsv1alpha1.TransactionFee, cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit},
}

// transaction maps a virtual card transaction (flat, or the data of a TRANSACTION envelope). The direction
// follows the status, not the amount's sign, because the docs do not promise signed amounts. An unknown status
// is kept verbatim with the phase Unknown and no type or direction.
func transaction(name string, d map[string]any) (*event.Event, error) {
	t := &event.Transaction{ID: adapter.Str(d, "transactionId"), ProviderStatus: strings.ToUpper(adapter.Str(d, "status")),
		Description: adapter.Str(d, "desp"), FailureReason: adapter.Str(d, "reason"), References: references(d, "orderNo")}
	ev := &event.Event{Type: name, CardID: adapter.Str(d, "cardId"), HolderID: holderID(d), Transaction: t}
	if t.ID == "" {
		return nil, adapter.Malformed("%s: no transactionId", name)
	}
	if ev.CardID == "" {
		return nil, adapter.Malformed("%s: transaction %s has no cardId", name, t.ID)
	}
	t.Phase = cardsv1alpha1.TransactionUnknown
	if k, ok := txnStatus[t.ProviderStatus]; ok {
		t.Type, t.Phase, t.Direction = k.typ, k.phase, k.direction
	}
	if t.ProviderStatus == "MONTHLY_FEE" && t.Description == "" {
		t.Description = "monthly fee"
	}
	if err := transactionAmount(name, d, t); err != nil {
		return nil, err
	}
	if err := transactionTimes(name, d, ev); err != nil {
		return nil, err
	}
	if n, refs := cardNumber(d), references(d, "cardSeqNo"); n != nil || refs != nil {
		ev.Card = &event.Card{Number: n, References: refs}
	}
	return ev, cardBalance(name, d, ev)
}

// transactionAmount is the settled amount when there is one, else the pre-authorization's.
func transactionAmount(name string, d map[string]any, t *event.Transaction) error {
	amountKey, currencyKey := "transactionAmount", "transactionCurrency"
	if adapter.Str(d, amountKey) == "" {
		amountKey, currencyKey = "preAuthAmount", "preAuthCurrency"
	}
	if adapter.Str(d, amountKey) == "" {
		return nil
	}
	amt, err := virtualMoney(d[amountKey], cmp.Or(adapter.Str(d, currencyKey), CardCurrency))
	if err != nil {
		return adapter.Malformed("%s: %s: %v", name, amountKey, err)
	}
	t.Amount = money.Abs(amt)
	return nil
}

// transactionTimes: the transaction happened at transactionTime (else preAuthTime); the event is as of
// gmtModified, else gmtCreate, else the transaction time.
func transactionTimes(name string, d map[string]any, ev *event.Event) error {
	timeKey := "transactionTime"
	if adapter.Str(d, timeKey) == "" {
		timeKey = "preAuthTime"
	}
	var err error
	if ev.Transaction.OccurredAt, err = optionalTime(name, d, timeKey); err != nil {
		return err
	}
	for _, k := range []string{"gmtModified", "gmtCreate"} {
		if ev.OccurredAt, err = optionalTime(name, d, k); err != nil || !ev.OccurredAt.IsZero() {
			return err
		}
	}
	ev.OccurredAt = ev.Transaction.OccurredAt
	return nil
}

// virtualMoney reads a virtual card amount, signed as sent: integers are cents, decimals major units.
func virtualMoney(v any, currency string) (*cardsv1alpha1.Money, error) {
	if strings.Contains(adapter.Value(v), ".") {
		return money.Major(v, currency)
	}
	return money.Minor(v, currency)
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
