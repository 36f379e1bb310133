package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/shopspring/decimal"
	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// kind is the matcher of a rule.
type kind int

const (
	kindMCC kind = iota
	kindCountry
	kindAmount
	kindSpend
	kindCondition
)

// matcherKeys are the rule keys that name a matcher, in the order of kind.
var matcherKeys = []string{"mcc", "merchantCountry", "amount", "spend", "condition"}

// rule is one compiled rule.
type rule struct {
	name, reason string
	mode         cardsv1alpha1.RuleMode
	kind         kind

	// mcc and merchantCountry: allow lists decline what is not listed (or missing), block lists what is listed.
	allow     bool
	mccs      *mccSet
	countries map[string]bool // alpha-2

	// amount and spend
	currency            string // "" only for a count-only spend rule: counts over every currency
	skipOtherCurrencies bool
	max                 decimal.Decimal // amount
	window              cardsv1alpha1.SpendWindowKind
	maxAmount           *decimal.Decimal
	maxCount            int64
	hasMaxCount         bool

	// condition
	program cel.Program
	reads   []cardsv1alpha1.SpendWindowKind // windows the condition reads through card.spend
}

// mccSet is a bitmap of the 10000 merchant category codes.
type mccSet [10000/64 + 1]uint64

func (s *mccSet) add(lo, hi int) {
	for c := lo; c <= hi; c++ {
		s[c/64] |= 1 << (c % 64)
	}
}

func (s *mccSet) has(c int) bool { return s[c/64]&(1<<(c%64)) != 0 }

var (
	ruleNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	reasonRE   = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	mccRE      = regexp.MustCompile(`^[0-9]{4}$`)
	decimalRE  = regexp.MustCompile(`^[0-9]{1,18}(\.[0-9]{1,18})?$`)
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// windowOrder is the order of CountsToward and of card.spend.
var windowOrder = []cardsv1alpha1.SpendWindowKind{
	cardsv1alpha1.SpendDaily, cardsv1alpha1.SpendWeekly, cardsv1alpha1.SpendMonthly, cardsv1alpha1.SpendAllTime,
}

// Parse parses, validates and compiles rules.yaml. An error is the first problem in document order, as an
// *Error with the 1-based line and the rule name when known; Validate lists every problem.
func Parse(data []byte) (*RuleSet, error) {
	rs, errs := parse(data)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return rs, nil
}

// Validate returns every problem of rules.yaml in document order; none means Parse succeeds.
func Validate(data []byte) []*Error {
	_, errs := parse(data)
	return errs
}

type parser struct {
	errs []*Error
	rule string // the name of the rule being parsed, for errors
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{Line: line, Rule: p.rule, Message: fmt.Sprintf(format, args...)})
}

func parse(data []byte) (*RuleSet, []*Error) {
	p := &parser{}
	root, err := p.document(data)
	if err != nil {
		return nil, []*Error{err}
	}
	rs := &RuleSet{
		Default:  cardsv1alpha1.DecisionApproved,
		StandIn:  cardsv1alpha1.DecisionDeclined,
		TimeZone: time.UTC,
		Selector: labels.Everything(),
	}
	f := p.mapping(root, "", "defaultDecision", "standInDecision", "timeZone", "selector", "rules")
	if v := f["defaultDecision"]; v != nil {
		rs.Default = p.outcome(v, "defaultDecision")
	}
	if v := f["standInDecision"]; v != nil {
		rs.StandIn = p.outcome(v, "standInDecision")
	}
	if v := f["timeZone"]; v != nil {
		if s, ok := p.str(v, "timeZone"); ok {
			if loc, err := loadLocation(s); err != nil {
				p.errorf(v, "timeZone: %v", err)
			} else {
				rs.TimeZone = loc
			}
		}
	}
	if v := f["selector"]; v != nil {
		rs.Selector = p.selector(v)
	}
	if v := f["rules"]; v != nil {
		rs.rules = p.rules(v)
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs
	}
	windows := map[cardsv1alpha1.SpendWindowKind]bool{}
	for _, r := range rs.rules {
		switch r.kind {
		case kindSpend:
			windows[r.window] = true
		case kindCondition:
			rs.needCard = true
		}
	}
	for _, r := range rs.rules {
		for _, w := range r.reads {
			windows[w] = true
		}
	}
	for _, w := range windowOrder {
		if windows[w] {
			rs.countsToward = append(rs.countsToward, w)
		}
	}
	return rs, nil
}

// loadLocation is time.LoadLocation without "Local", which would make decisions depend on the host.
func loadLocation(s string) (*time.Location, error) {
	if s == "" || s == "Local" {
		return nil, fmt.Errorf("%q is not an IANA time zone name (e.g. UTC, Europe/Berlin)", s)
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA time zone name (e.g. UTC, Europe/Berlin)", s)
	}
	return loc, nil
}

// document decodes exactly one YAML document into its root node.
func (p *parser) document(data []byte) (*yaml.Node, *Error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Line: 1, Message: "the rule set is empty"}
		}
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Line: extra.Line, Message: "more than one YAML document: a rule set is one document"} // the line of ---
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	root := doc.Content[0]
	if isNull(root) {
		return nil, &Error{Line: root.Line, Message: "the rule set is empty"}
	}
	return root, nil
}

func yamlError(err error) *Error {
	msg := strings.SplitN(err.Error(), "\n", 2)[0]
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Line: line, Message: "invalid YAML: " + m[2]}
	}
	return &Error{Line: 1, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// mapping checks that n is a mapping with only the allowed keys, each at most once, and returns the values by
// key; null values count as absent. where prefixes messages, e.g. "spend".
func (p *parser) mapping(n *yaml.Node, where string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%sexpected a mapping", prefix(where))
		return out
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if seen[k.Value] {
			p.errorf(k, "%s%s is given twice", prefix(where), k.Value)
			continue
		}
		seen[k.Value] = true
		if !slices.Contains(allowed, k.Value) {
			p.errorf(k, "%sunknown field %q (expected one of %s)", prefix(where), k.Value, strings.Join(allowed, ", "))
			continue
		}
		if !isNull(v) {
			out[k.Value] = v
		}
	}
	return out
}

func prefix(where string) string {
	if where == "" {
		return ""
	}
	return where + ": "
}

// str returns the text of a scalar (numbers and booleans as written).
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s: expected a string", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) outcome(n *yaml.Node, what string) Outcome {
	s, ok := p.str(n, what)
	if !ok {
		return ""
	}
	switch strings.ToLower(s) {
	case "approve":
		return cardsv1alpha1.DecisionApproved
	case "decline":
		return cardsv1alpha1.DecisionDeclined
	}
	p.errorf(n, "%s: %q is not approve or decline", what, s)
	return ""
}

func (p *parser) selector(n *yaml.Node) labels.Selector {
	var v any
	if err := n.Decode(&v); err != nil {
		p.errorf(n, "selector: %v", err)
		return labels.Nothing()
	}
	data, err := json.Marshal(v)
	if err != nil {
		p.errorf(n, "selector: %v", err)
		return labels.Nothing()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ls metav1.LabelSelector
	if err := dec.Decode(&ls); err != nil {
		p.errorf(n, "selector: %s", strings.TrimPrefix(err.Error(), "json: "))
		return labels.Nothing()
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		p.errorf(n, "selector: %v", err)
		return labels.Nothing()
	}
	return sel
}

func (p *parser) rules(n *yaml.Node) []*rule {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "rules: expected a list")
		return nil
	}
	if len(n.Content) > MaxRules {
		p.errorf(n, "rules: %d rules, more than the limit of %d", len(n.Content), MaxRules)
		return nil
	}
	names := map[string]int{}
	var out []*rule
	shadows := 0
	for i, item := range n.Content {
		r := p.parseRule(resolve(item), i, names)
		p.rule = ""
		if r == nil {
			continue
		}
		if r.mode == cardsv1alpha1.RuleShadow {
			if shadows++; shadows == MaxShadowRules+1 {
				p.rule = r.name
				p.errorf(item, "more than %d shadow rules", MaxShadowRules)
				p.rule = ""
			}
		}
		out = append(out, r)
	}
	return out
}

var ruleKeys = append([]string{"name", "description", "reason", "mode"}, matcherKeys...)

func (p *parser) parseRule(n *yaml.Node, index int, names map[string]int) *rule {
	errs := len(p.errs)
	p.rule = ruleName(n) // name the rule in errors about its other fields too
	where := ""
	if p.rule == "" {
		where = fmt.Sprintf("rules[%d]", index)
	}
	f := p.mapping(n, where, ruleKeys...)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	r := &rule{mode: cardsv1alpha1.RuleEnforce}
	p.ruleName(r, n, f["name"], index, names)
	if v := f["description"]; v != nil {
		if s, ok := p.str(v, "description"); ok && len(s) > 1024 {
			p.errorf(v, "description: longer than 1024 characters")
		}
	}
	if v := f["reason"]; v == nil {
		p.errorf(n, "reason is required (a decline reason code such as BLOCKED_MCC)")
	} else if s, ok := p.str(v, "reason"); ok {
		if len(s) > 64 || !reasonRE.MatchString(s) {
			p.errorf(v, "reason: %q must match ^[A-Z][A-Z0-9_]*$ (at most 64)", s)
		}
		r.reason = s
	}
	if v := f["mode"]; v != nil {
		if s, ok := p.str(v, "mode"); ok {
			switch m := cardsv1alpha1.RuleMode(strings.ToLower(s)); m {
			case cardsv1alpha1.RuleEnforce, cardsv1alpha1.RuleShadow:
				r.mode = m
			default:
				p.errorf(v, "mode: %q is not enforce or shadow", s)
			}
		}
	}
	p.matcher(r, n, f)
	if len(p.errs) > errs {
		return nil
	}
	return r
}

// ruleName is the rule's name when it is a valid one, for messages about the rule's other fields.
func ruleName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	name := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if v := resolve(n.Content[i+1]); n.Content[i].Value == "name" && v.Kind == yaml.ScalarNode && len(v.Value) <= 128 && ruleNameRE.MatchString(v.Value) {
			name = v.Value
		}
	}
	return name
}

// ruleName checks a rule's name: required, well-formed, unique in the set.
func (p *parser) ruleName(r *rule, n, v *yaml.Node, index int, names map[string]int) {
	if v == nil {
		p.errorf(n, "rules[%d]: name is required", index)
		return
	}
	s, ok := p.str(v, "name")
	switch {
	case !ok:
	case len(s) > 128 || !ruleNameRE.MatchString(s):
		p.errorf(v, "rules[%d]: name %q must be lower-case letters, digits and '-' (at most 128)", index, s)
	case names[s] > 0:
		p.errorf(v, "name is used twice (also by rules[%d])", names[s]-1)
	default:
		names[s] = index + 1
		r.name = s
	}
}

// matcher reads the one matcher of a rule.
func (p *parser) matcher(r *rule, n *yaml.Node, f map[string]*yaml.Node) {
	var given []string
	for _, k := range matcherKeys {
		if f[k] != nil {
			given = append(given, k)
		}
	}
	switch len(given) {
	case 0:
		p.errorf(n, "a rule needs one of %s", strings.Join(matcherKeys, ", "))
		return
	case 1:
	default:
		p.errorf(f[given[1]], "a rule has exactly one matcher, this one has %s", strings.Join(given, " and "))
		return
	}
	r.kind = kind(slices.Index(matcherKeys, given[0]))
	v := f[given[0]]
	switch r.kind {
	case kindMCC:
		p.mccList(r, v)
	case kindCountry:
		p.countryList(r, v)
	case kindAmount:
		p.amount(r, v)
	case kindSpend:
		p.spend(r, v)
	case kindCondition:
		p.condition(r, v)
	}
}

// list reads the allow or block list of an mcc or merchantCountry matcher.
func (p *parser) list(r *rule, n *yaml.Node, what string) []*yaml.Node {
	f := p.mapping(n, what, "allow", "block")
	allow, block := f["allow"], f["block"]
	if (allow == nil) == (block == nil) {
		if n.Kind == yaml.MappingNode {
			p.errorf(n, "%s: give exactly one of allow or block", what)
		}
		return nil
	}
	l, key := allow, "allow"
	if l == nil {
		l, key = block, "block"
	}
	r.allow = allow != nil
	if l.Kind != yaml.SequenceNode {
		p.errorf(l, "%s.%s: expected a list", what, key)
		return nil
	}
	if len(l.Content) == 0 {
		p.errorf(l, "%s.%s: the list is empty", what, key)
		return nil
	}
	if len(l.Content) > MaxListEntries {
		p.errorf(l, "%s.%s: %d entries, more than the limit of %d", what, key, len(l.Content), MaxListEntries)
		return nil
	}
	return l.Content
}

func (p *parser) mccList(r *rule, n *yaml.Node) {
	items := p.list(r, n, "mcc")
	r.mccs = &mccSet{}
	for _, item := range items {
		item = resolve(item)
		s, ok := p.str(item, "mcc")
		if !ok {
			continue
		}
		lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
		lo, hi = strings.TrimSpace(lo), strings.TrimSpace(hi)
		if !isRange {
			hi = lo
		}
		if !mccRE.MatchString(lo) || !mccRE.MatchString(hi) {
			p.errorf(item, "mcc: %q is not a 4-digit merchant category code or a range such as 7800-7802", s)
			continue
		}
		a, _ := strconv.Atoi(lo)
		b, _ := strconv.Atoi(hi)
		if a > b {
			p.errorf(item, "mcc: range %q runs backwards", s)
			continue
		}
		r.mccs.add(a, b)
	}
}

func (p *parser) countryList(r *rule, n *yaml.Node) {
	items := p.list(r, n, "merchantCountry")
	r.countries = map[string]bool{}
	for _, item := range items {
		item = resolve(item)
		s, ok := p.str(item, "merchantCountry")
		if !ok {
			continue
		}
		c, ok := country(s)
		if !ok {
			p.errorf(item, "merchantCountry: %q is not an ISO 3166-1 alpha-2 or alpha-3 country code", s)
			continue
		}
		r.countries[c] = true
	}
}

// alpha2 is the set of ISO 3166-1 alpha-2 codes.
var alpha2 = func() map[string]bool {
	m := make(map[string]bool, len(alpha3ToAlpha2))
	for _, a2 := range alpha3ToAlpha2 {
		m[a2] = true
	}
	return m
}()

// country normalizes an ISO 3166-1 alpha-2 or alpha-3 code to alpha-2.
func country(s string) (string, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	switch len(s) {
	case 2:
		return s, alpha2[s]
	case 3:
		a2, ok := alpha3ToAlpha2[s]
		return a2, ok
	}
	return s, false
}

func (p *parser) currency(n *yaml.Node, what string) string {
	s, ok := p.str(n, what)
	if !ok {
		return ""
	}
	c := strings.ToUpper(strings.TrimSpace(s))
	if !currencies[c] {
		p.errorf(n, "%s: %q is not an ISO 4217 currency code", what, s)
		return ""
	}
	return c
}

func (p *parser) decimal(n *yaml.Node, what string) (decimal.Decimal, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return decimal.Decimal{}, false
	}
	s = strings.TrimSpace(s)
	if !decimalRE.MatchString(s) {
		p.errorf(n, "%s: %q is not a non-negative decimal amount such as \"500.00\"", what, s)
		return decimal.Decimal{}, false
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		p.errorf(n, "%s: %v", what, err)
		return decimal.Decimal{}, false
	}
	return d, true
}

func (p *parser) otherCurrencies(r *rule, f map[string]*yaml.Node, what string) {
	v := f["otherCurrencies"]
	if v == nil {
		return
	}
	if s, ok := p.str(v, what+".otherCurrencies"); ok {
		switch strings.ToLower(s) {
		case "decline":
		case "skip":
			r.skipOtherCurrencies = true
		default:
			p.errorf(v, "%s.otherCurrencies: %q is not decline or skip", what, s)
		}
	}
}

func (p *parser) amount(r *rule, n *yaml.Node) {
	f := p.mapping(n, "amount", "max", "currency", "otherCurrencies")
	if n.Kind != yaml.MappingNode {
		return
	}
	if v := f["max"]; v == nil {
		p.errorf(n, "amount.max is required")
	} else if d, ok := p.decimal(v, "amount.max"); ok {
		r.max = d
	}
	if v := f["currency"]; v == nil {
		p.errorf(n, "amount.currency is required")
	} else {
		r.currency = p.currency(v, "amount.currency")
	}
	p.otherCurrencies(r, f, "amount")
}

func (p *parser) spend(r *rule, n *yaml.Node) {
	f := p.mapping(n, "spend", "window", "maxAmount", "currency", "maxCount", "otherCurrencies")
	if n.Kind != yaml.MappingNode {
		return
	}
	if v := f["window"]; v == nil {
		p.errorf(n, "spend.window is required (Daily, Weekly, Monthly or AllTime)")
	} else if s, ok := p.str(v, "spend.window"); ok {
		i := slices.IndexFunc(windowOrder, func(w cardsv1alpha1.SpendWindowKind) bool { return strings.EqualFold(string(w), s) })
		if i < 0 {
			p.errorf(v, "spend.window: %q is not Daily, Weekly, Monthly or AllTime", s)
		} else {
			r.window = windowOrder[i]
		}
	}
	if f["maxAmount"] == nil && f["maxCount"] == nil {
		p.errorf(n, "spend needs maxAmount, maxCount or both")
	}
	if v := f["maxAmount"]; v != nil {
		if d, ok := p.decimal(v, "spend.maxAmount"); ok {
			r.maxAmount = &d
		}
		if f["currency"] == nil {
			p.errorf(n, "spend.currency is required with maxAmount")
		}
	}
	if v := f["maxCount"]; v != nil {
		if s, ok := p.str(v, "spend.maxCount"); ok {
			c, err := strconv.ParseInt(s, 10, 64)
			if err != nil || c < 0 {
				p.errorf(v, "spend.maxCount: %q is not a non-negative integer", s)
			}
			r.maxCount, r.hasMaxCount = c, true
		}
	}
	if v := f["currency"]; v != nil {
		r.currency = p.currency(v, "spend.currency")
	}
	p.otherCurrencies(r, f, "spend")
}

func (p *parser) condition(r *rule, n *yaml.Node) {
	src, ok := p.str(n, "condition")
	if !ok {
		return
	}
	if len(src) > MaxConditionLength {
		p.errorf(n, "condition: longer than %d bytes", MaxConditionLength)
		return
	}
	prg, windows, issue := compileCondition(src)
	if issue != nil {
		line := n.Line
		switch n.Style {
		case yaml.LiteralStyle, yaml.FoldedStyle:
			// The text starts on the line after the | or > indicator; folded text keeps its line breaks only
			// between paragraphs, so this is exact for | and close for >.
			line += issue.line
		}
		// Plain and quoted scalars fold their line breaks into spaces: the expression is one line, at n.Line.
		p.errs = append(p.errs, &Error{Line: line, Rule: p.rule, Message: issue.message})
		return
	}
	r.program, r.reads = prg, windows
}
