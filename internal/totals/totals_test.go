package totals_test

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/totals"
)

func TestAddToTotals(t *testing.T) {
	txn := func(name string, phase cardsv1alpha1.TransactionPhase, dir cardsv1alpha1.Direction, value, cur string) *cardsv1alpha1.CardTransaction {
		return &cardsv1alpha1.CardTransaction{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: cardsv1alpha1.CardTransactionStatus{
			Phase: phase, Direction: dir, Amount: &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(value), Currency: cur}}}
	}
	st := &cardsv1alpha1.CardStatus{}
	for _, x := range []*cardsv1alpha1.CardTransaction{
		txn("a", cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit, "10.10", "USD"),
		txn("b", cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Credit, "100", "USD"),
		txn("c", cardsv1alpha1.TransactionDeclined, cardsv1alpha1.Debit, "5.00", "USD"),
		txn("d", cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit, "7.00", "EUR"),
	} {
		if !totals.Add(st, x) {
			t.Fatalf("%s not added", x.Name)
		}
	}
	if totals.Add(st, txn("a", cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit, "10.10", "USD")) {
		t.Error("a transaction was added twice")
	}
	got := fmt.Sprintf("%s %s %s %d", st.Totals.Currency, st.Totals.Spent, st.Totals.Credited, st.Totals.Transactions)
	if got != "USD 10.10 100.00 4" {
		t.Errorf("totals = %s, want USD 10.10 spent, 100.00 credited, 4 transactions (declined and EUR counted, not summed)", got)
	}
	for i := 0; i < 100; i++ {
		totals.Add(st, txn(fmt.Sprint("x", i), cardsv1alpha1.TransactionCompleted, cardsv1alpha1.Debit, "1", "USD"))
	}
	if n := len(st.Totals.RecentTransactions); n != 64 {
		t.Errorf("recentTransactions holds %d names, want the newest 64", n)
	}
}
