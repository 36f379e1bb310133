// Package mapping compiles and evaluates the GenericMapping of a WebhookEndpoint: CEL expressions over `body`
// (the parsed JSON) and `headers` (lower-case names to first values) that turn a callback into normalized
// events. It imports neither the adapter contract nor endpointconfig, so the WebhookEndpoint reconciler can
// call Compile at apply time without an import cycle; the generic adapter verifies callbacks and calls Decode.
//
// What the package fixes, since everything about the provider comes from the mapping:
//   - JSON numbers reach CEL exactly: integers that fit int64 as int, every other number (decimals, exponents,
//     larger integers) as its literal string, so amounts never become doubles. amount, balance and fee take
//     decimal strings or integers in major units, amountMinor, balanceMinor and feeMinor integers in minor
//     units; a double result is refused (when the type is known statically, already by Compile). Conditions
//     may compare decimals with double(...): only results are checked.
//   - null, "" and optional.none() mean absent (`body.?data.?last4`, or `has(x.y) ? x.y : null`); any other
//     runtime error (a missing key, an unmapped status in a map literal, the cost limit) fails the callback
//     with a message naming the field.
//   - Enum fields (phase, cardType, transactionType, transactionPhase, direction, kycState, logisticsState)
//     take the v1alpha1 values, matched case-insensitively; constants, including those of conditionals and
//     map literals, are checked by Compile.
//   - bin and last4 may yield a full or masked card number: it is reduced with pan.Reduce at once.
//   - Transaction amounts are stored absolute; a negative amount with no direction mapped is a Debit.
//     Balances keep their sign (an overdrawn card). Transaction.OccurredAt is not mappable and stays zero.
//   - Free-text fields (providerStatus, reason, merchantName, channel, description, carrier) that contain a
//     full card number fail the callback, so a careless mapping cannot store one.
//   - Event.ID defaults to the webhook-id header and Event.OccurredAt to webhook-timestamp (the send time).
//   - Card identity (cardType, bin, last4, expiry), holderID and the balance may accompany any kind; the other
//     fields belong to one kind, and Compile refuses them elsewhere.
package mapping

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// CostLimit bounds the runtime cost of one expression (CEL cost units, roughly one per operation), so a
// mapping over a large or hostile body cannot burn the receiver's CPU. Plain field lookups cost a few units.
const CostLimit = 100_000

// MaxExpressionLength mirrors the API schema's limit on one expression.
const MaxExpressionLength = 1024

// Signature modes of a generic mapping.
const (
	SignatureStandardWebhooks = "StandardWebhooks"
	SignatureNone             = "None"
)

// The kinds of generic rules, spelled as in the API.
const (
	KindCardLifecycle cardsv1alpha1.GenericEventKind = "CardLifecycle"
	KindBalance       cardsv1alpha1.GenericEventKind = "Balance"
	KindTransaction   cardsv1alpha1.GenericEventKind = "Transaction"
	KindKYC           cardsv1alpha1.GenericEventKind = "KYC"
	KindLogistics     cardsv1alpha1.GenericEventKind = "Logistics"
	KindIgnore        cardsv1alpha1.GenericEventKind = "Ignore"
)

// valueType is what a field expression must yield.
type valueType int

const (
	vtID       valueType = iota // string, or an integer spelled in decimal
	vtText                      // free text; refused when it contains a full card number
	vtEnum                      // one of the field's enum values
	vtMajor                     // decimal string or integer in major units
	vtMinor                     // integer in minor units (or an integer string)
	vtInt                       // integer (or an integer string)
	vtDigits                    // bin or last4: the digits, or a full/masked card number to reduce
	vtCurrency                  // ISO 4217 code
	vtCountry                   // ISO 3166 alpha-2/3 code
	vtMCC                       // 4-digit merchant category code
	vtTime                      // timestamp, epoch seconds or milliseconds, or RFC 3339 string
)

// fieldSpec describes one field a rule may set.
type fieldSpec struct {
	vt    valueType
	enum  []string
	kinds []cardsv1alpha1.GenericEventKind // kinds the field is allowed in; nil means every kind but Ignore
}

// unknownPhase is the card and transaction phase of a status nobody mapped (CardUnknown, TransactionUnknown).
const unknownPhase = "Unknown"

var (
	cardPhases = []string{string(cardsv1alpha1.CardRequested), string(cardsv1alpha1.CardPendingActivation),
		string(cardsv1alpha1.CardActive), string(cardsv1alpha1.CardFrozen), string(cardsv1alpha1.CardLocked),
		string(cardsv1alpha1.CardClosed), string(cardsv1alpha1.CardFailed), unknownPhase}
	cardTypes        = []string{string(cardsv1alpha1.CardVirtual), string(cardsv1alpha1.CardPhysical)}
	transactionTypes = []string{string(cardsv1alpha1.TransactionAuthorization), string(cardsv1alpha1.TransactionPurchase),
		string(cardsv1alpha1.TransactionClearing), string(cardsv1alpha1.TransactionRefund), string(cardsv1alpha1.TransactionReversal),
		string(cardsv1alpha1.TransactionTopUp), string(cardsv1alpha1.TransactionFee), string(cardsv1alpha1.TransactionWithdrawal),
		string(cardsv1alpha1.TransactionRedemption), string(cardsv1alpha1.TransactionCorrection),
		string(cardsv1alpha1.TransactionCryptoOrder), string(cardsv1alpha1.TransactionOther)}
	transactionPhases = []string{string(cardsv1alpha1.TransactionPending), string(cardsv1alpha1.TransactionCompleted),
		string(cardsv1alpha1.TransactionDeclined), string(cardsv1alpha1.TransactionReversed), string(cardsv1alpha1.TransactionRefunded),
		string(cardsv1alpha1.TransactionFailed), string(cardsv1alpha1.TransactionExpired), string(cardsv1alpha1.TransactionCanceled),
		unknownPhase}
	directions = []string{string(cardsv1alpha1.Debit), string(cardsv1alpha1.Credit)}
	kycStates  = []string{string(cardsv1alpha1.KYCUnverified), string(cardsv1alpha1.KYCPending),
		string(cardsv1alpha1.KYCApproved), string(cardsv1alpha1.KYCRejected), unknownPhase}
	logisticsStates = []string{string(cardsv1alpha1.LogisticsInProduction), string(cardsv1alpha1.LogisticsShipped),
		string(cardsv1alpha1.LogisticsDelivered), string(cardsv1alpha1.LogisticsActivated), string(cardsv1alpha1.LogisticsBound)}
)

var (
	onlyCard  = []cardsv1alpha1.GenericEventKind{KindCardLifecycle}
	onlyTxn   = []cardsv1alpha1.GenericEventKind{KindTransaction}
	onlyKYC   = []cardsv1alpha1.GenericEventKind{KindKYC}
	onlyLogi  = []cardsv1alpha1.GenericEventKind{KindLogistics}
	cardOrTxn = []cardsv1alpha1.GenericEventKind{KindCardLifecycle, KindTransaction}
	// reason explains a card phase, a failed transaction or a KYC decision.
	reasonKinds = []cardsv1alpha1.GenericEventKind{KindCardLifecycle, KindTransaction, KindKYC}
)

// fields are the cardplane field names a rule may map. Card identity (type, number, expiry), the holder and the
// balance may accompany any kind of event (a transaction callback often carries the balance after it); the
// other fields belong to one kind.
var fields = map[string]fieldSpec{
	"cardID":                {vt: vtID},
	"holderID":              {vt: vtID},
	"cardType":              {vt: vtEnum, enum: cardTypes},
	"bin":                   {vt: vtDigits},
	"last4":                 {vt: vtDigits},
	"expiryMonth":           {vt: vtInt},
	"expiryYear":            {vt: vtInt},
	"balance":               {vt: vtMajor},
	"balanceMinor":          {vt: vtMinor},
	"currency":              {vt: vtCurrency},
	"phase":                 {vt: vtEnum, enum: cardPhases, kinds: onlyCard},
	"providerStatus":        {vt: vtText, kinds: cardOrTxn},
	"reason":                {vt: vtText, kinds: reasonKinds},
	"transactionID":         {vt: vtID, kinds: onlyTxn},
	"transactionType":       {vt: vtEnum, enum: transactionTypes, kinds: onlyTxn},
	"transactionPhase":      {vt: vtEnum, enum: transactionPhases, kinds: onlyTxn},
	"amount":                {vt: vtMajor, kinds: onlyTxn},
	"amountMinor":           {vt: vtMinor, kinds: onlyTxn},
	"direction":             {vt: vtEnum, enum: directions, kinds: onlyTxn},
	"billingAmount":         {vt: vtMajor, kinds: onlyTxn},
	"billingCurrency":       {vt: vtCurrency, kinds: onlyTxn},
	"fee":                   {vt: vtMajor, kinds: onlyTxn},
	"feeMinor":              {vt: vtMinor, kinds: onlyTxn},
	"merchantName":          {vt: vtText, kinds: onlyTxn},
	"mcc":                   {vt: vtMCC, kinds: onlyTxn},
	"merchantCountry":       {vt: vtCountry, kinds: onlyTxn},
	"channel":               {vt: vtText, kinds: onlyTxn},
	"description":           {vt: vtText, kinds: onlyTxn},
	"originalTransactionID": {vt: vtID, kinds: onlyTxn},
	"kycState":              {vt: vtEnum, enum: kycStates, kinds: onlyKYC},
	"logisticsState":        {vt: vtEnum, enum: logisticsStates, kinds: onlyLogi},
	"carrier":               {vt: vtText, kinds: onlyLogi},
	"trackingNumber":        {vt: vtID, kinds: onlyLogi},
}

// required fields per kind (besides cardID, which every kind but Ignore needs, as the API schema says).
var required = map[cardsv1alpha1.GenericEventKind][][]string{
	KindBalance:     {{"balance", "balanceMinor"}},
	KindTransaction: {{"transactionID"}},
	KindKYC:         {{"kycState"}},
	KindLogistics:   {{"logisticsState"}},
}

// Mapping is a compiled GenericMapping, safe for concurrent use.
type Mapping struct {
	eventType  *program
	eventID    *program // nil: the webhook-id header
	occurredAt *program // nil: the webhook-timestamp header
	byType     map[string]*rule
}

type rule struct {
	index  int
	kind   cardsv1alpha1.GenericEventKind
	fields map[string]*program
	names  []string // the keys of fields, sorted, so evaluation and its first error are deterministic
}

type program struct {
	prg cel.Program
}

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("body", cel.DynType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		ext.Strings(),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
	)
})

// Compile checks a GenericMapping and compiles its expressions. Errors name the offending part of the spec
// (e.g. "spec.generic.events[1].fields.phase: ..."), for the WebhookEndpoint's InvalidConfig condition.
func Compile(gm *cardsv1alpha1.GenericMapping) (*Mapping, error) {
	if gm == nil {
		return nil, errors.New("spec.generic is missing")
	}
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	m := &Mapping{byType: map[string]*rule{}}
	switch gm.Signature {
	case "", SignatureStandardWebhooks, SignatureNone:
	default:
		return nil, fmt.Errorf("spec.generic.signature: %q is neither %s nor %s", gm.Signature, SignatureStandardWebhooks, SignatureNone)
	}
	if strings.TrimSpace(gm.EventType) == "" {
		return nil, errors.New("spec.generic.eventType: an expression is required")
	}
	if m.eventType, err = compile(env, "spec.generic.eventType", fieldSpec{vt: vtID}, gm.EventType); err != nil {
		return nil, err
	}
	if strings.TrimSpace(gm.EventID) != "" {
		if m.eventID, err = compile(env, "spec.generic.eventID", fieldSpec{vt: vtID}, gm.EventID); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(gm.OccurredAt) != "" {
		if m.occurredAt, err = compile(env, "spec.generic.occurredAt", fieldSpec{vt: vtTime}, gm.OccurredAt); err != nil {
			return nil, err
		}
	}
	if len(gm.Events) == 0 {
		return nil, errors.New("spec.generic.events: at least one rule is required")
	}
	for i := range gm.Events {
		r, err := compileRule(env, i, &gm.Events[i])
		if err != nil {
			return nil, err
		}
		for _, t := range gm.Events[i].EventTypes {
			if prev, dup := m.byType[t]; dup {
				return nil, fmt.Errorf("spec.generic.events[%d].eventTypes: %q is already matched by events[%d], so this rule would never apply to it", i, t, prev.index)
			}
			m.byType[t] = r
		}
	}
	return m, nil
}

func compileRule(env *cel.Env, i int, er *cardsv1alpha1.GenericEventRule) (*rule, error) {
	at := fmt.Sprintf("spec.generic.events[%d]", i)
	r := &rule{index: i, kind: er.Kind, fields: map[string]*program{}}
	switch er.Kind {
	case KindCardLifecycle, KindBalance, KindTransaction, KindKYC, KindLogistics, KindIgnore:
	default:
		return nil, fmt.Errorf("%s.kind: %q is not one of CardLifecycle, Balance, Transaction, KYC, Logistics, Ignore", at, er.Kind)
	}
	if len(er.EventTypes) == 0 {
		return nil, fmt.Errorf("%s.eventTypes: at least one event type is required", at)
	}
	for j, t := range er.EventTypes {
		if t == "" {
			return nil, fmt.Errorf("%s.eventTypes[%d]: empty event type", at, j)
		}
	}
	if er.Kind == KindIgnore {
		if len(er.Fields) > 0 {
			return nil, fmt.Errorf("%s.fields: a rule of kind Ignore produces no event, so it takes no fields", at)
		}
		return r, nil
	}
	r.names = slices.Sorted(maps.Keys(er.Fields))
	for _, name := range r.names {
		text := er.Fields[name]
		spec, ok := fields[name]
		if !ok {
			return nil, fmt.Errorf("%s.fields.%s: unknown field name", at, name)
		}
		if spec.kinds != nil && !hasKind(spec.kinds, er.Kind) {
			return nil, fmt.Errorf("%s.fields.%s: not a field of kind %s (only of %s)", at, name, er.Kind, kindList(spec.kinds))
		}
		p, err := compile(env, at+".fields."+name, spec, text)
		if err != nil {
			return nil, err
		}
		r.fields[name] = p
	}
	return r, r.complete(at)
}

// complete checks that a rule's fields go together: the identity, what its kind requires, units and currencies.
func (r *rule) complete(at string) error {
	has := func(n string) bool { return r.fields[n] != nil }
	if !has("cardID") {
		return fmt.Errorf("%s.fields.cardID: required unless kind is Ignore", at)
	}
	for _, alts := range required[r.kind] {
		found := false
		for _, n := range alts {
			found = found || has(n)
		}
		if !found {
			return fmt.Errorf("%s.fields.%s: required for kind %s", at, strings.Join(alts, " or "), r.kind)
		}
	}
	for _, pair := range [][2]string{{"amount", "amountMinor"}, {"balance", "balanceMinor"}, {"fee", "feeMinor"}} {
		if has(pair[0]) && has(pair[1]) {
			return fmt.Errorf("%s.fields: %s and %s are exclusive (major or minor units)", at, pair[0], pair[1])
		}
	}
	for _, n := range []string{"amount", "amountMinor", "balance", "balanceMinor", "fee", "feeMinor"} {
		if has(n) && !has("currency") {
			return fmt.Errorf("%s.fields.currency: required with %s", at, n)
		}
	}
	if has("billingAmount") != has("billingCurrency") {
		return fmt.Errorf("%s.fields: billingAmount and billingCurrency go together", at)
	}
	if has("expiryMonth") != has("expiryYear") {
		return fmt.Errorf("%s.fields: expiryMonth and expiryYear go together", at)
	}
	return nil
}

func hasKind(ks []cardsv1alpha1.GenericEventKind, k cardsv1alpha1.GenericEventKind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func kindList(ks []cardsv1alpha1.GenericEventKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// compile parses and type-checks one expression, refuses result types the field cannot take, checks constant
// enum values, and plans the program with a cost limit.
func compile(env *cel.Env, path string, spec fieldSpec, text string) (*program, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%s: empty expression", path)
	}
	if len(text) > MaxExpressionLength {
		return nil, fmt.Errorf("%s: expression longer than %d characters", path, MaxExpressionLength)
	}
	ast, iss := env.CompileSource(common.NewStringSource(text, path))
	if iss != nil && iss.Err() != nil {
		msgs := make([]string, 0, len(iss.Errors()))
		for _, e := range iss.Errors() {
			msgs = append(msgs, fmt.Sprintf("column %d: %s", e.Location.Column()+1, e.Message))
		}
		return nil, fmt.Errorf("%s: %s", path, strings.Join(msgs, "; "))
	}
	if err := checkType(ast.OutputType(), spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if spec.vt == vtEnum {
		for _, lit := range resultLiterals(ast.NativeRep().Expr()) {
			if err := checkEnumLiteral(lit, spec.enum); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	prg, err := env.Program(ast, cel.CostLimit(CostLimit))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &program{prg: prg}, nil
}

// checkType refuses statically known result types the field cannot take; `body` is dynamic, so most
// expressions are only checked at evaluation.
func checkType(t *types.Type, spec fieldSpec) error {
	if t == nil {
		return nil
	}
	if t.Kind() == types.OpaqueKind && t.TypeName() == "optional_type" && len(t.Parameters()) == 1 {
		t = t.Parameters()[0]
	}
	switch t.Kind() {
	case types.DynKind, types.AnyKind, types.TypeParamKind, types.NullTypeKind, types.StringKind:
		return nil
	case types.IntKind, types.UintKind:
		if spec.vt != vtEnum {
			return nil
		}
	case types.TimestampKind:
		if spec.vt == vtTime {
			return nil
		}
	case types.DoubleKind:
		if spec.vt == vtMajor || spec.vt == vtMinor {
			return errors.New("yields a double; amounts must be decimal strings or integers, never doubles")
		}
	}
	return fmt.Errorf("yields %s, want %s", t, wantOf(spec))
}

func wantOf(spec fieldSpec) string {
	switch spec.vt {
	case vtEnum:
		return "a string, one of " + strings.Join(spec.enum, ", ")
	case vtMajor:
		return "a decimal string or an integer in major units"
	case vtMinor, vtInt:
		return "an integer"
	case vtTime:
		return "a timestamp, epoch seconds or milliseconds, or an RFC 3339 string"
	}
	return "a string"
}

// resultLiterals collects the constants an expression can yield through conditionals and map-literal
// lookups, e.g. the values of {'active': 'Active'}[body.status].
func resultLiterals(e celast.Expr) []ref.Val {
	switch e.Kind() {
	case celast.LiteralKind:
		return []ref.Val{e.AsLiteral()}
	case celast.CallKind:
		c := e.AsCall()
		args := c.Args()
		switch {
		case c.FunctionName() == operators.Conditional && len(args) == 3:
			return append(resultLiterals(args[1]), resultLiterals(args[2])...)
		case (c.FunctionName() == operators.Index || c.FunctionName() == operators.OptIndex) && len(args) == 2 && args[0].Kind() == celast.MapKind:
			var out []ref.Val
			for _, entry := range args[0].AsMap().Entries() {
				if entry.Kind() == celast.MapEntryKind {
					out = append(out, resultLiterals(entry.AsMapEntry().Value())...)
				}
			}
			return out
		}
	}
	return nil
}

func checkEnumLiteral(v ref.Val, enum []string) error {
	switch x := v.(type) {
	case types.Null:
		return nil
	case types.String:
		if _, ok := enumValue(string(x), enum); ok || strings.TrimSpace(string(x)) == "" {
			return nil
		}
		return fmt.Errorf("%q is not one of %s", string(x), strings.Join(enum, ", "))
	}
	return fmt.Errorf("constant %v is not a string, want one of %s", v, strings.Join(enum, ", "))
}

// enumValue matches case-insensitively and returns the canonical spelling.
func enumValue(s string, enum []string) (string, bool) {
	s = strings.TrimSpace(s)
	for _, e := range enum {
		if strings.EqualFold(s, e) {
			return e, true
		}
	}
	return "", false
}
