package rules

import (
	"fmt"
	"strings"
	"testing"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// benchRuleSet is 100 rules, 20 of each kind, every fifth one in shadow mode, none of which declines the
// benchmark transaction: the worst case, every rule runs.
func benchRuleSet(tb testing.TB) *RuleSet {
	var b strings.Builder
	b.WriteString("timeZone: Europe/Berlin\nrules:\n")
	for i := range 100 {
		mode := "enforce"
		if i%5 == 4 {
			mode = "shadow"
		}
		fmt.Fprintf(&b, "- name: rule-%d\n  reason: R%d\n  mode: %s\n", i, i, mode)
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "  mcc: {block: ['7995', '7800-7802', '%04d']}\n", 6000+i)
		case 1:
			b.WriteString("  merchantCountry: {block: [RU, KP, IR, SY, CU]}\n")
		case 2:
			fmt.Fprintf(&b, "  amount: {max: '%d.00', currency: USD}\n", 500+i)
		case 3:
			w := windowOrder[i%4]
			fmt.Fprintf(&b, "  spend: {window: %s, maxAmount: '%d.00', currency: USD, maxCount: %d}\n", w, 1000+i, 50+i)
		case 4:
			fmt.Fprintf(&b, "  condition: \"transaction.channel == 'ATM' && card.labels.?atm.orValue('') != 'allowed' || card.spend.Daily.amountMinor + transaction.amountMinor > %d\"\n", 100000+i)
		}
	}
	rs, err := Parse([]byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

func BenchmarkEvaluate100Rules(b *testing.B) {
	rs := benchRuleSet(b)
	tx := purchase()
	card := Card{Namespace: "payments", Name: "upay-main-c-1", Labels: map[string]string{"team": "growth"},
		Phase: cardsv1alpha1.CardActive, Balance: &cardsv1alpha1.Money{Value: "250.00", Currency: "USD"}, Spend: spendOf(cardsv1alpha1.SpendDaily, "USD", "40.00", 2)}
	for i := range windowOrder[1:] {
		card.Spend.Windows = append(card.Spend.Windows, spendOf(windowOrder[i+1], "USD", "40.00", 2).Windows...)
	}
	if d := rs.Evaluate(tx, card, t0); d.Outcome != approved || len(d.Shadow) != 0 || len(d.Errors) != 0 {
		b.Fatalf("the benchmark transaction must pass every rule: %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		rs.Evaluate(tx, card, t0)
	}
}

func BenchmarkParse100Rules(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchRuleSet(b)
	}
}
