package rules

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/shopspring/decimal"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/money"
)

// Evaluate decides one authorization. Rules run in order: the first enforce rule that declines decides; every
// shadow rule runs and each one that would decline is recorded in Shadow; when no enforce rule declines, the
// set's Default answers (Reason DEFAULT_DECLINE when it is a decline). Evaluate does not apply the selector:
// the caller picks the set (Matches). now is the decision time; card.Spend is read as of now.
func (rs *RuleSet) Evaluate(tx Transaction, card Card, now time.Time) Decision {
	var d Decision
	d.RuleSetVersion, d.RuleSetRevision = rs.Version, rs.Revision
	d.CountsToward = slices.Clone(rs.countsToward)
	amount, currency, ok := txAmount(tx)
	if !ok {
		d.Outcome, d.Reason = cardsv1alpha1.DecisionDeclined, cardsv1alpha1.DecisionInvalidAmount
		return d
	}
	e := evaluation{rs: rs, tx: &tx, card: &card, now: now, starts: newWindowStarts(now, rs.TimeZone), amount: amount, currency: currency}
	decided := false
	for _, r := range rs.rules {
		if decided && r.mode == cardsv1alpha1.RuleEnforce {
			continue
		}
		declines, reason := e.match(r, &d)
		if !declines {
			continue
		}
		res := cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined, Rule: r.name, Reason: reason, Mode: r.mode}
		if r.mode == cardsv1alpha1.RuleShadow {
			d.Shadow = append(d.Shadow, res)
		} else {
			d.RuleResult, decided = res, true
		}
	}
	if !decided {
		d.Outcome = rs.Default
		if d.Outcome == "" { // a RuleSet not made by Parse
			d.Outcome = cardsv1alpha1.DecisionApproved
		}
		if d.Outcome == cardsv1alpha1.DecisionDeclined {
			d.Reason = cardsv1alpha1.DecisionDefaultDecline
		}
	}
	return d
}

// evaluation is the state of one Evaluate call.
type evaluation struct {
	rs       *RuleSet
	tx       *Transaction
	card     *Card
	now      time.Time
	starts   *windowStarts
	amount   decimal.Decimal
	currency string
	vars     *vars // built on first use
}

// match reports whether r declines, and with which reason.
func (e *evaluation) match(r *rule, d *Decision) (bool, string) {
	switch r.kind {
	case kindMCC:
		code, ok := mccCode(e.tx.MCC)
		listed := ok && r.mccs.has(code)
		return listed != r.allow, r.reason
	case kindCountry:
		c, ok := country(e.tx.MerchantCountry)
		listed := ok && r.countries[c]
		return listed != r.allow, r.reason
	case kindAmount:
		if r.currency != e.currency {
			return !r.skipOtherCurrencies, cardsv1alpha1.DecisionCurrencyMismatch
		}
		return e.amount.GreaterThan(r.max), r.reason
	case kindSpend:
		if r.currency != "" && r.currency != e.currency {
			return !r.skipOtherCurrencies, cardsv1alpha1.DecisionCurrencyMismatch
		}
		if r.maxAmount != nil {
			spent, _ := current(e.card.Spend, r.window, e.currency, e.starts)
			if spent.Add(e.amount).GreaterThan(*r.maxAmount) {
				return true, r.reason
			}
		}
		if r.hasMaxCount {
			var count int64
			if r.currency == "" {
				count = countAll(e.card.Spend, r.window, e.starts)
			} else {
				_, count = current(e.card.Spend, r.window, e.currency, e.starts)
			}
			if count+1 > r.maxCount {
				return true, r.reason
			}
		}
		return false, r.reason
	case kindCondition:
		matched, err := evalCondition(r.program, e.celVars())
		if err != nil {
			d.Errors = append(d.Errors, "rule "+r.name+": "+err.Error())
			return true, cardsv1alpha1.DecisionRuleError
		}
		return matched, r.reason
	}
	return true, cardsv1alpha1.DecisionRuleError // unreachable: Parse gives every rule a matcher
}

// celVars builds the CEL variables once per evaluation.
func (e *evaluation) celVars() *vars {
	if e.vars != nil {
		return e.vars
	}
	tx := e.tx
	minor, _ := minorUnits(e.amount, e.currency, true)
	mc := strings.ToUpper(strings.TrimSpace(tx.MerchantCountry))
	if c, ok := country(mc); ok {
		mc = c
	}
	ct := &celTransaction{
		ID: tx.ID, Amount: string(money.Format(e.amount, e.currency)), AmountMinor: minor, Currency: e.currency,
		MCC: strings.TrimSpace(tx.MCC), MerchantName: tx.MerchantName, MerchantCountry: mc, Channel: tx.Channel,
	}
	c := e.card
	cc := &celCard{Namespace: c.Namespace, Name: c.Name, Labels: c.Labels, Phase: string(c.Phase), KYC: string(c.KYC),
		Spend: make(map[string]celSpend, len(windowOrder))}
	if cc.Labels == nil {
		cc.Labels = map[string]string{}
	}
	if c.Balance != nil {
		if b, err := decimal.NewFromString(string(c.Balance.Value)); err == nil {
			if bm, ok := minorUnits(b, c.Balance.Currency, false); ok {
				cc.BalanceMinor, cc.BalanceCurrency = &bm, c.Balance.Currency
			}
		}
	}
	for _, w := range windowOrder {
		amt, count := current(c.Spend, w, e.currency, e.starts)
		m, ok := minorUnits(amt, e.currency, true)
		if !ok {
			m = math.MaxInt64
		}
		cc.Spend[string(w)] = celSpend{AmountMinor: m, Count: count}
	}
	e.vars = &vars{tx: ct, card: cc, now: types.Timestamp{Time: e.now}}
	return e.vars
}

// txAmount is the transaction's amount and currency, when they are a non-negative decimal that fits int64 in
// minor units and an ISO 4217-shaped code.
func txAmount(tx Transaction) (decimal.Decimal, string, bool) {
	cur, err := money.Currency(tx.Amount.Currency)
	if err != nil {
		return decimal.Decimal{}, "", false
	}
	d, err := money.Parse(string(tx.Amount.Value))
	if err != nil || d.IsNegative() {
		return decimal.Decimal{}, "", false
	}
	if _, ok := minorUnits(d, cur, true); !ok {
		return decimal.Decimal{}, "", false
	}
	return d, cur, true
}

var maxInt64 = decimal.NewFromInt(math.MaxInt64)

// minorUnits converts a major-unit amount to whole minor units of its currency, rounding up (amounts, spend)
// or down (balances) when it has more decimals than the currency: the cautious direction for limits.
func minorUnits(d decimal.Decimal, currency string, up bool) (int64, bool) {
	m := d.Shift(money.Exponent(currency))
	if up {
		m = m.Ceil()
	} else {
		m = m.Floor()
	}
	if m.GreaterThan(maxInt64) || m.LessThan(maxInt64.Neg()) {
		return 0, false
	}
	return m.IntPart(), true
}

// mccCode reads a 4-digit merchant category code.
func mccCode(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if !mccRE.MatchString(s) {
		return 0, false
	}
	c, err := strconv.Atoi(s)
	return c, err == nil
}
