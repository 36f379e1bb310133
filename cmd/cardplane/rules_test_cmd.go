package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
)

func newRulesTestCommand() *cobra.Command {
	var casesPath string
	cmd := &cobra.Command{
		Use:   "test FILE --cases CASES.yaml",
		Short: "Run decision test cases against a rule set",
		Long: `Evaluate test cases against a rule set and print PASS or FAIL per case, with the expectations a failing
case misses. A case gives a transaction, the card (labels, phase, balance, spend) and the expected outcome,
and optionally rule, reason and shadow rules; see docs/rules.md for the format.`,
		Example: `  cardplane rules test config/samples/rules/card-rules.yaml --cases config/samples/rules/card-rules-cases.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || casesPath == "" {
				return errors.New("rules test: name one FILE and --cases")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return rulesTest(args[0], casesPath, cmd.OutOrStdout()) },
	}
	cmd.Flags().StringVar(&casesPath, "cases", "", "the test cases: `CASES.yaml`, a list of {name, transaction, card, now, expect} (required)")
	return cmd
}

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

func rulesTest(file, casesPath string, stdout io.Writer) error {
	rs, _, err := loadRuleSet(file, stdout)
	if err != nil {
		return err
	}
	cf, err := readCases(casesPath)
	if err != nil {
		return err
	}
	defaultNow := time.Now()
	if cf.Now != "" {
		if defaultNow, err = parseTime(cf.Now); err != nil {
			return fmt.Errorf("%s: %w", casesPath, err)
		}
	}
	failed := 0
	for i := range cf.Cases {
		c := &cf.Cases[i]
		if o := normalizeOutcome(c.Expect.Outcome); o != string(cardsv1alpha1.DecisionApproved) && o != string(cardsv1alpha1.DecisionDeclined) && o != outcomeNotSelected {
			return fmt.Errorf("%s:%d: case %s: expect.outcome %q is not Approved, Declined or NotSelected", casesPath, c.line, c.Name, c.Expect.Outcome)
		}
		got, errs, err := c.run(rs, defaultNow)
		if err != nil {
			return fmt.Errorf("%s:%d: case %s: %w", casesPath, c.line, c.Name, err)
		}
		diff := c.diff(got)
		if len(diff) == 0 {
			fmt.Fprintf(stdout, "PASS  %s\n", c.Name)
		} else {
			failed++
			fmt.Fprintf(stdout, "FAIL  %s (%s:%d)\n", c.Name, casesPath, c.line)
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
