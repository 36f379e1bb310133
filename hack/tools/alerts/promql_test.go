package alerts

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// labelSet is the label names the series of an expression's result carry; nil when it reads a series nothing
// exports.
type labelSet map[string]bool

func (s labelSet) names() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range s {
			if !yield(k) {
				return
			}
		}
	})
}

// queryCheck follows the labels through one PromQL expression, as Prometheus' engine would: every label a
// matcher, a `by (…)`, an `on (…)` or a label function reads must be on the series at that point, every series
// read must be one the code exports, and every value matched must be one the code writes. It is a static
// check: it finds `sum by (endpoint)` over a metric whose label is webhook_endpoint, which the engine answers
// with one series without the label, no error.
type queryCheck struct {
	inv      *inventory
	families map[string]bool // the metric families the expression reads
	problems []string
}

func (c *queryCheck) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// checkQuery parses expr with Prometheus' parser and checks it; out is the labels of its result.
func checkQuery(inv *inventory, expr string) (out labelSet, families map[string]bool, problems []string) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, nil, []string{fmt.Sprintf("Prometheus does not parse it: %v", err)}
	}
	c := &queryCheck{inv: inv, families: map[string]bool{}}
	out = c.labels(e)
	return out, c.families, c.problems
}

// labels is the label names of e's result; it records what e reads wrongly.
func (c *queryCheck) labels(e parser.Expr) labelSet {
	switch e := e.(type) {
	case *parser.VectorSelector:
		return c.selector(e)
	case *parser.MatrixSelector:
		return c.labels(e.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labels(e.Expr)
	case *parser.ParenExpr:
		return c.labels(e.Expr)
	case *parser.UnaryExpr:
		return c.labels(e.Expr)
	case *parser.StepInvariantExpr:
		return c.labels(e.Expr)
	case *parser.AggregateExpr:
		return c.aggregate(e)
	case *parser.BinaryExpr:
		return c.binary(e)
	case *parser.Call:
		return c.call(e)
	}
	return labelSet{} // number and string literals
}

func (c *queryCheck) selector(vs *parser.VectorSelector) labelSet {
	family, carried, ok := c.inv.series(vs.Name)
	if !ok {
		c.problem("reads %s, which neither cardplane nor controller-runtime exports", vs.Name)
		return nil // unknown: the checks above it are skipped rather than repeat this
	}
	c.families[family] = true
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			continue
		}
		if !carried[m.Name] {
			c.problem("matches on %q, which %s does not carry (it carries %v)", m.Name, vs.Name, labelSet(carried).names())
			continue
		}
		c.value(vs.Name, family, m)
	}
	return carried
}

// alternation is a regular expression that only lists literal values.
var alternation = regexp.MustCompile(`^[\w.:/-]+(\|[\w.:/-]+)*$`)

// value checks that a matched value is one the code can write: a string literal of cardplane's code, or a
// bucket bound of the histogram for le.
func (c *queryCheck) value(series, family string, m *labels.Matcher) {
	if slices.Contains(replicaLabels, m.Name) || strings.HasPrefix(m.Value, "$") || m.Value == "" || !alternation.MatchString(m.Value) {
		return // target labels, Grafana variables and patterns are not the code's to write
	}
	for _, v := range strings.Split(m.Value, "|") {
		if m.Name == "le" {
			bound, err := strconv.ParseFloat(v, 64)
			if err != nil || !slices.Contains(c.inv.metrics[family].buckets, bound) {
				c.problem("%s{le=%q}: %s has no such bucket (its bounds: %v)", series, v, family, c.inv.metrics[family].buckets)
			}
			continue
		}
		if !c.inv.strings[v] {
			c.problem("%s{%s=%q}: no string %q in cardplane's code, so nothing writes that value", series, m.Name, v, v)
		}
	}
}

func (c *queryCheck) aggregate(a *parser.AggregateExpr) labelSet {
	in := c.labels(a.Expr)
	if a.Param != nil {
		c.labels(a.Param)
	}
	if a.Without {
		out := labelSet{}
		for l := range in {
			if !slices.Contains(a.Grouping, l) {
				out[l] = true
			}
		}
		return out
	}
	out := labelSet{}
	for _, g := range a.Grouping {
		if in != nil && !in[g] {
			c.problem("%s by (%s): the series aggregated carry no label %q of the code's (they carry %v), so it groups by nothing or by the scrape's target label of that name",
				a.Op, strings.Join(a.Grouping, ", "), g, in.names())
		}
		out[g] = true
	}
	switch a.Op {
	case parser.TOPK, parser.BOTTOMK, parser.LIMITK, parser.LIMIT_RATIO:
		return in // they select series and keep their labels
	case parser.COUNT_VALUES:
		if s, ok := a.Param.(*parser.StringLiteral); ok {
			out[s.Val] = true
		}
	}
	return out
}

func (c *queryCheck) binary(b *parser.BinaryExpr) labelSet {
	l, r := c.labels(b.LHS), c.labels(b.RHS)
	vm := b.VectorMatching
	if vm == nil || b.LHS.Type() != parser.ValueTypeVector || b.RHS.Type() != parser.ValueTypeVector {
		if b.LHS.Type() == parser.ValueTypeVector {
			return l
		}
		return r
	}
	if vm.On {
		for _, m := range vm.MatchingLabels {
			if l != nil && r != nil && (!l[m] || !r[m]) {
				c.problem("on (%s): %q is not on both sides (left %v, right %v)", strings.Join(vm.MatchingLabels, ", "), m, l.names(), r.names())
			}
		}
	}
	one := r
	if vm.Card == parser.CardOneToMany {
		one = l
	}
	for _, inc := range vm.Include {
		if one != nil && !one[inc] {
			c.problem("group_left/right (%s): %q is not on the side it is copied from (%v)", strings.Join(vm.Include, ", "), inc, one.names())
		}
	}
	switch {
	case b.Op == parser.LOR:
		return union(l, r)
	case b.Op == parser.LAND || b.Op == parser.LUNLESS || (b.Op.IsComparisonOperator() && !b.ReturnBool):
		return l // these filter the left side's series
	case vm.Card == parser.CardOneToMany:
		return union(r, set(vm.Include))
	case vm.Card == parser.CardManyToOne:
		return union(l, set(vm.Include))
	case vm.On:
		return set(vm.MatchingLabels)
	}
	out := labelSet{}
	for k := range l {
		if !slices.Contains(vm.MatchingLabels, k) {
			out[k] = true
		}
	}
	return out
}

func (c *queryCheck) call(f *parser.Call) labelSet {
	args := make([]labelSet, len(f.Args))
	for i, a := range f.Args {
		args[i] = c.labels(a)
	}
	str := func(i int) string {
		if i < len(f.Args) {
			if s, ok := f.Args[i].(*parser.StringLiteral); ok {
				return s.Val
			}
		}
		return ""
	}
	switch f.Func.Name {
	case "vector", "scalar", "time", "absent", "absent_over_time", "pi":
		return labelSet{}
	case "histogram_quantile", "histogram_fraction":
		in := args[len(args)-1]
		if in == nil {
			return nil
		}
		if !in["le"] {
			c.problem("%s over series without le (%v): they are not a histogram's buckets", f.Func.Name, in.names())
		}
		out := union(in)
		delete(out, "le")
		return out
	case "label_replace", "label_join":
		out := union(args[0])
		for i := 3; i < len(f.Args); i++ {
			if src := str(i); src != "" && args[0] != nil && !args[0][src] {
				c.problem("%s reads %q, which the series do not carry (%v)", f.Func.Name, src, args[0].names())
			}
		}
		out[str(1)] = true
		return out
	}
	for i, a := range f.Args { // rate, increase, clamp, …: the labels of the series argument
		if t := a.Type(); t == parser.ValueTypeVector || t == parser.ValueTypeMatrix {
			return args[i]
		}
	}
	return labelSet{}
}

func union(sets ...labelSet) labelSet {
	out := labelSet{}
	for _, s := range sets {
		for k := range s {
			out[k] = true
		}
	}
	return out
}

func set(names []string) labelSet {
	out := labelSet{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// The labels a template reads from a query's result: {{ $labels.x }} in an alert's annotations, {{x}} in a
// Grafana legend.
var (
	alertTemplateLabels  = regexp.MustCompile(`\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	legendTemplateLabels = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// checkTemplate reports the labels a template reads that the query's result does not carry.
func checkTemplate(tmpl string, reads *regexp.Regexp, out labelSet) []string {
	var problems []string
	if out == nil {
		return nil // the query reads an unknown metric, reported already
	}
	for _, m := range reads.FindAllStringSubmatch(tmpl, -1) {
		if !out[m[1]] {
			problems = append(problems, fmt.Sprintf("%q reads the label %q, which the query's result does not carry (it carries %v)", tmpl, m[1], out.names()))
		}
	}
	return problems
}
