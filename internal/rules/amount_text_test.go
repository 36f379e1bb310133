package rules

import (
	"errors"
	"strings"
	"testing"
)

// TestRulesConditionRefusesAmountTextComparison: transaction.amount is a decimal string, so an ordering
// comparison of it compares text ("60.00" > "500" is true) and a limit written that way silently approves.
// It is refused at compile time, at the line (and column of the operator) where it is written.
func TestRulesConditionRefusesAmountTextComparison(t *testing.T) {
	const hint = "compare transaction.amountMinor (int, minor units) instead"
	// rule is a rule set of one rule with this condition, double-quoted for YAML.
	rule := func(condition string) string {
		return "rules:\n- name: a\n  reason: X\n  condition: \"" + strings.ReplaceAll(condition, `"`, `\"`) + "\"\n"
	}
	refused := []struct {
		name, src, want string
	}{
		{"greater", rule(`transaction.amount > "500"`),
			`line 4: rule a: condition: transaction.amount is a decimal string, so > compares text ("60.00" > "500" is true): ` + hint + " (column 20)"},
		{"greater or equal", rule(`transaction.amount >= "500"`), "line 4: rule a: condition: transaction.amount is a decimal string, so >= compares text"},
		{"less", rule(`transaction.amount < "500.00"`), "line 4: rule a: condition: transaction.amount is a decimal string, so < compares text"},
		{"less or equal", rule(`transaction.amount <= "500"`), "line 4: rule a: condition: transaction.amount is a decimal string, so <= compares text"},
		{"amount on the right", rule(`'500' < transaction.amount`),
			`line 4: rule a: condition: transaction.amount is a decimal string, so < compares text ("60.00" > "500" is true): ` + hint + " (column 7)"},
		{"amount on the right, or equal", rule(`'500' >= transaction.amount`), "line 4: rule a: condition: transaction.amount is a decimal string, so >= compares text"},
		{"against another string", rule(`transaction.amount > card.labels.?limit.orValue('0')`), "so > compares text"},
		{"inside and", rule(`transaction.channel == 'ATM' && transaction.amount > '200'`), "so > compares text"},
		{"inside or", rule(`transaction.mcc == '7995' || (transaction.currency == 'USD' && transaction.amount >= '1000')`), "so >= compares text"},
		{"inside not", rule(`!(transaction.amount <= '50')`), "so <= compares text"},
		{"inside a ternary", rule(`transaction.currency == 'USD' ? transaction.amount > '500' : false`), "so > compares text"},
		{"inside a macro", rule(`card.labels.exists(k, transaction.amount > card.labels[k])`), "so > compares text"},
		{"optional select", rule(`transaction.?amount.orValue('0') > '500'`), "so > compares text"},
		{"optional select value", rule(`transaction.?amount.value() > '500'`), "so > compares text"},
		{"string conversion", rule(`string(transaction.amount) > '500'`), "so > compares text"},
		{"dyn", rule(`dyn(transaction.amount) > '500'`), "so > compares text"},
		{"bytes", rule(`bytes(transaction.amount) > b'500'`), "so > compares text"},
		{"trim", rule(`transaction.amount.trim() > '500'`), "so > compares text"},
		{"concatenation", rule(`'0' + transaction.amount < '0500'`), "so < compares text"},
		{"integer part", rule(`transaction.amount.split('.')[0] > '500'`), "so > compares text"},
		{"substring", rule(`transaction.amount.substring(0, 3) >= '500'`), "so >= compares text"},
		{"multi-line block", "rules:\n- name: a\n  reason: X\n  condition: |\n    transaction.channel == 'POS' &&\n      transaction.mcc != '5411' &&\n      transaction.amount > '500'\n",
			"line 7: rule a: condition: transaction.amount is a decimal string, so > compares text (\"60.00\" > \"500\" is true): " + hint + " (column 22)"},
		{"multi-line quoted", "rules:\n- name: a\n  reason: X\n  condition: \"transaction.channel == 'POS' &&\n    transaction.amount < '5'\"\n",
			"line 4: rule a: condition: transaction.amount is a decimal string, so < compares text"},
		{"second rule", "rules:\n- name: a\n  reason: X\n  condition: transaction.amountMinor > 50000\n- name: b\n  reason: Y\n  condition: transaction.amount > '500'\n",
			"line 7: rule b: condition: transaction.amount is a decimal string, so > compares text"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.src)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T, want *Error", err)
			}
			if !strings.Contains(e.Error(), c.want) || !strings.HasSuffix(e.Error(), ")") || !strings.Contains(e.Error(), hint) {
				t.Errorf("got  %s\nwant %s ... %s", e.Error(), c.want, hint)
			}
			if strings.HasPrefix(c.want, "line ") && !strings.HasPrefix(e.Error(), c.want) {
				t.Errorf("got  %s\nwant %s", e.Error(), c.want)
			}
		})
	}

	allowed := []string{
		`transaction.amountMinor > 50000`,
		`50000 <= transaction.amountMinor`,
		`transaction.amount == "12.50"`,
		`transaction.amount != '12.50' && transaction.amount in ['1.00', '2.00']`,
		`transaction.amount.startsWith("1")`,
		`transaction.amount.endsWith('.00') || transaction.amount.contains('.9') || transaction.amount.matches('^[0-9]{4,}')`,
		`transaction.amount.size() > 6`,                       // the length is an int: no text comparison
		`int(transaction.amount.split('.')[0]) >= 500`,        // a number, compared as a number
		`has(transaction.amount) && transaction.mcc > '7000'`, // other strings may be ordered
		`transaction.merchantName.lowerAscii() < 'm'`,         // text that is text
		`(transaction.amount == '1.00' ? 'a' : 'b') < 'b'`,    // the amount decides, but the text compared is not it
		`card.balanceMinor < transaction.amountMinor`,         // ints
		`card.spend.Daily.amountMinor + transaction.amountMinor > 100000`,
	}
	for _, condition := range allowed {
		t.Run("allowed "+condition, func(t *testing.T) {
			if _, err := Parse([]byte(rule(condition))); err != nil {
				t.Errorf("refused %s: %v", condition, err)
			}
		})
	}
}
