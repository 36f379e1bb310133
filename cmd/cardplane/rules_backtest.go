package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	sigsyaml "sigs.k8s.io/yaml"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
)

// backtestOptions are the flags of `cardplane rules backtest`.
type backtestOptions struct {
	transactions string
	decisionLog  string
	cards        string
	failOnChange bool
}

func newRulesBacktestCommand() *cobra.Command {
	o := &backtestOptions{}
	cmd := &cobra.Command{
		Use:   "backtest FILE (--transactions EXPORT.json [--cards CARDS.json] | --decision-log DECISIONS.jsonl) [--fail-on-change]",
		Short: "Replay recorded decisions against a rule set",
		Long: `Replay recorded decisions against a candidate rule set, in the order they occurred and with each card's
spend ledger rebuilt from the candidate's own approvals, and print the decisions that would change, a summary,
what was skipped, and how often each shadow rule would decline. The decisions come from CardTransactions
(--transactions, kept until retention deletes them) or from the decision log (--decision-log, every decision,
reviews without a transaction ID included; its records carry the card's labels and phase, so no --cards).`,
		Example: `  kubectl get cardtransactions -n default -o json > transactions.json
  kubectl get cards -n default -o json > cards.json
  cardplane rules backtest card-rules.yaml --transactions transactions.json --cards cards.json --fail-on-change
  kubectl logs -n cardplane-system deploy/cardplane > decisions.jsonl
  cardplane rules backtest card-rules.yaml --decision-log decisions.jsonl`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || (o.transactions == "") == (o.decisionLog == "") {
				return fmt.Errorf("rules backtest: name one FILE and one of --transactions or --decision-log")
			}
			if o.decisionLog != "" && o.cards != "" {
				return fmt.Errorf("rules backtest: --cards goes with --transactions; decision-log records carry their cards")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return rulesBacktest(args[0], o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.transactions, "transactions", "", "the recorded decisions to replay: `EXPORT.json`, the output of kubectl get cardtransactions -o json (required)")
	fs.StringVar(&o.decisionLog, "decision-log", "", "the recorded decisions to replay: `DECISIONS.jsonl`, cardplane's decision log (lines that are not decision records, such as other log lines, are skipped)")
	fs.StringVar(&o.cards, "cards", "", "card labels, phase and balance: `CARDS.json`, the output of kubectl get cards -o json")
	fs.BoolVar(&o.failOnChange, "fail-on-change", false, "exit 1 when any decision would change")
	return cmd
}

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

// backtestRow is one replayed transaction.
type backtestRow struct {
	tx       *cardsv1alpha1.CardTransaction
	at       time.Time
	was      *cardsv1alpha1.AuthorizationDecision
	wouldBe  rules.Decision
	selected bool
}

// backtest is one replay of recorded decisions against a candidate rule set, and what it counted.
type backtest struct {
	rs        *rules.RuleSet
	namespace string // of a ConfigMap FILE, which only replays its own namespace; empty for a bare rules.yaml
	cards     map[string]*cardsv1alpha1.Card
	rows      []*backtestRow

	noDecision, otherNamespace, notSelected int
	shadow                                  map[string]int // declines per shadow rule
	shadowOrder                             []string

	evaluated, toDeclined, toApproved int
}

func rulesBacktest(file string, o *backtestOptions, stdout, stderr io.Writer) error {
	rs, f, err := loadRuleSet(file, stdout)
	if err != nil {
		return err
	}
	b := &backtest{rs: rs, namespace: f.namespace, shadow: map[string]int{}}
	var txns []cardsv1alpha1.CardTransaction
	if o.decisionLog != "" {
		txns, b.cards, err = readDecisionLog(o.decisionLog)
	} else if txns, err = readExport[cardsv1alpha1.CardTransaction](o.transactions, "CardTransaction"); err == nil {
		b.cards, err = readBacktestCards(o.cards, rs, stderr)
	}
	if err != nil {
		return err
	}
	b.selectRows(txns)
	b.replay()
	if err := b.writeChanges(stdout); err != nil {
		return err
	}
	b.writeSummary(stdout)
	if changed := b.toDeclined + b.toApproved; o.failOnChange && changed > 0 {
		return fmt.Errorf("rules backtest: %d decisions would change", changed)
	}
	return nil
}

// readBacktestCards indexes the cards of --cards by namespace/name; without it, it says what the rules miss.
func readBacktestCards(path string, rs *rules.RuleSet, stderr io.Writer) (map[string]*cardsv1alpha1.Card, error) {
	cards := map[string]*cardsv1alpha1.Card{}
	if path == "" {
		note := "note: without --cards the rules see no card labels, phase or balance"
		if !rs.Selector.Empty() {
			note += fmt.Sprintf(", and the selector %s selects no card", rs.Selector)
		}
		fmt.Fprintln(stderr, note)
		return cards, nil
	}
	list, err := readExport[cardsv1alpha1.Card](path, "Card")
	if err != nil {
		return nil, err
	}
	for i := range list {
		cards[list[i].Namespace+"/"+list[i].Name] = &list[i]
	}
	return cards, nil
}

// selectRows keeps the transactions with a recorded decision in the rule set's namespace, in replay order.
func (b *backtest) selectRows(txns []cardsv1alpha1.CardTransaction) {
	for i := range txns {
		tx := &txns[i]
		if tx.Status.Authorization == nil || tx.Status.Amount == nil {
			b.noDecision++
			continue
		}
		if b.namespace != "" && tx.Namespace != "" && tx.Namespace != b.namespace {
			b.otherNamespace++
			continue
		}
		b.rows = append(b.rows, &backtestRow{tx: tx, at: occurredAt(tx), was: tx.Status.Authorization})
	}
	rows := b.rows
	sort.SliceStable(rows, func(i, j int) bool {
		if !rows[i].at.Equal(rows[j].at) {
			return rows[i].at.Before(rows[j].at)
		}
		return rows[i].tx.Namespace+"/"+rows[i].tx.Name < rows[j].tx.Namespace+"/"+rows[j].tx.Name
	})
}

// replay decides every row again. Each card's spend ledger starts empty and holds the approvals of the
// candidate set itself.
func (b *backtest) replay() {
	ledgers := map[string]*cardsv1alpha1.CardSpend{}
	for _, r := range b.rows {
		key := r.tx.Namespace + "/" + r.tx.Spec.CardRef.Name
		card := rules.Card{Namespace: r.tx.Namespace, Name: r.tx.Spec.CardRef.Name}
		if c := b.cards[key]; c != nil {
			card.Labels, card.Phase = c.Labels, c.Status.Phase
			if c.Status.Balance != nil {
				bal := c.Status.Balance.Available
				card.Balance = &bal
			}
		}
		if r.selected = b.rs.Matches(card.Labels); !r.selected {
			b.notSelected++
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
		r.wouldBe = b.rs.Evaluate(tx, card, r.at)
		if r.wouldBe.Outcome == cardsv1alpha1.DecisionApproved {
			// As the authorizer does: a ledger with no room for the approval's windows declines it.
			if err := rules.Add(card.Spend, r.wouldBe.CountsToward, tx, r.at, b.rs.TimeZone); errors.Is(err, rules.ErrLedgerFull) {
				r.wouldBe.RuleResult = cardsv1alpha1.RuleResult{Outcome: cardsv1alpha1.DecisionDeclined, Reason: cardsv1alpha1.DecisionLedgerFull}
			}
		}
		for _, s := range r.wouldBe.Shadow {
			if b.shadow[s.Rule] == 0 {
				b.shadowOrder = append(b.shadowOrder, s.Rule)
			}
			b.shadow[s.Rule]++
		}
	}
}

// writeChanges prints the table of the decisions that would change, and counts them.
func (b *backtest) writeChanges(stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := false
	for _, r := range b.rows {
		if !r.selected {
			continue
		}
		b.evaluated++
		if r.was.Outcome == r.wouldBe.Outcome {
			continue
		}
		if r.wouldBe.Outcome == cardsv1alpha1.DecisionDeclined {
			b.toDeclined++
		} else {
			b.toApproved++
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
	return nil
}

// writeSummary prints the counts, what was skipped and why, and the declines of each shadow rule.
func (b *backtest) writeSummary(stdout io.Writer) {
	changed := b.toDeclined + b.toApproved
	fmt.Fprintf(stdout, "%d evaluated, %d changed: approved->declined %d, declined->approved %d\n", b.evaluated, changed, b.toDeclined, b.toApproved)
	var skipped []string
	if b.noDecision > 0 {
		skipped = append(skipped, fmt.Sprintf("%d without a recorded decision or amount", b.noDecision))
	}
	if b.otherNamespace > 0 {
		skipped = append(skipped, fmt.Sprintf("%d in other namespaces than %s", b.otherNamespace, b.namespace))
	}
	if b.notSelected > 0 {
		skipped = append(skipped, fmt.Sprintf("%d of cards outside the selector %s", b.notSelected, b.rs.Selector))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(stdout, "skipped: %s\n", strings.Join(skipped, ", "))
	}
	for _, name := range b.shadowOrder {
		fmt.Fprintf(stdout, "shadow: %s would decline %d\n", name, b.shadow[name])
	}
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
