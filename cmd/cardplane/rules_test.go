package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

var updateRulesGolden = flag.Bool("update", false, "rewrite cmd/cardplane/testdata/rules/*.golden from the current output")

// TestRulesCommandGolden runs `cardplane rules` from the repository root, as docs/rules.md shows it, and
// compares stdout, stderr and the error (as main reports it after "error: ") with testdata/rules/NAME.golden
// (go test -run RulesCommand -update rewrites them).
func TestRulesCommandGolden(t *testing.T) {
	const (
		samples  = "config/samples/rules/"
		testdata = "cmd/cardplane/testdata/rules/"
	)
	cases := []struct {
		name string
		args []string
	}{
		{"help", []string{"--help"}},
		{"no-command", nil},
		{"unknown-command", []string{"check", samples + "card-rules.yaml"}},
		{"lint-ok", []string{"lint", samples + "card-rules.yaml", testdata + "bare.yaml"}},
		{"lint-errors", []string{"lint", testdata + "broken-configmap.yaml", testdata + "broken-bare.yaml", testdata + "unlabelled.yaml",
			testdata + "not-a-configmap.yaml", testdata + "bare.yaml", testdata + "missing.yaml"}},
		{"lint-amount-text", []string{"lint", testdata + "amount-text.yaml", testdata + "bare.yaml"}},
		{"lint-no-file", []string{"lint"}},
		{"test-pass", []string{"test", samples + "card-rules.yaml", "--cases", samples + "card-rules-cases.yaml"}},
		{"test-flags-first", []string{"test", "--cases", samples + "card-rules-cases.yaml", samples + "card-rules.yaml"}},
		{"test-fail", []string{"test", testdata + "bare.yaml", "--cases", testdata + "failing-cases.yaml"}},
		{"test-bad-cases", []string{"test", testdata + "bare.yaml", "--cases", testdata + "bad-cases.yaml"}},
		{"test-invalid-rule-set", []string{"test", testdata + "broken-bare.yaml", "--cases", testdata + "failing-cases.yaml"}},
		{"test-no-cases", []string{"test", testdata + "bare.yaml"}},
		{"backtest", []string{"backtest", samples + "card-rules.yaml", "--transactions", samples + "transactions.json", "--cards", samples + "cards.json"}},
		{"backtest-fail-on-change", []string{"backtest", samples + "card-rules.yaml", "--transactions", samples + "transactions.json",
			"--cards", samples + "cards.json", "--fail-on-change"}},
		{"backtest-without-cards", []string{"backtest", samples + "card-rules.yaml", "--transactions", samples + "transactions.json"}},
		{"backtest-bare-without-cards", []string{"backtest", testdata + "bare.yaml", "--transactions", samples + "transactions.json", "--fail-on-change"}},
		{"backtest-unknown-flag", []string{"backtest", samples + "card-rules.yaml", "--transaction", samples + "transactions.json"}},
		{"backtest-wrong-export", []string{"backtest", testdata + "bare.yaml", "--transactions", samples + "cards.json"}},
		{"backtest-decision-log", []string{"backtest", samples + "card-rules.yaml", "--decision-log", testdata + "decisions.jsonl"}},
		{"backtest-decision-log-and-cards", []string{"backtest", samples + "card-rules.yaml", "--decision-log", testdata + "decisions.jsonl",
			"--cards", samples + "cards.json"}},
	}
	t.Chdir("../..")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := execute(append([]string{"rules"}, c.args...), &stdout, &stderr)
			var b strings.Builder
			b.WriteString("$ cardplane rules " + strings.Join(c.args, " ") + "\n")
			b.WriteString(stdout.String())
			if stderr.Len() > 0 {
				b.WriteString("[stderr]\n" + stderr.String())
			}
			if err != nil {
				b.WriteString("[error, exit 1] " + describeError(err) + "\n")
			} else {
				b.WriteString("[exit 0]\n")
			}
			got := b.String()
			path := filepath.Join(testdata, c.name+".golden")
			if *updateRulesGolden {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

func TestRulesReadExportSingleObject(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tx.yaml")
	if err := os.WriteFile(path, []byte("apiVersion: cards.cardplane.io/v1alpha1\nkind: CardTransaction\nmetadata: {name: a, namespace: default}\n"+
		"spec: {cardRef: {name: c}, provider: upay, providerTransactionID: T1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	items, err := readExport[cardsv1alpha1.CardTransaction](path, "CardTransaction")
	if err != nil || len(items) != 1 || items[0].Spec.ProviderTransactionID != "T1" {
		t.Errorf("got %+v, %v", items, err)
	}
}
