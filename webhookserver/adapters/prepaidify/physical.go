package prepaidify

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/money"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

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

// decodeBankCardTransaction maps a physical card transaction. cardNo is documented masked (first 6, last 4);
// some variants send the full number as cardNumber: either is reduced at once. Physical card events never set
// the card's phase: no notification here reports an activation.
func decodeBankCardTransaction(d map[string]any) (*adapter.Result, error) {
	const name = TypeBankCardTransaction
	t := &event.Transaction{ID: adapter.Str(d, "tradeId"), ProviderStatus: adapter.Str(d, "tradeStatus"),
		AuthorizationID: adapter.Str(d, "authCode"), Description: adapter.Str(d, "remark"),
		References: references(d, "no", "tradeType", "tradeSrc")}
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
	ev.Card = &event.Card{Number: pan.Reduce(adapter.First(d, "cardNo", "cardNumber")), Type: cardsv1alpha1.CardPhysical,
		References: references(d, "cardToken")}
	ev.ID = joinID(t.ID, t.ProviderStatus, src)
	return &adapter.Result{EventType: name, Ack: physicalAck, Events: []event.Event{ev}}, nil
}

// bankCardPhase sets the phase of a physical card record and returns its rank in the lifecycle order of the
// records of one trade on one business date. An approved authorization record is an Authorization, Pending
// until its settlement record completes the trade; an undocumented tradeStatus is Unknown.
func bankCardPhase(t *event.Transaction, src, tradeType string) int {
	switch t.ProviderStatus {
	case "1":
		if src == "A" || (src == "" && tradeType == "150") {
			t.Type, t.Phase = cardsv1alpha1.TransactionAuthorization, cardsv1alpha1.TransactionPending
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
	t.Phase = cardsv1alpha1.TransactionUnknown
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
