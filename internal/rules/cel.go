package rules

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// The CEL variables. Money is never a double: amounts are decimal strings and integer minor units.

// celTransaction is `transaction`.
type celTransaction struct {
	ID              string `cel:"id"`
	Amount          string `cel:"amount"`      // exact decimal in major units, e.g. "12.50"
	AmountMinor     int64  `cel:"amountMinor"` // minor units of Currency, rounded up
	Currency        string `cel:"currency"`
	MCC             string `cel:"mcc"`
	MerchantName    string `cel:"merchantName"`
	MerchantCountry string `cel:"merchantCountry"` // alpha-2 when the code is known
	Channel         string `cel:"channel"`
}

// celSpend is one entry of `card.spend`.
type celSpend struct {
	AmountMinor int64 `cel:"amountMinor"`
	Count       int64 `cel:"count"`
}

// celCard is `card`.
type celCard struct {
	Namespace       string              `cel:"namespace"`
	Name            string              `cel:"name"`
	Labels          map[string]string   `cel:"labels"`
	Phase           string              `cel:"phase"`
	KYC             string              `cel:"kyc"`          // the holder's KYC state: Approved, Pending, Rejected, Unverified or ""
	BalanceMinor    *int64              `cel:"balanceMinor"` // absent (has() is false) when no balance is known
	BalanceCurrency string              `cel:"balanceCurrency"`
	Spend           map[string]celSpend `cel:"spend"` // Daily, Weekly, Monthly, AllTime: always present
}

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(ext.ParseStructTags(true),
			reflect.TypeFor[celTransaction](), reflect.TypeFor[celCard](), reflect.TypeFor[celSpend]()),
		cel.Variable("transaction", cel.ObjectType("rules.celTransaction")),
		cel.Variable("card", cel.ObjectType("rules.celCard")),
		cel.Variable("now", cel.TimestampType),
		ext.Strings(),
		ext.Sets(),
		cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
	)
})

// celIssue is a compile problem of a condition, at a 1-based line of the expression.
type celIssue struct {
	line    int
	message string
}

// compileCondition type-checks a condition (it must be a bool, use no doubles and not order the text of
// transaction.amount), checks its estimated cost and plans it with the run-time cost limit. It also returns the
// spend windows the condition reads.
func compileCondition(src string) (cel.Program, []cardsv1alpha1.SpendWindowKind, *celIssue) {
	env, err := celEnv()
	if err != nil {
		return nil, nil, &celIssue{line: 1, message: "condition: " + err.Error()}
	}
	checked, iss := env.Compile(src)
	if iss.Err() != nil {
		errs := iss.Errors()
		e := errs[0]
		msg := fmt.Sprintf("condition: %s (column %d)", e.Message, e.Location.Column()+1)
		if len(errs) > 1 {
			msg += fmt.Sprintf(", and %d more", len(errs)-1)
		}
		return nil, nil, &celIssue{line: max(e.Location.Line(), 1), message: msg}
	}
	if t := checked.OutputType(); !t.IsExactType(types.BoolType) {
		return nil, nil, &celIssue{line: 1, message: fmt.Sprintf("condition: must be a bool expression, this one is %s", t)}
	}
	native := checked.NativeRep()
	at := func(e celast.NavigableExpr) (int, int) {
		loc := native.SourceInfo().GetStartLocation(e.ID())
		return max(loc.Line(), 1), loc.Column() + 1
	}
	root := celast.NavigateAST(native)
	if doubles := celast.MatchDescendants(root, func(e celast.NavigableExpr) bool {
		return e.Type() != nil && e.Type().Kind() == types.DoubleKind
	}); len(doubles) > 0 {
		line, col := at(doubles[0])
		return nil, nil, &celIssue{line: line, message: fmt.Sprintf("condition: doubles are not allowed, money is exact: "+
			"compare transaction.amountMinor, card.balanceMinor or card.spend[...].amountMinor (int, minor units) (column %d)", col)}
	}
	if issue := amountTextComparison(root, at); issue != nil {
		return nil, nil, issue
	}
	windows, issue := spendWindows(root, at)
	if issue != nil {
		return nil, nil, issue
	}
	est, err := env.EstimateCost(checked, estimator{})
	if err != nil {
		return nil, nil, &celIssue{line: 1, message: "condition: " + err.Error()}
	}
	if est.Max > CostLimit {
		return nil, nil, &celIssue{line: 1, message: fmt.Sprintf("condition: estimated cost %d exceeds the limit %d "+
			"(loops over card.labels are costed at 64 labels)", est.Max, CostLimit)}
	}
	prg, err := env.Program(checked, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, nil, &celIssue{line: 1, message: "condition: " + err.Error()}
	}
	return prg, windows, nil
}

// orderings are the relational operators; on strings (and bytes) they compare text.
var orderings = map[string]string{
	operators.Less: "<", operators.LessEquals: "<=", operators.Greater: ">", operators.GreaterEquals: ">=",
}

// amountTextComparison refuses an ordering comparison (<, <=, >, >=) of which an operand is the text of
// transaction.amount: a decimal string, so "60.00" > "500" and a limit written that way silently approves.
func amountTextComparison(root celast.NavigableExpr, at func(celast.NavigableExpr) (int, int)) *celIssue {
	found := celast.MatchDescendants(root, func(e celast.NavigableExpr) bool {
		if e.Kind() != celast.CallKind {
			return false
		}
		if _, ok := orderings[e.AsCall().FunctionName()]; !ok {
			return false
		}
		return slices.ContainsFunc(e.Children(), amountText) // the two operands
	})
	if len(found) == 0 {
		return nil
	}
	line, col := at(found[0])
	return &celIssue{line: line, message: fmt.Sprintf("condition: transaction.amount is a decimal string, so %s compares text "+
		`("60.00" > "500" is true): compare transaction.amountMinor (int, minor units) instead (column %d)`,
		orderings[found[0].AsCall().FunctionName()], col)}
}

// amountText reports whether e is transaction.amount (transaction.?amount) or text made from it: a value of
// type string, bytes, dyn, optional or list whose expression reaches transaction.amount through values of
// those types only, such as string(transaction.amount), transaction.?amount.orValue('0'), '0' + transaction.amount,
// transaction.amount.trim() or transaction.amount.split('.')[0]. Where the text passes through another type
// (transaction.amount.size(), int(...), transaction.amount == '1.00' ? 'a' : 'b') the text is not compared.
// A variable that holds the amount (a macro's loop variable) is not followed.
func amountText(e celast.NavigableExpr) bool {
	if isAmount(e) {
		return true
	}
	if !textual(e.Type()) {
		return false
	}
	return slices.ContainsFunc(e.Children(), amountText)
}

// isAmount reports whether e selects the amount of the transaction variable: transaction.amount or
// transaction.?amount (not has(transaction.amount), a bool).
func isAmount(e celast.NavigableExpr) bool {
	var operand celast.Expr
	switch e.Kind() {
	case celast.SelectKind:
		sel := e.AsSelect()
		if sel.IsTestOnly() || sel.FieldName() != "amount" {
			return false
		}
		operand = sel.Operand()
	case celast.CallKind:
		call := e.AsCall()
		args := call.Args()
		if call.FunctionName() != operators.OptSelect || len(args) != 2 || args[1].Kind() != celast.LiteralKind {
			return false
		}
		if field, ok := args[1].AsLiteral().(types.String); !ok || field != "amount" {
			return false
		}
		operand = args[0]
	default:
		return false
	}
	return operand.Kind() == celast.IdentKind && operand.AsIdent() == "transaction"
}

// textual reports whether a value of type t can carry the amount's text to a comparison: a string or bytes,
// or a dyn, optional or list that may hold one.
func textual(t *types.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case types.StringKind, types.BytesKind, types.DynKind:
		return true
	case types.ListKind:
		return len(t.Parameters()) == 1 && textual(t.Parameters()[0])
	case types.OpaqueKind:
		return t.TypeName() == "optional_type" && len(t.Parameters()) == 1 && textual(t.Parameters()[0])
	}
	return false
}

// spendWindows finds the windows a condition reads through card.spend: card.spend['Daily'],
// card.spend.Daily, card.spend[?'Daily'] and card.spend.?Daily name one; any other use (a dynamic key, a loop,
// size()) reads them all. A constant key that is not a window is refused.
func spendWindows(root celast.NavigableExpr, at func(celast.NavigableExpr) (int, int)) ([]cardsv1alpha1.SpendWindowKind, *celIssue) {
	uses := celast.MatchDescendants(root, func(e celast.NavigableExpr) bool {
		if e.Kind() != celast.SelectKind || e.AsSelect().FieldName() != "spend" {
			return false
		}
		op := e.AsSelect().Operand()
		return op.Kind() == celast.IdentKind && op.AsIdent() == "card"
	})
	var out []cardsv1alpha1.SpendWindowKind
	add := func(ws ...cardsv1alpha1.SpendWindowKind) {
		for _, w := range ws {
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	for _, use := range uses {
		key, constant := spendKey(use)
		if !constant {
			add(windowOrder...)
			continue
		}
		if !slices.Contains(windowOrder, cardsv1alpha1.SpendWindowKind(key)) {
			parent, _ := use.Parent()
			line, col := at(parent)
			return nil, &celIssue{line: line, message: fmt.Sprintf("condition: card.spend has no window %q: "+
				"it has Daily, Weekly, Monthly and AllTime (column %d)", key, col)}
		}
		add(cardsv1alpha1.SpendWindowKind(key))
	}
	return out, nil
}

// spendKey is the constant window key a use of card.spend selects (card.spend.Daily, card.spend['Daily'],
// card.spend[?'Daily'], card.spend.?Daily), if it selects one.
func spendKey(use celast.NavigableExpr) (string, bool) {
	parent, ok := use.Parent()
	if !ok {
		return "", false
	}
	switch parent.Kind() {
	case celast.SelectKind:
		return parent.AsSelect().FieldName(), true
	case celast.CallKind:
		call := parent.AsCall()
		args := call.Args()
		switch call.FunctionName() {
		case operators.Index, operators.OptIndex, operators.OptSelect:
			if len(args) == 2 && args[0].ID() == use.ID() && args[1].Kind() == celast.LiteralKind {
				if s, ok := args[1].AsLiteral().(types.String); ok {
					return string(s), true
				}
			}
		}
	}
	return "", false
}

// estimator bounds the sizes CEL cannot know, so loops and string functions get a finite cost estimate. The
// run-time limit applies whatever the real sizes are.
type estimator struct{}

func (estimator) EstimateSize(element checker.AstNode) *checker.SizeEstimate {
	path := element.Path()
	if len(path) < 2 {
		return nil
	}
	size := func(upTo uint64) *checker.SizeEstimate { return &checker.SizeEstimate{Min: 0, Max: upTo} }
	switch path[0] {
	case "transaction":
		switch path[1] {
		case "id":
			return size(128)
		case "amount":
			return size(40)
		case "currency", "merchantCountry":
			return size(3)
		case "mcc":
			return size(4)
		case "merchantName":
			return size(256)
		case "channel":
			return size(32)
		}
	case "card":
		switch path[1] {
		case "namespace":
			return size(63)
		case "name":
			return size(253)
		case "phase":
			return size(32)
		case "balanceCurrency":
			return size(3)
		case "spend":
			if len(path) == 2 {
				return &checker.SizeEstimate{Min: 4, Max: 4}
			}
			return size(16)
		case "labels":
			switch {
			case len(path) == 2:
				return size(64)
			case path[2] == "@keys":
				return size(317)
			default:
				return size(63)
			}
		}
	}
	return nil
}

func (estimator) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	return nil
}

// vars is the activation of one evaluation.
type vars struct {
	tx   *celTransaction
	card *celCard
	now  ref.Val
}

func (v *vars) ResolveName(name string) (any, bool) {
	switch name {
	case "transaction":
		return v.tx, true
	case "card":
		return v.card, true
	case "now":
		return v.now, true
	}
	return nil, false
}

func (v *vars) Parent() interpreter.Activation { return nil }

// evalCondition runs a condition; an error (a missing key, the cost limit, a non-bool) is returned with true:
// the rule fails closed.
func evalCondition(prg cel.Program, act *vars) (bool, error) {
	out, _, err := prg.Eval(act)
	if err != nil {
		return true, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return true, fmt.Errorf("the result %v is not a bool", out)
	}
	return bool(b), nil
}
