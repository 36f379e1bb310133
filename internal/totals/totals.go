// Package totals keeps a card's running totals over its settled transactions, so that retention can delete old
// CardTransactions without losing their sums. It is pure: the caller reads the Card, adds, and writes it back.
package totals

import (
	"slices"

	"github.com/shopspring/decimal"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/money"
)

// Add adds a settled transaction to a card's totals: every settled transaction is counted, and the
// amount of a Completed one (in the card's currency: the billing amount when there is one) is added to spent
// (debits) or credited (credits). The totals keep the currency of the first amount; amounts in another currency
// are counted but not summed. It reports false when the transaction was added before.
func Add(st *cardsv1alpha1.CardStatus, txn *cardsv1alpha1.CardTransaction) bool {
	amount := txn.Status.BillingAmount
	if amount == nil {
		amount = txn.Status.Amount
	}
	if st.Totals == nil {
		st.Totals = &cardsv1alpha1.CardTotals{Currency: "USD"}
		if amount != nil {
			st.Totals.Currency = amount.Currency
		}
	}
	t := st.Totals
	if slices.Contains(t.RecentTransactions, txn.Name) {
		return false
	}
	t.Transactions++
	if txn.Status.Phase == cardsv1alpha1.TransactionCompleted && amount != nil && amount.Currency == t.Currency {
		v, err := decimal.NewFromString(string(amount.Value))
		if err == nil {
			switch txn.Status.Direction {
			case cardsv1alpha1.Debit:
				t.Spent = money.Format(decimalOf(t.Spent).Add(v.Abs()), t.Currency)
			case cardsv1alpha1.Credit:
				t.Credited = money.Format(decimalOf(t.Credited).Add(v.Abs()), t.Currency)
			}
		}
	}
	t.RecentTransactions = append(t.RecentTransactions, txn.Name)
	if n := len(t.RecentTransactions); n > 64 {
		t.RecentTransactions = t.RecentTransactions[n-64:]
	}
	return true
}

func decimalOf(d cardsv1alpha1.Decimal) decimal.Decimal {
	v, err := decimal.NewFromString(string(d))
	if err != nil {
		return decimal.Zero
	}
	return v
}

// Counted reports whether a transaction is in its card's running totals: marked when it was added
// (status.countedAt), or by the annotation earlier releases wrote.
func Counted(txn *cardsv1alpha1.CardTransaction) bool {
	return txn.Status.CountedAt != nil || txn.Annotations[cardsv1alpha1.AnnotationCounted] != ""
}

// Settled reports whether a transaction has reached a final phase.
func Settled(p cardsv1alpha1.TransactionPhase) bool {
	switch p {
	case cardsv1alpha1.TransactionCompleted, cardsv1alpha1.TransactionDeclined, cardsv1alpha1.TransactionReversed,
		cardsv1alpha1.TransactionRefunded, cardsv1alpha1.TransactionFailed, cardsv1alpha1.TransactionExpired,
		cardsv1alpha1.TransactionCanceled:
		return true
	}
	return false
}
