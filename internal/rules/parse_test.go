package rules

import (
	"k8s.io/apimachinery/pkg/labels"

	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

func mustParse(t testing.TB, src string) *RuleSet {
	t.Helper()
	rs, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	return rs
}

func TestRulesParseExample(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Default != cardsv1alpha1.DecisionApproved || rs.StandIn != cardsv1alpha1.DecisionDeclined {
		t.Errorf("default %s, stand-in %s", rs.Default, rs.StandIn)
	}
	if rs.TimeZone.String() != "Europe/Berlin" {
		t.Errorf("time zone %s", rs.TimeZone)
	}
	if rs.Len() != 6 {
		t.Errorf("%d rules, want 6", rs.Len())
	}
	if got := rs.Selector.String(); got != "team=growth" {
		t.Errorf("selector %q", got)
	}
	want := []cardsv1alpha1.SpendWindowKind{cardsv1alpha1.SpendDaily, cardsv1alpha1.SpendWeekly}
	if !reflect.DeepEqual(rs.countsToward, want) {
		t.Errorf("countsToward %v, want %v", rs.countsToward, want)
	}
}

func TestRulesParseDefaults(t *testing.T) {
	rs := mustParse(t, "rules: []\n")
	if rs.Default != cardsv1alpha1.DecisionApproved || rs.StandIn != cardsv1alpha1.DecisionDeclined || rs.TimeZone != time.UTC ||
		!rs.Selector.Empty() || rs.Len() != 0 || len(rs.countsToward) != 0 {
		t.Errorf("defaults: %+v", rs)
	}
	rs = mustParse(t, "defaultDecision: Decline\nstandInDecision: approve\ntimeZone: Asia/Tokyo\nselector: {}\n")
	if rs.Default != cardsv1alpha1.DecisionDeclined || rs.StandIn != cardsv1alpha1.DecisionApproved || rs.TimeZone.String() != "Asia/Tokyo" || !rs.Selector.Empty() {
		t.Errorf("explicit: %+v", rs)
	}
}

// TestParseErrors checks the line, rule and message of every kind of mistake.
func TestRulesParseErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"empty", "", "line 1: the rule set is empty"},
		{"only a comment", "# nothing\n", "line 1: the rule set is empty"},
		{"null document", "~\n", "line 1: the rule set is empty"},
		// The YAML library reports the line before an unclosed flow sequence; good enough to find it.
		{"yaml syntax", "rules:\n- name: a\n  reason: [X\n", "line 2: invalid YAML: did not find expected ',' or ']'"},
		{"yaml mapping", "rules:\n- name: a\n  reason: X: Y\n", "line 3: invalid YAML: mapping values are not allowed in this context"},
		{"two documents", "rules: []\n---\nrules: []\n", "line 2: more than one YAML document: a rule set is one document"},
		{"not a mapping", "- a\n", "line 1: expected a mapping"},
		{"unknown top-level field", "rules: []\ndefault: approve\n",
			`line 2: unknown field "default" (expected one of defaultDecision, standInDecision, timeZone, selector, rules)`},
		{"duplicate key", "timeZone: UTC\ntimeZone: UTC\n", "line 2: timeZone is given twice"},
		{"default decision", "defaultDecision: maybe\n", `line 1: defaultDecision: "maybe" is not approve or decline`},
		{"stand-in decision", "standInDecision: [approve]\n", "line 1: standInDecision: expected a string"},
		{"time zone", "timeZone: Mars/Olympus\n", `line 1: timeZone: "Mars/Olympus" is not an IANA time zone name (e.g. UTC, Europe/Berlin)`},
		{"local time zone", "timeZone: Local\n", `line 1: timeZone: "Local" is not an IANA time zone name (e.g. UTC, Europe/Berlin)`},
		{"selector field", "selector:\n  matchLabel: {a: b}\n", `line 2: selector: unknown field "matchLabel"`},
		{"selector operator", "selector:\n  matchExpressions:\n  - {key: a, operator: Maybe}\n", `line 2: selector: "Maybe" is not a valid label selector operator`},
		{"rules not a list", "rules: {}\n", "line 1: rules: expected a list"},
		{"rule not a mapping", "rules:\n- block-gambling\n", "line 2: rules[0]: expected a mapping"},
		{"name missing", "rules:\n- reason: X\n  condition: 'true'\n", "line 2: rules[0]: name is required"},
		{"name invalid", "rules:\n- name: Block_Gambling\n  reason: X\n  condition: 'true'\n",
			`line 2: rules[0]: name "Block_Gambling" must be lower-case letters, digits and '-' (at most 128)`},
		{"name too long", "rules:\n- name: " + strings.Repeat("a", 129) + "\n  reason: X\n  condition: 'true'\n",
			`line 2: rules[0]: name "` + strings.Repeat("a", 129) + `" must be lower-case letters, digits and '-' (at most 128)`},
		{"name twice", "rules:\n- name: a\n  reason: X\n  condition: 'true'\n- name: a\n  reason: X\n  condition: 'true'\n",
			"line 5: rule a: name is used twice (also by rules[0])"},
		{"reason missing", "rules:\n- name: a\n  condition: 'true'\n", "line 2: rule a: reason is required (a decline reason code such as BLOCKED_MCC)"},
		{"reason invalid", "rules:\n- name: a\n  reason: blocked-mcc\n  condition: 'true'\n", `line 3: rule a: reason: "blocked-mcc" must match ^[A-Z][A-Z0-9_]*$ (at most 64)`},
		{"reason too long", "rules:\n- name: a\n  reason: " + strings.Repeat("X", 65) + "\n  condition: 'true'\n",
			`line 3: rule a: reason: "` + strings.Repeat("X", 65) + `" must match ^[A-Z][A-Z0-9_]*$ (at most 64)`},
		{"mode", "rules:\n- name: a\n  reason: X\n  mode: audit\n  condition: 'true'\n", `line 4: rule a: mode: "audit" is not enforce or shadow`},
		{"unknown rule field", "rules:\n- name: a\n  reason: X\n  condition: 'true'\n  action: decline\n",
			`line 5: rule a: unknown field "action" (expected one of name, description, reason, mode, mcc, merchantCountry, amount, spend, condition)`},
		{"no matcher", "rules:\n- name: a\n  reason: X\n", "line 2: rule a: a rule needs one of mcc, merchantCountry, amount, spend, condition"},
		{"two matchers", "rules:\n- name: a\n  reason: X\n  mcc: {block: ['7995']}\n  condition: 'true'\n",
			"line 5: rule a: a rule has exactly one matcher, this one has mcc and condition"},
		{"mcc allow and block", "rules:\n- name: a\n  reason: X\n  mcc: {allow: ['5411'], block: ['7995']}\n", "line 4: rule a: mcc: give exactly one of allow or block"},
		{"mcc neither", "rules:\n- name: a\n  reason: X\n  mcc: {}\n", "line 4: rule a: mcc: give exactly one of allow or block"},
		{"mcc empty", "rules:\n- name: a\n  reason: X\n  mcc: {block: []}\n", "line 4: rule a: mcc.block: the list is empty"},
		{"mcc not a list", "rules:\n- name: a\n  reason: X\n  mcc: {block: '7995'}\n", "line 4: rule a: mcc.block: expected a list"},
		{"mcc code", "rules:\n- name: a\n  reason: X\n  mcc:\n    block:\n    - '7995'\n    - '799'\n",
			`line 7: rule a: mcc: "799" is not a 4-digit merchant category code or a range such as 7800-7802`},
		{"mcc range backwards", "rules:\n- name: a\n  reason: X\n  mcc: {block: ['7802-7800']}\n", `line 4: rule a: mcc: range "7802-7800" runs backwards`},
		{"mcc open range", "rules:\n- name: a\n  reason: X\n  mcc: {block: ['7800-']}\n",
			`line 4: rule a: mcc: "7800-" is not a 4-digit merchant category code or a range such as 7800-7802`},
		{"country", "rules:\n- name: a\n  reason: X\n  merchantCountry:\n    allow: [DE, XX]\n",
			`line 5: rule a: merchantCountry: "XX" is not an ISO 3166-1 alpha-2 or alpha-3 country code`},
		{"country alpha-3", "rules:\n- name: a\n  reason: X\n  merchantCountry: {block: [DEU, GERMANY]}\n",
			`line 4: rule a: merchantCountry: "GERMANY" is not an ISO 3166-1 alpha-2 or alpha-3 country code`},
		{"amount max missing", "rules:\n- name: a\n  reason: X\n  amount: {currency: USD}\n", "line 4: rule a: amount.max is required"},
		{"amount currency missing", "rules:\n- name: a\n  reason: X\n  amount: {max: '5'}\n", "line 4: rule a: amount.currency is required"},
		{"amount negative", "rules:\n- name: a\n  reason: X\n  amount: {max: '-5', currency: USD}\n",
			`line 4: rule a: amount.max: "-5" is not a non-negative decimal amount such as "500.00"`},
		{"amount exponent", "rules:\n- name: a\n  reason: X\n  amount: {max: 5e2, currency: USD}\n",
			`line 4: rule a: amount.max: "5e2" is not a non-negative decimal amount such as "500.00"`},
		{"amount currency", "rules:\n- name: a\n  reason: X\n  amount: {max: '5', currency: UDS}\n",
			`line 4: rule a: amount.currency: "UDS" is not an ISO 4217 currency code`},
		{"amount other currencies", "rules:\n- name: a\n  reason: X\n  amount: {max: '5', currency: USD, otherCurrencies: allow}\n",
			`line 4: rule a: amount.otherCurrencies: "allow" is not decline or skip`},
		{"amount unknown field", "rules:\n- name: a\n  reason: X\n  amount:\n    max: '5'\n    min: '1'\n    currency: USD\n",
			`line 6: rule a: amount: unknown field "min" (expected one of max, currency, otherCurrencies)`},
		{"spend window", "rules:\n- name: daily-spend\n  reason: X\n  spend:\n    window: Hourly\n    maxCount: 3\n",
			`line 5: rule daily-spend: spend.window: "Hourly" is not Daily, Weekly, Monthly or AllTime`},
		{"spend window missing", "rules:\n- name: a\n  reason: X\n  spend: {maxCount: 3}\n", "line 4: rule a: spend.window is required (Daily, Weekly, Monthly or AllTime)"},
		{"spend no limit", "rules:\n- name: a\n  reason: X\n  spend: {window: Daily, currency: USD}\n", "line 4: rule a: spend needs maxAmount, maxCount or both"},
		{"spend amount without currency", "rules:\n- name: a\n  reason: X\n  spend: {window: Daily, maxAmount: '100'}\n",
			"line 4: rule a: spend.currency is required with maxAmount"},
		{"spend count", "rules:\n- name: a\n  reason: X\n  spend: {window: Daily, maxCount: -1}\n", `line 4: rule a: spend.maxCount: "-1" is not a non-negative integer`},
		{"spend count fraction", "rules:\n- name: a\n  reason: X\n  spend: {window: Daily, maxCount: 2.5}\n", `line 4: rule a: spend.maxCount: "2.5" is not a non-negative integer`},
		{"condition syntax", "rules:\n- name: a\n  reason: X\n  condition: \"transaction.channel == \"\n",
			"line 4: rule a: condition: Syntax error: mismatched input '<EOF>' expecting"},
		{"condition undefined field", "rules:\n- name: a\n  reason: X\n  condition: \"transaction.amont > 5\"\n",
			"line 4: rule a: condition: undefined field 'amont' (column 12)"},
		{"condition undeclared variable", "rules:\n- name: a\n  reason: X\n  condition: \"merchant.mcc == '7995'\"\n",
			"line 4: rule a: condition: undeclared reference to 'merchant' (in container '') (column 1)"},
		{"condition block line", "rules:\n- name: a\n  reason: X\n  condition: |\n    transaction.channel == 'ATM' &&\n      card.phse == 'Active'\n",
			"line 6: rule a: condition: undefined field 'phse' (column 7)"},
		{"condition folded line", "rules:\n- name: a\n  reason: X\n  condition: >\n    transaction.channel == 'ATM' &&\n\n      card.phse == 'Active'\n",
			"line 7: rule a: condition: undefined field 'phse' (column 7)"},
		{"condition not bool", "rules:\n- name: a\n  reason: X\n  condition: transaction.amountMinor + 1\n",
			"line 4: rule a: condition: must be a bool expression, this one is int"},
		{"condition string amount", "rules:\n- name: a\n  reason: X\n  condition: transaction.amount > 500\n",
			"line 4: rule a: condition: found no matching overload for '_>_' applied to '(string, int)' (column 20)"},
		{"condition double", "rules:\n- name: a\n  reason: X\n  condition: double(transaction.amount) > 500.0\n",
			"line 4: rule a: condition: doubles are not allowed, money is exact"},
		{"condition spend window", "rules:\n- name: a\n  reason: X\n  condition: card.spend['daily'].count > 3\n",
			`line 4: rule a: condition: card.spend has no window "daily": it has Daily, Weekly, Monthly and AllTime (column 11)`},
		{"condition spend field window", "rules:\n- name: a\n  reason: X\n  condition: card.spend.Hourly.count > 3\n",
			`line 4: rule a: condition: card.spend has no window "Hourly"`},
		{"condition cost", "rules:\n- name: a\n  reason: X\n  condition: card.labels.all(k, card.labels.exists(j, j.startsWith(k)))\n",
			"line 4: rule a: condition: estimated cost"},
		{"condition too long", "rules:\n- name: a\n  reason: X\n  condition: \"" + strings.Repeat("true && ", 600) + "true\"\n",
			"line 4: rule a: condition: longer than 4096 bytes"},
		{"too many shadow rules", "rules:\n" + shadowRules(33),
			"line 34: rule s32: more than 32 shadow rules"},
		{"too many rules", "rules:\n" + strings.Repeat("- {reason: X}\n", MaxRules+1), "line 2: rules: 257 rules, more than the limit of 256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.src)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T, want *Error", err)
			}
			if !strings.HasPrefix(e.Error(), c.want) {
				t.Errorf("got  %s\nwant %s", e.Error(), c.want)
			}
		})
	}
}

func shadowRules(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {name: s%d, reason: X, mode: shadow, condition: 'true'}\n", i)
	}
	return b.String()
}

func TestRulesErrorString(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{Line: 12, Rule: "daily-spend", Message: "spend.window: bad"}, "line 12: rule daily-spend: spend.window: bad"},
		{Error{Line: 3, Message: "timeZone: bad"}, "line 3: timeZone: bad"},
		{Error{Message: "bad"}, "bad"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// TestValidateListsEveryError: Validate reports every problem in document order; Parse the first.
func TestRulesValidateListsEveryError(t *testing.T) {
	src := `rules:
- name: a
  reason: bad
  condition: 'true'
- name: b
  reason: X
  spend: {window: Yearly, maxCount: 1}
timeZone: Nowhere/Else
`
	errs := Validate([]byte(src))
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		`line 3: rule a: reason: "bad" must match ^[A-Z][A-Z0-9_]*$ (at most 64)`,
		`line 7: rule b: spend.window: "Yearly" is not Daily, Weekly, Monthly or AllTime`,
		`line 8: timeZone: "Nowhere/Else" is not an IANA time zone name (e.g. UTC, Europe/Berlin)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := Parse([]byte(src)); err == nil || err.Error() != want[0] {
		t.Errorf("Parse: %v, want the first error", err)
	}
	if errs := Validate([]byte("rules: []\n")); errs != nil {
		t.Errorf("valid set: %v", errs)
	}
}

// TestParseAcceptsYAMLForms: unquoted numbers keep their text (0742 stays a code), anchors resolve, case is
// normalized where the format says so.
func TestRulesParseAcceptsYAMLForms(t *testing.T) {
	rs := mustParse(t, `
lists:
rules:
- name: codes
  reason: BLOCKED_MCC
  mcc: {block: [0742, 7995, " 7800 - 7802 "]}
- name: countries
  reason: BLOCKED_COUNTRY
  merchantCountry: {block: [de, fra]}
- name: amount
  reason: AMOUNT_LIMIT
  amount: {max: 500.00, currency: usd}
- name: spend
  reason: SPEND
  mode: Shadow
  spend: {window: daily, maxCount: 3}
`[len("\nlists:"):])
	r := rs.rules
	if !r[0].mccs.has(742) || !r[0].mccs.has(7995) || !r[0].mccs.has(7801) || r[0].mccs.has(7803) || r[0].mccs.has(7799) {
		t.Error("mcc list")
	}
	if !r[1].countries["DE"] || !r[1].countries["FR"] || len(r[1].countries) != 2 {
		t.Errorf("countries %v", r[1].countries)
	}
	if r[2].max.String() != "500" || r[2].currency != "USD" {
		t.Errorf("amount %s %s", r[2].max, r[2].currency)
	}
	if r[3].window != cardsv1alpha1.SpendDaily || r[3].mode != cardsv1alpha1.RuleShadow || r[3].currency != "" {
		t.Errorf("spend %+v", r[3])
	}
}

func FuzzRulesParse(f *testing.F) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("rules:\n- {name: a, reason: X, spend: {window: Daily, maxCount: 1}}\n"))
	f.Add([]byte("rules: [{name: a, reason: X, condition: 'card.spend[\"Daily\"].count > 1'}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T", err)
			}
			return
		}
		d := rs.Evaluate(Transaction{ID: "x", Amount: cardsv1alpha1.Money{Value: "1.00", Currency: "USD"}}, Card{}, time.Unix(0, 0))
		if d.Outcome != cardsv1alpha1.DecisionApproved && d.Outcome != cardsv1alpha1.DecisionDeclined {
			t.Fatalf("outcome %q", d.Outcome)
		}
	})
}

// TestSelectorOf: a broken rule set still tells which cards it would govern; when even that cannot be read, it
// governs them all (fail closed).
func TestSelectorOf(t *testing.T) {
	growth := labels.Set{"team": "growth"}
	other := labels.Set{"team": "ops"}
	cases := []struct {
		name, src   string
		growth, ops bool
	}{
		{"broken rule, good selector", "selector: {matchLabels: {team: growth}}\nrules:\n- name: x\n  reason: X\n  condition: 'transaction.('\n", true, false},
		{"no selector", "rules: [{name: x}]\n", true, true},
		{"broken selector", "selector: {matchLabels: 7}\nrules: []\n", true, true},
		{"not YAML", "rules: [\n", true, true},
		{"not a mapping", "- a\n", true, true},
	}
	for _, c := range cases {
		sel := SelectorOf([]byte(c.src))
		if sel.Matches(growth) != c.growth || sel.Matches(other) != c.ops {
			t.Errorf("%s: selector %q matches growth=%v ops=%v, want %v %v", c.name, sel, sel.Matches(growth), sel.Matches(other), c.growth, c.ops)
		}
	}
}
