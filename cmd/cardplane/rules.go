package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rules"
)

// newRulesCommand groups the offline rule-set commands: what a GitOps pipeline runs before a rule set reaches
// the cluster. Each subcommand is in its own file; this one holds the rule-set file reading they share.
func newRulesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Lint, test or backtest authorization rule sets offline (for GitOps CI)",
		Long: `Validate rule sets, run decision test cases against them, and replay recorded decisions against a
candidate set: offline, no cluster needed.

FILE is a rule-set ConfigMap (kind: ConfigMap, labelled cards.cardplane.io/rule-set: "true", with data
key rules.yaml) or a bare rules.yaml. EXPORT.json is "kubectl get cardtransactions -o json" (YAML works too),
CARDS.json "kubectl get cards -o json". Every command exits 0 when all is well and 1 otherwise.
See docs/rules.md.`,
		Args: noArgs,
		RunE: requireSubcommand,
	}
	cmd.AddCommand(newRulesLintCommand(), newRulesTestCommand(), newRulesBacktestCommand())
	return cmd
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
			label = mappingValue(l, cardsv1alpha1.LabelRuleSet)
		}
	}
	if label == nil || label.Value != "true" {
		f.problems = append(f.problems, fileProblem{labelsLine,
			fmt.Sprintf("metadata.labels: %s: \"true\" is missing: cardplane does not load this ConfigMap", cardsv1alpha1.LabelRuleSet)})
	}
	var value *yaml.Node
	if d := mappingValue(root, "data"); d != nil {
		value = mappingValue(d, cardsv1alpha1.RuleSetKey)
	}
	if value == nil {
		return nil, fmt.Errorf("%s:%d: %s", path, root.Line, rules.MissingKey)
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

// lint lists everything wrong with the file, as "FILE:LINE: rule NAME: message" lines (rules.Location: the
// admission webhook renders the same).
func (f *ruleSetFile) lint() []string {
	var out []string
	for _, p := range f.problems {
		out = append(out, fmt.Sprintf("%s:%d: %s", f.path, p.line, p.message))
	}
	return append(out, rules.Location{File: f.path, Offset: f.lineOffset}.Lint(f.data)...)
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

func timePtr(t time.Time) *metav1.Time { return &metav1.Time{Time: t.UTC()} }
