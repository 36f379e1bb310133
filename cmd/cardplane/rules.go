package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
)

const rulesUsage = `Usage:
  cardplane rules lint FILE...                                  validate rule sets
  cardplane rules test FILE --cases CASES.yaml                  run decision test cases against a rule set
  cardplane rules backtest FILE --transactions EXPORT.json      replay recorded decisions against a rule set
                           [--cards CARDS.json] [--fail-on-change]

FILE is a rule-set ConfigMap (kind: ConfigMap, labelled cards.cardplane.io/rule-set: "true", with data
key rules.yaml) or a bare rules.yaml. EXPORT.json is "kubectl get cardtransactions -o json" (YAML works too),
CARDS.json "kubectl get cards -o json". Every command exits 0 when all is well and 1 otherwise.
See docs/rules.md.
`

// runRulesCommand validates rule sets offline, runs decision test cases and backtests a candidate set against
// recorded CardTransactions: what a GitOps pipeline runs before a rule set reaches the cluster.
func runRulesCommand(args []string) error {
	return rulesCommand(args, os.Stdout, os.Stderr)
}

func rulesCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rulesUsage)
		return errors.New("rules: name a command: lint, test or backtest")
	}
	switch args[0] {
	case "lint":
		return rulesLint(args[1:], stdout, stderr)
	case "test":
		return rulesTest(args[1:], stdout, stderr)
	case "backtest":
		return rulesBacktest(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, rulesUsage)
		return nil
	}
	fmt.Fprint(stderr, rulesUsage)
	return fmt.Errorf("rules: unknown command %q", args[0])
}

// parseInterleaved parses flags that may come before, between or after the positional arguments
// ("rules test FILE --cases X"), which the flag package alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func newRulesFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rules "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cardplane rules %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// helpRequested turns -h into a clean exit.
func helpRequested(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// ruleSetFile is a rule set read from a file: a ConfigMap or a bare rules.yaml.
type ruleSetFile struct {
	path string
	data []byte // rules.yaml
	// lineOffset turns a line of rules.yaml into a line of the file; -1 when the value is not a block scalar.
	lineOffset int
	// namespace, name and resourceVersion of the ConfigMap; empty for a bare rules.yaml.
	namespace, name, resourceVersion string
	// problems are mistakes of the ConfigMap around the rule set, with file lines.
	problems []fileProblem
}

type fileProblem struct {
	line    int
	message string
}

// readRuleSetFile reads FILE as a rule-set ConfigMap, or as a bare rules.yaml when it has no kind.
func readRuleSetFile(path string) (*ruleSetFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &ruleSetFile{path: path, data: data}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return f, nil // not a ConfigMap: rules.Validate reports what is wrong with it as a rule set
	}
	root := doc.Content[0]
	kind := mappingValue(root, "kind")
	if kind == nil {
		return f, nil
	}
	if kind.Value != "ConfigMap" {
		return nil, fmt.Errorf("%s:%d: kind %s: expected a ConfigMap or a bare rules.yaml", path, kind.Line, kind.Value)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for docs := 0; ; docs++ {
		var next yaml.Node
		if err := dec.Decode(&next); err != nil {
			break
		}
		if docs == 1 {
			return nil, fmt.Errorf("%s:%d: a second YAML document: give one rule set per file", path, next.Line)
		}
	}
	meta := mappingValue(root, "metadata")
	f.namespace, f.name = "default", "rule-set"
	if meta != nil {
		if v := mappingValue(meta, "name"); v != nil {
			f.name = v.Value
		}
		if v := mappingValue(meta, "namespace"); v != nil {
			f.namespace = v.Value
		}
		if v := mappingValue(meta, "resourceVersion"); v != nil {
			f.resourceVersion = v.Value
		}
	}
	labelsLine := root.Line
	var label *yaml.Node
	if meta != nil {
		labelsLine = meta.Line
		if l := mappingValue(meta, "labels"); l != nil {
			labelsLine = l.Line
			label = mappingValue(l, rules.LabelRuleSet)
		}
	}
	if label == nil || label.Value != "true" {
		f.problems = append(f.problems, fileProblem{labelsLine,
			fmt.Sprintf("metadata.labels: %s: \"true\" is missing: cardplane does not load this ConfigMap", rules.LabelRuleSet)})
	}
	var value *yaml.Node
	if d := mappingValue(root, "data"); d != nil {
		value = mappingValue(d, rules.ConfigMapKey)
	}
	if value == nil {
		return nil, fmt.Errorf("%s:%d: the ConfigMap has no data key %s", path, root.Line, rules.ConfigMapKey)
	}
	f.data = []byte(value.Value)
	f.lineOffset = -1
	if value.Style == yaml.LiteralStyle || value.Style == yaml.FoldedStyle {
		f.lineOffset = value.Line // the text starts on the line after the | indicator
	}
	return f, nil
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// version is what decisions record as ruleSetVersion: namespace/name@resourceVersion ("local" when absent).
func (f *ruleSetFile) version() (name, version string) {
	if f.name == "" {
		return f.path, f.path + "@local"
	}
	name = f.namespace + "/" + f.name
	rv := f.resourceVersion
	if rv == "" {
		rv = "local"
	}
	return name, name + "@" + rv
}

// where renders FILE:LINE for a line of rules.yaml.
func (f *ruleSetFile) where(line int) string {
	switch {
	case line <= 0:
		return f.path
	case f.lineOffset < 0:
		return fmt.Sprintf("%s: %s line %d", f.path, rules.ConfigMapKey, line)
	default:
		return fmt.Sprintf("%s:%d", f.path, f.lineOffset+line)
	}
}

// lint lists everything wrong with the file, as "FILE:LINE: rule NAME: message" lines.
func (f *ruleSetFile) lint() []string {
	var out []string
	for _, p := range f.problems {
		out = append(out, fmt.Sprintf("%s:%d: %s", f.path, p.line, p.message))
	}
	for _, e := range rules.Validate(f.data) {
		msg := e.Message
		if e.Rule != "" {
			msg = "rule " + e.Rule + ": " + msg
		}
		out = append(out, f.where(e.Line)+": "+msg)
	}
	return out
}

// loadRuleSet reads and compiles the rule set of FILE, printing its problems.
func loadRuleSet(path string, stdout io.Writer) (*rules.RuleSet, *ruleSetFile, error) {
	f, err := readRuleSetFile(path)
	if err != nil {
		return nil, nil, err
	}
	if problems := f.lint(); len(problems) > 0 {
		fmt.Fprintln(stdout, strings.Join(problems, "\n"))
		return nil, nil, fmt.Errorf("%s: the rule set is not valid", path)
	}
	rs, err := rules.Parse(f.data)
	if err != nil {
		return nil, nil, err
	}
	rs.Name, rs.Version = f.version()
	return rs, f, nil
}

func rulesLint(args []string, stdout, stderr io.Writer) error {
	fs := newRulesFlagSet("lint", "lint FILE...", stderr)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return helpRequested(err)
	}
	if len(files) == 0 {
		fs.Usage()
		return errors.New("rules lint: name at least one FILE")
	}
	failed := 0
	for _, path := range files {
		f, err := readRuleSetFile(path)
		if err != nil {
			fmt.Fprintln(stdout, err)
			failed++
			continue
		}
		if problems := f.lint(); len(problems) > 0 {
			fmt.Fprintln(stdout, strings.Join(problems, "\n"))
			failed++
			continue
		}
		rs, err := rules.Parse(f.data)
		if err != nil { // Validate found nothing, so this cannot happen; report it rather than pass
			fmt.Fprintf(stdout, "%s: %v\n", path, err)
			failed++
			continue
		}
		noun := "rules"
		if rs.Len() == 1 {
			noun = "rule"
		}
		fmt.Fprintf(stdout, "%s: ok (%d %s)\n", path, rs.Len(), noun)
	}
	if failed > 0 {
		return fmt.Errorf("rules lint: %d of %d files failed", failed, len(files))
	}
	return nil
}

// --- rules test ---

// casesFile is the input of `rules test`: test cases, and a default now for them.
type casesFile struct {
	Now   string     `yaml:"now"`
	Cases []ruleCase `yaml:"cases"`
}

type ruleCase struct {
	Name        string          `yaml:"name"`
	Transaction caseTransaction `yaml:"transaction"`
	Card        caseCard        `yaml:"card"`
	Now         string          `yaml:"now"`
	Expect      caseExpect      `yaml:"expect"`
	line        int
}

type caseTransaction struct {
	ID              string `yaml:"id"`
	AuthorizationID string `yaml:"authorizationID"`
	Amount          text   `yaml:"amount"`
	Currency        string `yaml:"currency"`
	MCC             text   `yaml:"mcc"`
	MerchantCountry string `yaml:"merchantCountry"`
	MerchantName    string `yaml:"merchantName"`
	Channel         string `yaml:"channel"`
}

type caseCard struct {
	Namespace string            `yaml:"namespace"`
	Name      string            `yaml:"name"`
	Labels    map[string]string `yaml:"labels"`
	Phase     string            `yaml:"phase"`
	Balance   *caseMoney        `yaml:"balance"`
	Spend     []caseSpend       `yaml:"spend"`
}

type caseMoney struct {
	Value    text   `yaml:"value"`
	Currency string `yaml:"currency"`
}

// caseSpend is one window of the card's spend ledger; currency defaults to the transaction's and start to the
// start of the current window (so the entry counts), unless given.
type caseSpend struct {
	Window   string `yaml:"window"`
	Amount   text   `yaml:"amount"`
	Count    int64  `yaml:"count"`
	Currency string `yaml:"currency"`
	Start    string `yaml:"start"`
}

type caseExpect struct {
	Outcome string    `yaml:"outcome"`
	Rule    *string   `yaml:"rule"`
	Reason  *string   `yaml:"reason"`
	Shadow  *[]string `yaml:"shadow"`
}

// text keeps a scalar as written, so amounts (12.50) and codes (0742) are not turned into numbers.
type text string

func (t *text) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a scalar", n.Line)
	}
	*t = text(n.Value)
	return nil
}

// outcomeNotSelected is the result of a case whose card the rule set's selector does not select.
const outcomeNotSelected = "NotSelected"

func readCases(path string) (*casesFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// The nodes give each case its line; the strict decoder makes a misspelt field an error rather than an
	// expectation that is silently never checked.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	root := doc.Content[0]
	cf := &casesFile{}
	var items []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	switch root.Kind {
	case yaml.SequenceNode: // a bare list of cases
		items = root.Content
		err = dec.Decode(&cf.Cases)
	case yaml.MappingNode:
		if v := mappingValue(root, "cases"); v != nil {
			items = v.Content
		}
		err = dec.Decode(cf)
	default:
		return nil, fmt.Errorf("%s:%d: expected a list of cases, or a mapping with now and cases", path, root.Line)
	}
	if err != nil {
		return nil, casesError(path, err)
	}
	if len(cf.Cases) == 0 || len(cf.Cases) != len(items) {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	for i := range cf.Cases {
		c := &cf.Cases[i]
		c.line = items[i].Line
		if c.Name == "" {
			c.Name = fmt.Sprintf("case-%d", i+1)
		}
	}
	return cf, nil
}

var (
	yamlLineRE      = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownRE   = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	yamlUnmarshalRE = regexp.MustCompile(`^cannot unmarshal (\S+) .*into (\S+)$`)
)

// casesError renders the decoder's errors as FILE:LINE: message lines.
func casesError(path string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var lines []string
	for _, e := range te.Errors {
		line, msg := "", e
		if m := yamlLineRE.FindStringSubmatch(e); m != nil {
			line, msg = ":"+m[1], m[2]
		}
		if m := yamlUnknownRE.FindStringSubmatch(msg); m != nil {
			msg = "unknown field " + m[1]
		} else if m := yamlUnmarshalRE.FindStringSubmatch(msg); m != nil {
			msg = "expected " + strings.TrimPrefix(strings.TrimPrefix(m[2], "[]"), "main.") + ", not " + m[1]
		}
		lines = append(lines, path+line+": "+msg)
	}
	return errors.New(strings.Join(lines, "\n"))
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("now %q is not an RFC 3339 time", s)
	}
	return t, nil
}

// run evaluates the case and returns the decision's fields as the case spells them.
func (c *ruleCase) run(rs *rules.RuleSet, defaultNow time.Time) (got caseResult, errs []string, err error) {
	now := defaultNow
	if c.Now != "" {
		if now, err = parseTime(c.Now); err != nil {
			return got, nil, err
		}
	}
	ct := c.Transaction
	tx := rules.Transaction{ID: ct.ID, AuthorizationID: ct.AuthorizationID,
		Amount: cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(ct.Amount), Currency: ct.Currency},
		MCC:    string(ct.MCC), MerchantName: ct.MerchantName, MerchantCountry: ct.MerchantCountry, Channel: ct.Channel}
	if tx.ID == "" {
		tx.ID = c.Name
	}
	card := rules.Card{Namespace: c.Card.Namespace, Name: c.Card.Name, Labels: c.Card.Labels, Phase: cardsv1alpha1.CardPhase(c.Card.Phase)}
	if b := c.Card.Balance; b != nil {
		card.Balance = &cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(b.Value), Currency: b.Currency}
	}
	if len(c.Card.Spend) > 0 {
		card.Spend = &cardsv1alpha1.CardSpend{}
		for _, s := range c.Card.Spend {
			w := cardsv1alpha1.SpendWindowKind(s.Window)
			sw := cardsv1alpha1.SpendWindow{Window: w, Currency: s.Currency, Amount: cardsv1alpha1.Decimal(s.Amount), Count: s.Count}
			if sw.Currency == "" {
				sw.Currency = strings.ToUpper(ct.Currency)
			}
			if sw.Amount == "" {
				sw.Amount = "0"
			}
			switch {
			case s.Start != "":
				start, err := parseTime(s.Start)
				if err != nil {
					return got, nil, fmt.Errorf("card.spend start: %w", err)
				}
				sw.Start = timePtr(start)
			case w != cardsv1alpha1.SpendAllTime:
				sw.Start = timePtr(rules.WindowStart(w, now, rs.TimeZone))
			}
			card.Spend.Windows = append(card.Spend.Windows, sw)
		}
	}
	if !rs.Matches(card.Labels) {
		return caseResult{Outcome: outcomeNotSelected}, nil, nil
	}
	d := rs.Evaluate(tx, card, now)
	got = caseResult{Outcome: string(d.Outcome), Rule: d.Rule, Reason: d.Reason, Shadow: []string{}}
	for _, s := range d.Shadow {
		got.Shadow = append(got.Shadow, s.Rule)
	}
	return got, d.Errors, nil
}

type caseResult struct {
	Outcome, Rule, Reason string
	Shadow                []string
}

// diff lists the expectations the result misses, as "-want" / "+got" lines.
func (c *ruleCase) diff(got caseResult) []string {
	var out []string
	check := func(field, want, got string) {
		if want != got {
			out = append(out, fmt.Sprintf("- %s: %s", field, quoteEmpty(want)), fmt.Sprintf("+ %s: %s", field, quoteEmpty(got)))
		}
	}
	check("outcome", normalizeOutcome(c.Expect.Outcome), got.Outcome)
	if c.Expect.Rule != nil {
		check("rule", *c.Expect.Rule, got.Rule)
	}
	if c.Expect.Reason != nil {
		check("reason", *c.Expect.Reason, got.Reason)
	}
	if c.Expect.Shadow != nil && got.Outcome != outcomeNotSelected {
		check("shadow", "["+strings.Join(*c.Expect.Shadow, ", ")+"]", "["+strings.Join(got.Shadow, ", ")+"]")
	}
	return out
}

func normalizeOutcome(s string) string {
	switch strings.ToLower(s) {
	case "approved", "approve":
		return string(cardsv1alpha1.DecisionApproved)
	case "declined", "decline":
		return string(cardsv1alpha1.DecisionDeclined)
	case "notselected":
		return outcomeNotSelected
	}
	return s
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func rulesTest(args []string, stdout, stderr io.Writer) error {
	fs := newRulesFlagSet("test", "test FILE --cases CASES.yaml", stderr)
	casesPath := fs.String("cases", "", "the test cases: `CASES.yaml`, a list of {name, transaction, card, now, expect} (required)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return helpRequested(err)
	}
	if len(files) != 1 || *casesPath == "" {
		fs.Usage()
		return errors.New("rules test: name one FILE and --cases")
	}
	rs, _, err := loadRuleSet(files[0], stdout)
	if err != nil {
		return err
	}
	cf, err := readCases(*casesPath)
	if err != nil {
		return err
	}
	defaultNow := time.Now()
	if cf.Now != "" {
		if defaultNow, err = parseTime(cf.Now); err != nil {
			return fmt.Errorf("%s: %w", *casesPath, err)
		}
	}
	failed := 0
	for i := range cf.Cases {
		c := &cf.Cases[i]
		if o := normalizeOutcome(c.Expect.Outcome); o != string(cardsv1alpha1.DecisionApproved) && o != string(cardsv1alpha1.DecisionDeclined) && o != outcomeNotSelected {
			return fmt.Errorf("%s:%d: case %s: expect.outcome %q is not Approved, Declined or NotSelected", *casesPath, c.line, c.Name, c.Expect.Outcome)
		}
		got, errs, err := c.run(rs, defaultNow)
		if err != nil {
			return fmt.Errorf("%s:%d: case %s: %w", *casesPath, c.line, c.Name, err)
		}
		diff := c.diff(got)
		if len(diff) == 0 {
			fmt.Fprintf(stdout, "PASS  %s\n", c.Name)
		} else {
			failed++
			fmt.Fprintf(stdout, "FAIL  %s (%s:%d)\n", c.Name, *casesPath, c.line)
			for _, l := range diff {
				fmt.Fprintf(stdout, "      %s\n", l)
			}
		}
		for _, e := range errs {
			fmt.Fprintf(stdout, "      note: %s\n", e)
		}
	}
	fmt.Fprintf(stdout, "%d cases: %d passed, %d failed\n", len(cf.Cases), len(cf.Cases)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("rules test: %d of %d cases failed", failed, len(cf.Cases))
	}
	return nil
}

// --- rules backtest ---

// objectList is a kubectl export: a v1 List (or a typed list), or a single object.
type objectList[T any] struct {
	Kind  string `json:"kind"`
	Items []T    `json:"items"`
}

func readExport[T any](path, kind string) ([]T, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var head struct {
		Kind string `json:"kind"`
	}
	if err := sigsyaml.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch head.Kind {
	case kind:
		var one T
		if err := sigsyaml.Unmarshal(data, &one); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []T{one}, nil
	case "List", kind + "List":
		var kinds objectList[struct {
			Kind string `json:"kind"`
		}]
		if err := sigsyaml.Unmarshal(data, &kinds); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for i, item := range kinds.Items {
			if item.Kind != "" && item.Kind != kind {
				return nil, fmt.Errorf("%s: items[%d] is a %s, not a %s", path, i, item.Kind, kind)
			}
		}
		var l objectList[T]
		if err := sigsyaml.Unmarshal(data, &l); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return l.Items, nil
	}
	return nil, fmt.Errorf("%s: kind %q: expected a List of %s (kubectl get ... -o json)", path, head.Kind, kind)
}

func timePtr(t time.Time) *metav1.Time { return &metav1.Time{Time: t.UTC()} }

// backtestRow is one replayed transaction.
type backtestRow struct {
	tx       *cardsv1alpha1.CardTransaction
	at       time.Time
	was      *cardsv1alpha1.AuthorizationDecision
	wouldBe  rules.Decision
	selected bool
}

func rulesBacktest(args []string, stdout, stderr io.Writer) error {
	fs := newRulesFlagSet("backtest", "backtest FILE --transactions EXPORT.json [--cards CARDS.json] [--fail-on-change]", stderr)
	txPath := fs.String("transactions", "", "the recorded decisions to replay: `EXPORT.json`, the output of kubectl get cardtransactions -o json (required)")
	cardsPath := fs.String("cards", "", "card labels, phase and balance: `CARDS.json`, the output of kubectl get cards -o json")
	failOnChange := fs.Bool("fail-on-change", false, "exit 1 when any decision would change")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return helpRequested(err)
	}
	if len(files) != 1 || *txPath == "" {
		fs.Usage()
		return errors.New("rules backtest: name one FILE and --transactions")
	}
	rs, f, err := loadRuleSet(files[0], stdout)
	if err != nil {
		return err
	}
	txns, err := readExport[cardsv1alpha1.CardTransaction](*txPath, "CardTransaction")
	if err != nil {
		return err
	}
	cards := map[string]*cardsv1alpha1.Card{}
	if *cardsPath != "" {
		list, err := readExport[cardsv1alpha1.Card](*cardsPath, "Card")
		if err != nil {
			return err
		}
		for i := range list {
			cards[list[i].Namespace+"/"+list[i].Name] = &list[i]
		}
	} else {
		note := "note: without --cards the rules see no card labels, phase or balance"
		if !rs.Selector.Empty() {
			note += fmt.Sprintf(", and the selector %s selects no card", rs.Selector)
		}
		fmt.Fprintln(stderr, note)
	}

	var rows []*backtestRow
	var noDecision, otherNamespace int
	for i := range txns {
		tx := &txns[i]
		if tx.Status.Authorization == nil || tx.Status.Amount == nil {
			noDecision++
			continue
		}
		if f.namespace != "" && tx.Namespace != "" && tx.Namespace != f.namespace {
			otherNamespace++
			continue
		}
		rows = append(rows, &backtestRow{tx: tx, at: occurredAt(tx), was: tx.Status.Authorization})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if !rows[i].at.Equal(rows[j].at) {
			return rows[i].at.Before(rows[j].at)
		}
		return rows[i].tx.Namespace+"/"+rows[i].tx.Name < rows[j].tx.Namespace+"/"+rows[j].tx.Name
	})

	// Replay: each card's spend ledger starts empty and holds the approvals of the candidate set itself.
	ledgers := map[string]*cardsv1alpha1.CardSpend{}
	notSelected := 0
	shadow := map[string]int{}
	var shadowOrder []string
	for _, r := range rows {
		key := r.tx.Namespace + "/" + r.tx.Spec.CardRef.Name
		card := rules.Card{Namespace: r.tx.Namespace, Name: r.tx.Spec.CardRef.Name}
		if c := cards[key]; c != nil {
			card.Labels, card.Phase = c.Labels, c.Status.Phase
			if c.Status.Balance != nil {
				b := c.Status.Balance.Available
				card.Balance = &b
			}
		}
		if r.selected = rs.Matches(card.Labels); !r.selected {
			notSelected++
			continue
		}
		if ledgers[key] == nil {
			ledgers[key] = &cardsv1alpha1.CardSpend{}
		}
		card.Spend = ledgers[key]
		st := r.tx.Status
		tx := rules.Transaction{ID: r.tx.Spec.ProviderTransactionID, AuthorizationID: st.AuthorizationID, Amount: *st.Amount, Channel: st.Channel}
		if st.Merchant != nil {
			tx.MCC, tx.MerchantName, tx.MerchantCountry = st.Merchant.MCC, st.Merchant.Name, st.Merchant.Country
		}
		r.wouldBe = rs.Evaluate(tx, card, r.at)
		if r.wouldBe.Outcome == cardsv1alpha1.DecisionApproved {
			rules.Add(card.Spend, r.wouldBe.CountsToward, tx, r.at, rs.TimeZone)
		}
		for _, s := range r.wouldBe.Shadow {
			if shadow[s.Rule] == 0 {
				shadowOrder = append(shadowOrder, s.Rule)
			}
			shadow[s.Rule]++
		}
	}

	var evaluated, toDeclined, toApproved int
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := false
	for _, r := range rows {
		if !r.selected {
			continue
		}
		evaluated++
		if r.was.Outcome == r.wouldBe.Outcome {
			continue
		}
		if r.wouldBe.Outcome == cardsv1alpha1.DecisionDeclined {
			toDeclined++
		} else {
			toApproved++
		}
		if !header {
			fmt.Fprintln(tw, "OCCURRED\tTRANSACTION\tCARD\tAMOUNT\tWAS\tWOULD BE\tRULE\tREASON")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", r.at.UTC().Format(time.RFC3339), r.tx.Namespace+"/"+r.tx.Name,
			r.tx.Spec.CardRef.Name, r.tx.Status.Amount.Value, r.tx.Status.Amount.Currency, outcomeWithReason(r.was.Outcome, r.was.Reason),
			r.wouldBe.Outcome, dash(r.wouldBe.Rule), dash(r.wouldBe.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !header {
		fmt.Fprintln(stdout, "no decision would change")
	}
	changed := toDeclined + toApproved
	fmt.Fprintf(stdout, "%d evaluated, %d changed: approved->declined %d, declined->approved %d\n", evaluated, changed, toDeclined, toApproved)
	var skipped []string
	if noDecision > 0 {
		skipped = append(skipped, fmt.Sprintf("%d without a recorded decision or amount", noDecision))
	}
	if otherNamespace > 0 {
		skipped = append(skipped, fmt.Sprintf("%d in other namespaces than %s", otherNamespace, f.namespace))
	}
	if notSelected > 0 {
		skipped = append(skipped, fmt.Sprintf("%d of cards outside the selector %s", notSelected, rs.Selector))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(stdout, "skipped: %s\n", strings.Join(skipped, ", "))
	}
	for _, name := range shadowOrder {
		fmt.Fprintf(stdout, "shadow: %s would decline %d\n", name, shadow[name])
	}
	if *failOnChange && changed > 0 {
		return fmt.Errorf("rules backtest: %d decisions would change", changed)
	}
	return nil
}

// occurredAt orders the replay: when the transaction happened, else when it was decided, else created.
func occurredAt(tx *cardsv1alpha1.CardTransaction) time.Time {
	switch {
	case tx.Status.OccurredAt != nil:
		return tx.Status.OccurredAt.Time
	case tx.Status.Authorization != nil && tx.Status.Authorization.DecidedAt != nil:
		return tx.Status.Authorization.DecidedAt.Time
	}
	return tx.CreationTimestamp.Time
}

func outcomeWithReason(o cardsv1alpha1.DecisionOutcome, reason string) string {
	if reason == "" {
		return string(o)
	}
	return string(o) + " " + reason
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
