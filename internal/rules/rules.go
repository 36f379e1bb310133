// Package rules is the authorization rules engine: it parses, validates and compiles a rule set (the
// `rules.yaml` of a ConfigMap labelled cards.cardplane.io/rule-set: "true"), evaluates it against one
// authorization request, and does the spend-ledger arithmetic the spending limits read. It is pure: no API
// server, no clock (the caller passes now), no I/O. docs/rules.md describes the format and the semantics.
//
// Decisions the package fixes (documented in docs/rules.md):
//   - Rules are evaluated in order and only decline. The first enforce rule that declines decides; every shadow
//     rule is evaluated and each one that would decline is recorded in Decision.Shadow. No enforce rule
//     declining means the set's default (Reason DEFAULT_DECLINE when that is decline).
//   - Fail closed: an amount or spend rule whose currency differs from the transaction's declines with reason
//     CURRENCY_MISMATCH (unless the rule says otherCurrencies: skip); a CEL condition that fails at run time
//     (missing map key, cost limit, non-bool result) declines with reason RULE_ERROR; a transaction whose
//     amount or currency is unusable is declined with reason INVALID_AMOUNT before any rule runs.
//   - Missing fields: an allow list declines a transaction without the field (no MCC, no country); a block
//     list does not.
//   - Money is exact (shopspring/decimal); CEL sees amounts as decimal strings and integer minor units, never
//     doubles, and a condition that uses a double is refused at compile time.
package rules

import (
	"fmt"
	"slices"
	"time"
	_ "time/tzdata" // timeZone must resolve in images without a zoneinfo database

	"k8s.io/apimachinery/pkg/labels"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// Limits of a rule set.
const (
	// MaxRules is the number of rules a set may hold.
	MaxRules = 256
	// MaxShadowRules is the number of shadow rules a set may hold, so Decision.Shadow always fits the API (32).
	MaxShadowRules = 32
	// MaxListEntries bounds an mcc or merchantCountry list.
	MaxListEntries = 1000
	// MaxConditionLength bounds one CEL condition, in bytes.
	MaxConditionLength = 4096
	// CostLimit bounds the cost of one CEL condition (CEL cost units, about one per operation), both as
	// estimated at compile time and as tracked at run time.
	CostLimit = 10_000
	// MaxRecentAuthorizations is how many authorization IDs the spend ledger remembers for idempotency.
	MaxRecentAuthorizations = 64
	// MaxSpendWindows is how many windows (kind x currency) the spend ledger keeps.
	MaxSpendWindows = 32
)

// Outcome is an authorization answer: Approved or Declined.
type Outcome = cardsv1alpha1.DecisionOutcome

// RuleSet is a parsed, validated and compiled rule set. It is immutable and safe for concurrent use.
type RuleSet struct {
	// Name is "namespace/name" of the ConfigMap; Version is "namespace/name@resourceVersion"; Revision is the
	// source revision the ConfigMap names (AnnotationRevision), if any. All are set by the caller after Parse;
	// Version and Revision are copied into every Decision.
	Name, Version, Revision string
	// Default is the outcome when no enforce rule declines; StandIn the outcome when the deadline passes.
	Default, StandIn Outcome
	// TimeZone is where daily, weekly (Monday) and monthly windows start at midnight.
	TimeZone *time.Location
	// Selector narrows the cards the set governs by their labels; labels.Everything() when absent.
	Selector labels.Selector

	rules []*rule
	// countsToward are the spend windows approvals are recorded in (in Daily, Weekly, Monthly, AllTime order).
	countsToward []cardsv1alpha1.SpendWindowKind
	// needCard is true when a condition is present, so Evaluate builds the CEL variables.
	needCard bool
}

// CountsToward is every spend window the set's rules read: an approval is counted in each of them.
func (rs *RuleSet) CountsToward() []cardsv1alpha1.SpendWindowKind {
	return slices.Clone(rs.countsToward)
}

// Len is the number of rules in the set.
func (rs *RuleSet) Len() int { return len(rs.rules) }

// Matches reports whether the set governs a card with these labels.
func (rs *RuleSet) Matches(cardLabels map[string]string) bool {
	if rs.Selector == nil {
		return true
	}
	return rs.Selector.Matches(labels.Set(cardLabels))
}

// Error is a problem in a rule set: the 1-based line in rules.yaml, the rule's name when known, and what is wrong.
type Error struct {
	Line    int
	Rule    string
	Message string
}

// Error renders "line 12: rule daily-spend: spend.window: ...".
func (e *Error) Error() string {
	s := e.Message
	if e.Rule != "" {
		s = "rule " + e.Rule + ": " + s
	}
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: %s", e.Line, s)
	}
	return s
}

// Transaction is the authorization request a rule set decides.
type Transaction struct {
	// ID is the provider's transaction ID; AuthorizationID the provider's authorization ID when it sends one.
	// The spend ledger remembers AuthorizationID (ID when empty) so a retried request is counted once.
	ID, AuthorizationID string
	// Amount in the transaction (merchant) currency.
	Amount cardsv1alpha1.Money
	// MCC is the 4-digit merchant category code; MerchantCountry an ISO 3166-1 alpha-2 or alpha-3 code.
	MCC, MerchantName, MerchantCountry, Channel string
}

// Card is what the rules may read of the card: identity, labels, phase, balance and the spend ledger.
type Card struct {
	Namespace, Name string
	Labels          map[string]string
	Phase           cardsv1alpha1.CardPhase
	// KYC is the holder's verification state as the card carries it ("" when no provider reported one).
	KYC     cardsv1alpha1.KYCState
	Balance *cardsv1alpha1.Money
	Spend   *cardsv1alpha1.CardSpend
}

// Decision is the answer of a rule set to one authorization.
type Decision struct {
	// AuthorizationDecision: Evaluate sets Outcome, Rule, Reason, Mode (the deciding rule's, empty for the
	// default), RuleSetVersion and Shadow; LatencyMicroseconds and DecidedAt are the caller's.
	cardsv1alpha1.AuthorizationDecision
	// CountsToward are the spend windows an approval must be added to (every window any spend rule of the
	// set uses, and every window a condition reads through card.spend, in the transaction's currency); empty
	// when the set needs no spend ledger.
	CountsToward []cardsv1alpha1.SpendWindowKind
	// Errors are the run-time failures of CEL conditions ("rule NAME: message"), each of which made its rule
	// decline (reason RULE_ERROR). For logs; they hold no card data.
	Errors []string
}
