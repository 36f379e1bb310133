package rules

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

const (
	approved = cardsv1alpha1.DecisionApproved
	declined = cardsv1alpha1.DecisionDeclined
)

var t0 = time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC) // a Wednesday

func amt(v, currency string) cardsv1alpha1.Money {
	return cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: currency}
}

// purchase is a 12.50 USD coffee in the US unless changed.
func purchase(change ...func(*Transaction)) Transaction {
	tx := Transaction{ID: "tx-1", AuthorizationID: "au-1", Amount: amt("12.50", "USD"), MCC: "5814",
		MerchantName: "Coffee Bar", MerchantCountry: "US", Channel: "ECOMMERCE"}
	for _, c := range change {
		c(&tx)
	}
	return tx
}

func withMCC(m string) func(*Transaction) { return func(tx *Transaction) { tx.MCC = m } }
func withCountry(c string) func(*Transaction) {
	return func(tx *Transaction) { tx.MerchantCountry = c }
}
func withAmount(v, c string) func(*Transaction) {
	return func(tx *Transaction) { tx.Amount = amt(v, c) }
}

// spendOf is a ledger with one current window.
func spendOf(w cardsv1alpha1.SpendWindowKind, currency, amount string, count int64) *cardsv1alpha1.CardSpend {
	sw := cardsv1alpha1.SpendWindow{Window: w, Currency: currency, Amount: cardsv1alpha1.Decimal(amount), Count: count}
	if w != cardsv1alpha1.SpendAllTime {
		sw.Start = &metav1.Time{Time: WindowStart(w, t0, time.UTC)}
	}
	return &cardsv1alpha1.CardSpend{Windows: []cardsv1alpha1.SpendWindow{sw}}
}

// TestMatchers runs each matcher kind against the transactions that sit on its edges.
func TestRulesMatchers(t *testing.T) {
	cases := []struct {
		name   string
		rule   string // the rule's matcher line(s), indented for a rule of the list
		tx     Transaction
		card   Card
		want   Outcome
		reason string
	}{
		{"mcc block listed", "mcc: {block: ['7995', '7800-7802']}", purchase(withMCC("7995")), Card{}, declined, "R"},
		{"mcc block range start", "mcc: {block: ['7995', '7800-7802']}", purchase(withMCC("7800")), Card{}, declined, "R"},
		{"mcc block range end", "mcc: {block: ['7995', '7800-7802']}", purchase(withMCC("7802")), Card{}, declined, "R"},
		{"mcc block outside range", "mcc: {block: ['7995', '7800-7802']}", purchase(withMCC("7803")), Card{}, approved, ""},
		{"mcc block missing", "mcc: {block: ['7995']}", purchase(withMCC("")), Card{}, approved, ""},
		{"mcc block malformed", "mcc: {block: ['7995']}", purchase(withMCC("79x5")), Card{}, approved, ""},
		{"mcc allow listed", "mcc: {allow: ['5811-5814']}", purchase(), Card{}, approved, ""},
		{"mcc allow not listed", "mcc: {allow: ['5411']}", purchase(), Card{}, declined, "R"},
		{"mcc allow missing", "mcc: {allow: ['5411']}", purchase(withMCC("")), Card{}, declined, "R"},
		{"mcc allow spaces", "mcc: {allow: ['5814']}", purchase(withMCC(" 5814 ")), Card{}, approved, ""},

		{"country block listed", "merchantCountry: {block: [RU, KP]}", purchase(withCountry("RU")), Card{}, declined, "R"},
		{"country block alpha-3 transaction", "merchantCountry: {block: [RU]}", purchase(withCountry("RUS")), Card{}, declined, "R"},
		{"country block alpha-3 rule", "merchantCountry: {block: [RUS]}", purchase(withCountry("ru")), Card{}, declined, "R"},
		{"country block other", "merchantCountry: {block: [RU]}", purchase(withCountry("DE")), Card{}, approved, ""},
		{"country block missing", "merchantCountry: {block: [RU]}", purchase(withCountry("")), Card{}, approved, ""},
		{"country block unknown code", "merchantCountry: {block: [RU]}", purchase(withCountry("ZZ")), Card{}, approved, ""},
		{"country allow listed", "merchantCountry: {allow: [DE, FR, NL]}", purchase(withCountry("NLD")), Card{}, approved, ""},
		{"country allow not listed", "merchantCountry: {allow: [DE, FR, NL]}", purchase(), Card{}, declined, "R"},
		{"country allow missing", "merchantCountry: {allow: [DE]}", purchase(withCountry("")), Card{}, declined, "R"},
		{"country allow unknown code", "merchantCountry: {allow: [DE]}", purchase(withCountry("ZZZ")), Card{}, declined, "R"},

		{"amount below", "amount: {max: '500.00', currency: USD}", purchase(withAmount("499.99", "USD")), Card{}, approved, ""},
		{"amount equal", "amount: {max: '500', currency: USD}", purchase(withAmount("500.00", "USD")), Card{}, approved, ""},
		{"amount one cent over", "amount: {max: '500.00', currency: USD}", purchase(withAmount("500.01", "USD")), Card{}, declined, "R"},
		{"amount sub-cent over", "amount: {max: '500.00', currency: USD}", purchase(withAmount("500.001", "USD")), Card{}, declined, "R"},
		{"amount zero", "amount: {max: '0', currency: USD}", purchase(withAmount("0", "USD")), Card{}, approved, ""},
		{"amount other currency declines", "amount: {max: '500.00', currency: USD}", purchase(withAmount("1.00", "EUR")), Card{}, declined, cardsv1alpha1.DecisionCurrencyMismatch},
		{"amount other currency skipped", "amount: {max: '500.00', currency: USD, otherCurrencies: skip}", purchase(withAmount("9999", "EUR")), Card{}, approved, ""},
		{"amount lower-case transaction currency", "amount: {max: '5', currency: USD}", purchase(withAmount("6", "usd")), Card{}, declined, "R"},

		{"spend empty ledger", "spend: {window: Daily, maxAmount: '100', currency: USD}", purchase(), Card{}, approved, ""},
		{"spend reaches the limit", "spend: {window: Daily, maxAmount: '100', currency: USD}", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendDaily, "USD", "87.50", 3)}, approved, ""},
		{"spend passes the limit", "spend: {window: Daily, maxAmount: '100', currency: USD}", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendDaily, "USD", "87.51", 3)}, declined, "R"},
		{"spend single authorization over", "spend: {window: Daily, maxAmount: '10', currency: USD}", purchase(), Card{}, declined, "R"},
		{"spend stale window is not counted", "spend: {window: Daily, maxAmount: '100', currency: USD}", purchase(),
			Card{Spend: &cardsv1alpha1.CardSpend{Windows: []cardsv1alpha1.SpendWindow{{Window: cardsv1alpha1.SpendDaily, Currency: "USD",
				Amount: "99.00", Count: 1, Start: &metav1.Time{Time: t0.Add(-36 * time.Hour)}}}}}, approved, ""},
		{"spend other window kind is not counted", "spend: {window: Daily, maxAmount: '100', currency: USD}", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendWeekly, "USD", "99.00", 1)}, approved, ""},
		{"spend all time", "spend: {window: AllTime, maxAmount: '100', currency: USD}", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendAllTime, "USD", "90.00", 1)}, declined, "R"},
		{"spend count below", "spend: {window: Weekly, maxCount: 3, currency: USD}", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendWeekly, "USD", "1", 2)}, approved, ""},
		{"spend count reached", "spend: {window: Weekly, maxCount: 3, currency: USD}", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendWeekly, "USD", "1", 3)}, declined, "R"},
		{"spend count zero", "spend: {window: Weekly, maxCount: 0}", purchase(), Card{}, declined, "R"},
		{"spend count without currency counts every currency", "spend: {window: Monthly, maxCount: 3}", purchase(),
			Card{Spend: &cardsv1alpha1.CardSpend{Windows: append(spendOf(cardsv1alpha1.SpendMonthly, "EUR", "1", 2).Windows,
				spendOf(cardsv1alpha1.SpendMonthly, "USD", "1", 1).Windows...)}}, declined, "R"},
		{"spend count with currency counts that currency", "spend: {window: Monthly, maxCount: 3, currency: USD}", purchase(),
			Card{Spend: &cardsv1alpha1.CardSpend{Windows: append(spendOf(cardsv1alpha1.SpendMonthly, "EUR", "1", 2).Windows,
				spendOf(cardsv1alpha1.SpendMonthly, "USD", "1", 1).Windows...)}}, approved, ""},
		{"spend amount and count: count declines", "spend: {window: Daily, maxAmount: '1000', currency: USD, maxCount: 1}", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendDaily, "USD", "1", 1)}, declined, "R"},
		{"spend other currency declines", "spend: {window: Daily, maxAmount: '100', currency: EUR}", purchase(), Card{}, declined, cardsv1alpha1.DecisionCurrencyMismatch},
		{"spend other currency skipped", "spend: {window: Daily, maxAmount: '100', currency: EUR, otherCurrencies: skip}", purchase(), Card{}, approved, ""},
		{"spend of another currency is not counted", "spend: {window: Daily, maxAmount: '100', currency: USD}", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendDaily, "EUR", "99.00", 1)}, approved, ""},

		{"condition true", "condition: transaction.channel == 'ECOMMERCE'", purchase(), Card{}, declined, "R"},
		{"condition false", "condition: transaction.channel == 'ATM'", purchase(), Card{}, approved, ""},
		{"condition on labels", `condition: "card.labels.?atm.orValue('') != 'allowed'"`, purchase(),
			Card{Labels: map[string]string{"atm": "allowed"}}, approved, ""},
		{"condition on phase", "condition: card.phase != 'Active'", purchase(), Card{Phase: cardsv1alpha1.CardFrozen}, declined, "R"},
		{"condition on balance", "condition: has(card.balanceMinor) && transaction.amountMinor > card.balanceMinor", purchase(),
			Card{Balance: &cardsv1alpha1.Money{Value: "12.49", Currency: "USD"}}, declined, "R"},
		{"condition on absent balance", "condition: has(card.balanceMinor) && transaction.amountMinor > card.balanceMinor", purchase(),
			Card{}, approved, ""},
		{"condition on spend", "condition: card.spend['Daily'].amountMinor + transaction.amountMinor > 10000", purchase(),
			Card{Spend: spendOf(cardsv1alpha1.SpendDaily, "USD", "87.51", 3)}, declined, "R"},
		{"condition on now", "condition: now.getHours() == 12", purchase(), Card{}, declined, "R"},
		{"condition runtime error fails closed", "condition: card.labels['atm'] != 'allowed'", purchase(), Card{}, declined, cardsv1alpha1.DecisionRuleError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := mustParse(t, "rules:\n- name: r\n  reason: R\n  "+c.rule+"\n")
			d := rs.Evaluate(c.tx, c.card, t0)
			if d.Outcome != c.want || d.Reason != c.reason {
				t.Fatalf("got %s %q, want %s %q (errors %v)", d.Outcome, d.Reason, c.want, c.reason, d.Errors)
			}
			if c.want == declined && (d.Rule != "r" || d.Mode != cardsv1alpha1.RuleEnforce) {
				t.Errorf("rule %q mode %q, want r enforce", d.Rule, d.Mode)
			}
			if c.want == approved && (d.Rule != "" || d.Mode != "") {
				t.Errorf("default approval names rule %q mode %q", d.Rule, d.Mode)
			}
		})
	}
}

// TestCELVariables pins every CEL variable's value and type: money as decimal strings and integer minor units.
func TestRulesCELVariables(t *testing.T) {
	card := Card{Namespace: "payments", Name: "upay-main-c-1", Labels: map[string]string{"team": "growth"},
		Phase: cardsv1alpha1.CardActive, Balance: &cardsv1alpha1.Money{Value: "250.019", Currency: "USD"},
		Spend: &cardsv1alpha1.CardSpend{Windows: []cardsv1alpha1.SpendWindow{
			spendOf(cardsv1alpha1.SpendDaily, "USD", "20.001", 2).Windows[0],
			spendOf(cardsv1alpha1.SpendMonthly, "USD", "300.00", 9).Windows[0],
			spendOf(cardsv1alpha1.SpendDaily, "EUR", "5.00", 1).Windows[0],
		}}}
	cases := []struct {
		name string
		tx   Transaction
		card Card
		cond string
	}{
		{"transaction", purchase(withCountry("usa")), card, `transaction.id == 'tx-1' && transaction.amount == '12.50' &&
			transaction.amountMinor == 1250 && transaction.currency == 'USD' && transaction.mcc == '5814' &&
			transaction.merchantName == 'Coffee Bar' && transaction.merchantCountry == 'US' && transaction.channel == 'ECOMMERCE'`},
		{"amount is normalized", purchase(withAmount("7.5", "usd")), Card{}, `transaction.amount == '7.50' && transaction.currency == 'USD' && transaction.amountMinor == 750`},
		{"amount keeps precision and rounds minor units up", purchase(withAmount("1.001", "USD")), Card{}, `transaction.amount == '1.001' && transaction.amountMinor == 101`},
		{"yen has no minor unit", purchase(withAmount("500", "JPY")), Card{}, `transaction.amountMinor == 500`},
		{"dinar has three", purchase(withAmount("1.005", "KWD")), Card{}, `transaction.amountMinor == 1005`},
		{"card", purchase(), card, `card.namespace == 'payments' && card.name == 'upay-main-c-1' && card.labels.team == 'growth' &&
			card.phase == 'Active' && card.balanceMinor == 25001 && card.balanceCurrency == 'USD'`},
		{"spend in the transaction's currency, rounded up", purchase(), card, `card.spend.Daily.amountMinor == 2001 && card.spend.Daily.count == 2 &&
			card.spend.Weekly.amountMinor == 0 && card.spend.Weekly.count == 0 && card.spend.Monthly.count == 9 && card.spend.AllTime.count == 0`},
		{"spend of the other currency", purchase(withAmount("1", "EUR")), card, `card.spend.Daily.amountMinor == 500 && card.spend.Daily.count == 1 && card.spend.Monthly.count == 0`},
		{"absent balance and labels", purchase(), Card{}, `!has(card.balanceMinor) && card.balanceCurrency == '' && size(card.labels) == 0 && size(card.spend) == 4`},
		{"now", purchase(), Card{}, `now == timestamp('2026-03-11T12:00:00Z') && now.getDayOfWeek() == 3 && now.getHours('Asia/Tokyo') == 21`},
		{"strings and sets extensions", purchase(), card, `transaction.merchantName.lowerAscii().contains('coffee') && sets.contains(['5814', '5812'], [transaction.mcc])`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := mustParse(t, "rules:\n- name: r\n  reason: R\n  condition: |\n    "+strings.ReplaceAll(c.cond, "\n", "\n    ")+"\n")
			if d := rs.Evaluate(c.tx, c.card, t0); d.Outcome != declined || d.Reason != "R" {
				t.Errorf("condition did not hold: %s %s %v", d.Outcome, d.Reason, d.Errors)
			}
		})
	}
}

// TestFailClosed: run-time errors, the cost limit and unusable amounts decline.
func TestRulesFailClosed(t *testing.T) {
	rs := mustParse(t, `rules:
- name: atm
  reason: ATM_NOT_ALLOWED
  mode: shadow
  condition: card.labels['atm'] != 'allowed'
- name: loop
  reason: TOO_MANY_LABELS
  condition: card.labels.exists(k, k.startsWith('x') && k.endsWith('y') && k.contains('z'))
`)
	d := rs.Evaluate(purchase(), Card{}, t0)
	if d.Outcome != approved || len(d.Shadow) != 1 || d.Shadow[0].Reason != cardsv1alpha1.DecisionRuleError || d.Shadow[0].Rule != "atm" {
		t.Errorf("shadow error: %+v", d)
	}
	if len(d.Errors) != 1 || !strings.HasPrefix(d.Errors[0], "rule atm: no such key: atm") {
		t.Errorf("errors %q", d.Errors)
	}
	many := map[string]string{}
	for i := range 5000 {
		many[strings.Repeat("a", i%50)+string(rune('a'+i%26))+strings.Repeat("b", i/26)] = "v"
	}
	d = rs.Evaluate(purchase(), Card{Labels: many}, t0)
	if d.Outcome != declined || d.Rule != "loop" || d.Reason != cardsv1alpha1.DecisionRuleError {
		t.Errorf("cost limit: %+v", d)
	}
	if len(d.Errors) != 2 || !strings.Contains(d.Errors[1], "cost limit exceeded") {
		t.Errorf("errors %q", d.Errors)
	}
	for _, m := range []cardsv1alpha1.Money{{Value: "", Currency: "USD"}, {Value: "-1.00", Currency: "USD"}, {Value: "1e3", Currency: "USD"},
		{Value: "abc", Currency: "USD"}, {Value: "1.00", Currency: ""}, {Value: "1.00", Currency: "US"}, {Value: "99999999999999999999", Currency: "USD"}} {
		d := mustParse(t, "rules: []").Evaluate(Transaction{Amount: m}, Card{}, t0)
		if d.Outcome != declined || d.Reason != cardsv1alpha1.DecisionInvalidAmount || d.Rule != "" || d.Mode != "" {
			t.Errorf("%+v: %+v", m, d)
		}
	}
}

// TestShadow: shadow rules never decide but are all evaluated and recorded in order, also after an enforce
// rule declined; enforce rules after the deciding one are not evaluated.
func TestRulesShadow(t *testing.T) {
	rs := mustParse(t, `rules:
- {name: shadow-a, reason: A, mode: shadow, condition: 'true'}
- {name: enforce-b, reason: B, condition: "transaction.mcc == '7995'"}
- {name: shadow-c, reason: C, mode: shadow, mcc: {block: ['7995']}}
- {name: enforce-d, reason: D, condition: "card.labels['missing'] == 'x'"}
- {name: shadow-e, reason: E, mode: shadow, amount: {max: '1', currency: USD}}
- {name: shadow-f, reason: F, mode: shadow, condition: 'false'}
`)
	rs.Version = "payments/card-rules@18342"
	d := rs.Evaluate(purchase(withMCC("7995")), Card{}, t0)
	want := Decision{AuthorizationDecision: cardsv1alpha1.AuthorizationDecision{
		RuleResult:     cardsv1alpha1.RuleResult{Outcome: declined, Rule: "enforce-b", Reason: "B", Mode: cardsv1alpha1.RuleEnforce},
		RuleSetVersion: "payments/card-rules@18342",
		Shadow: []cardsv1alpha1.RuleResult{
			{Outcome: declined, Rule: "shadow-a", Reason: "A", Mode: cardsv1alpha1.RuleShadow},
			{Outcome: declined, Rule: "shadow-c", Reason: "C", Mode: cardsv1alpha1.RuleShadow},
			{Outcome: declined, Rule: "shadow-e", Reason: "E", Mode: cardsv1alpha1.RuleShadow},
		},
	}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
	// Without the gambling MCC, enforce-d runs and fails closed; the shadow rules still only record.
	d = rs.Evaluate(purchase(), Card{}, t0)
	if d.Outcome != declined || d.Rule != "enforce-d" || d.Reason != cardsv1alpha1.DecisionRuleError || len(d.Shadow) != 2 {
		t.Errorf("got %+v", d)
	}
	d = rs.Evaluate(purchase(), Card{Labels: map[string]string{"missing": "y"}}, t0)
	if d.Outcome != approved || d.Rule != "" || d.Reason != "" || d.Mode != "" || len(d.Shadow) != 2 {
		t.Errorf("shadow rules changed the outcome: %+v", d)
	}
}

func TestRulesDefaultDecision(t *testing.T) {
	rs := mustParse(t, "defaultDecision: decline\nrules:\n- {name: a, reason: A, mcc: {block: ['7995']}}\n")
	d := rs.Evaluate(purchase(), Card{}, t0)
	if d.Outcome != declined || d.Reason != cardsv1alpha1.DecisionDefaultDecline || d.Rule != "" || d.Mode != "" {
		t.Errorf("default decline: %+v", d)
	}
	if d := rs.Evaluate(purchase(withMCC("7995")), Card{}, t0); d.Rule != "a" || d.Reason != "A" {
		t.Errorf("rule: %+v", d)
	}
	rs = mustParse(t, "rules: []\n")
	if d := rs.Evaluate(purchase(), Card{}, t0); d.Outcome != approved || d.Reason != "" || d.Shadow != nil || d.CountsToward != nil {
		t.Errorf("default approve: %+v", d)
	}
}

func TestRulesSelector(t *testing.T) {
	cases := []struct {
		selector string
		labels   map[string]string
		want     bool
	}{
		{"", nil, true},
		{"", map[string]string{"team": "growth"}, true},
		{"selector: {}", nil, true},
		{"selector: {matchLabels: {team: growth}}", map[string]string{"team": "growth", "atm": "allowed"}, true},
		{"selector: {matchLabels: {team: growth}}", map[string]string{"team": "ops"}, false},
		{"selector: {matchLabels: {team: growth}}", nil, false},
		{"selector: {matchExpressions: [{key: tier, operator: In, values: [gold, platinum]}]}", map[string]string{"tier": "gold"}, true},
		{"selector: {matchExpressions: [{key: tier, operator: In, values: [gold, platinum]}]}", map[string]string{"tier": "basic"}, false},
		{"selector: {matchExpressions: [{key: frozen-by-risk, operator: DoesNotExist}]}", map[string]string{"tier": "basic"}, true},
		{"selector: {matchExpressions: [{key: frozen-by-risk, operator: DoesNotExist}]}", map[string]string{"frozen-by-risk": ""}, false},
	}
	for _, c := range cases {
		rs := mustParse(t, c.selector+"\nrules: []\n")
		if got := rs.Matches(c.labels); got != c.want {
			t.Errorf("%q matches %v: %v, want %v", c.selector, c.labels, got, c.want)
		}
	}
	if (&RuleSet{}).Matches(nil) != true {
		t.Error("a RuleSet without a selector must match every card")
	}
}

// TestCountsToward: the windows an approval is recorded in are those of the spend rules and those the
// conditions read.
func TestRulesCountsToward(t *testing.T) {
	cases := []struct {
		rules string
		want  []cardsv1alpha1.SpendWindowKind
	}{
		{"- {name: a, reason: A, mcc: {block: ['7995']}}", nil},
		{"- {name: a, reason: A, spend: {window: Monthly, maxCount: 3}}\n- {name: b, reason: B, mode: shadow, spend: {window: Daily, maxCount: 3}}",
			[]cardsv1alpha1.SpendWindowKind{"Daily", "Monthly"}},
		{"- {name: a, reason: A, condition: \"card.spend['Weekly'].count > 3\"}", []cardsv1alpha1.SpendWindowKind{"Weekly"}},
		{"- {name: a, reason: A, condition: card.spend.AllTime.count > 3}", []cardsv1alpha1.SpendWindowKind{"AllTime"}},
		{"- {name: a, reason: A, condition: \"card.spend[?'Daily'].hasValue()\"}", []cardsv1alpha1.SpendWindowKind{"Daily"}},
		{"- {name: a, reason: A, condition: \"card.spend.?Monthly.hasValue()\"}", []cardsv1alpha1.SpendWindowKind{"Monthly"}},
		{"- {name: a, reason: A, condition: \"card.spend[card.labels.?w.orValue('Daily')].count > 3\"}", windowOrder},
		{"- {name: a, reason: A, condition: \"card.spend.exists(w, card.spend[w].count > 3)\"}", windowOrder},
		{"- {name: a, reason: A, condition: card.labels.spend == 'x'}", nil},
	}
	for _, c := range cases {
		rs := mustParse(t, "rules:\n"+c.rules+"\n")
		d := rs.Evaluate(purchase(), Card{}, t0)
		if !reflect.DeepEqual(d.CountsToward, c.want) {
			t.Errorf("%s\ngot %v, want %v", c.rules, d.CountsToward, c.want)
		}
	}
}

// TestEvaluateDoesNotShareState: CountsToward is a copy; concurrent evaluations of one set are independent.
func TestRulesEvaluateDoesNotShareState(t *testing.T) {
	rs := mustParse(t, "rules:\n- {name: a, reason: A, spend: {window: Daily, maxCount: 3}}\n- {name: b, reason: B, condition: card.labels.team == 'x'}\n")
	d := rs.Evaluate(purchase(), Card{Labels: map[string]string{"team": "y"}}, t0)
	d.CountsToward[0] = cardsv1alpha1.SpendAllTime
	if rs.countsToward[0] != cardsv1alpha1.SpendDaily {
		t.Fatal("CountsToward aliases the rule set")
	}
	done := make(chan Decision)
	for i := range 8 {
		go func() {
			team := "x"
			if i%2 == 0 {
				team = "y"
			}
			done <- rs.Evaluate(purchase(), Card{Labels: map[string]string{"team": team}}, t0)
		}()
	}
	declines := 0
	for range 8 {
		if d := <-done; d.Outcome == declined {
			declines++
		}
	}
	if declines != 4 {
		t.Errorf("%d declines, want 4", declines)
	}
}
