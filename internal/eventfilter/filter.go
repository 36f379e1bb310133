// Package eventfilter compiles the CEL filter of a CardEventSink: a bool expression over `object` (the Card or
// CardTransaction as delivered, JSON-shaped) and `type` (the event type). Like rule sets, a filter is
// type-checked and its estimated cost bounded when it is compiled, and every evaluation runs under a cost
// limit, so one app team's filter cannot stall delivery for everyone.
package eventfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// CostLimit bounds one evaluation, and the estimate a filter must stay within to compile (the rule sets' limit).
const CostLimit = 10_000

// maxCollection is the size the estimate assumes for every list, map and string of the object (a card has at
// most 64 labels; lists in status hold at most a few hundred entries).
const maxCollection = 256

// Filter is a compiled filter. It is safe for concurrent use.
type Filter struct {
	prg cel.Program
}

var env = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("object", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("type", cel.StringType),
		ext.Strings(),
		ext.Sets(),
		cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
	)
})

// Compile type-checks src, which must be a bool expression, and plans it with the cost limit. The error is
// written for a status condition.
func Compile(src string) (*Filter, error) {
	e, err := env()
	if err != nil {
		return nil, err
	}
	checked, iss := e.Compile(src)
	if iss.Err() != nil {
		errs := iss.Errors()
		msg := fmt.Sprintf("filter: %s (line %d, column %d)", errs[0].Message, max(errs[0].Location.Line(), 1), errs[0].Location.Column()+1)
		if len(errs) > 1 {
			msg += fmt.Sprintf(", and %d more", len(errs)-1)
		}
		return nil, errors.New(msg)
	}
	if t := checked.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("filter: must be a bool expression, this one is %s", t)
	}
	est, err := e.EstimateCost(checked, estimator{})
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	if est.Max > CostLimit {
		return nil, fmt.Errorf("filter: estimated cost %d exceeds the limit %d (lists, maps and strings are costed at %d entries)",
			est.Max, CostLimit, maxCollection)
	}
	prg, err := e.Program(checked, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return &Filter{prg: prg}, nil
}

// Match evaluates the filter on object (JSON-shaped: maps, lists, strings, float64 or int64 numbers, bools)
// delivered as eventType. An error (a missing field, the cost limit, a non-bool result) is the filter's, and
// the caller decides what it means; use has() or optional fields for what may be absent.
func (f *Filter) Match(object map[string]any, eventType string) (bool, error) {
	out, _, err := f.prg.Eval(map[string]any{"object": object, "type": eventType})
	if err != nil {
		return false, fmt.Errorf("filter: %w", err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("filter: evaluated to %v, not a bool", out.Value())
	}
	return b, nil
}

// estimator sizes every collection of the object at maxCollection.
type estimator struct{}

func (estimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: maxCollection}
}

func (estimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// Object decodes a delivered object for Match. Whole numbers become int (so object.status.stateSequence % 2
// works as it reads), others double.
func Object(data []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return numbers(m).(map[string]any), nil
}

func numbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = numbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = numbers(e)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}
