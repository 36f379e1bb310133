// Package alerts checks the PromQL cardplane ships, charts/cardplane/files/alerts.yaml and files/dashboard.json,
// with Prometheus' own code. Every rule parses and validates as Prometheus loads a rule file, and each alert's
// expression is evaluated (promqltest, the PromQL test language of Prometheus' own tests) against series that
// must fire it and series that must not, in testdata/alerts.promqltest, where {{Name}} stands for the
// expression of alert Name. `for` durations are not evaluated: an instant query shows whether the condition
// holds. Every alert and dashboard query reads only metrics, labels and label values the code exports
// (inventory_test.go reads them from the Go source; promql_test.go follows the labels through each query).
package alerts

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
)

func alertsFile() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "charts", "cardplane", "files", "alerts.yaml")
}

// loadAlerts parses alerts.yaml as Prometheus loads a rule file.
func loadAlerts(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile(), false, model.UTF8Validation, parser.NewParser(parser.Options{}), promslog.NewNopLogger())
	if len(errs) > 0 {
		t.Fatalf("Prometheus would not load the alerts: %v", errs)
	}
	var rules []rulefmt.Rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("rule %q is not an alert", r.Record)
				continue
			}
			rules = append(rules, r)
		}
	}
	return rules
}

func TestAlertsFireWhenTheyShouldAndOnlyThen(t *testing.T) {
	exprs := map[string]string{}
	for _, r := range loadAlerts(t) {
		exprs[r.Alert] = r.Expr
	}

	raw, err := os.ReadFile(filepath.Join("testdata", "alerts.promqltest"))
	if err != nil {
		t.Fatal(err)
	}
	// Every alert needs a case that fires it and one that does not (an eval with no expected series).
	fires, quiet := map[string]bool{}, map[string]bool{}
	lines := strings.Split(string(raw), "\n")
	placeholder := regexp.MustCompile(`\{\{(\w+)\}\}`)
	for i, line := range lines {
		m := placeholder.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		expr, ok := exprs[m[1]]
		if !ok {
			t.Fatalf("alerts.promqltest line %d: no alert %s in alerts.yaml", i+1, m[1])
		}
		next := ""
		if i+1 < len(lines) {
			next = strings.TrimSpace(lines[i+1])
		}
		if next == "" || strings.HasPrefix(next, "#") || strings.HasPrefix(next, "eval") || strings.HasPrefix(next, "load") || strings.HasPrefix(next, "clear") {
			quiet[m[1]] = true
		} else {
			fires[m[1]] = true
		}
		lines[i] = strings.Replace(line, m[0], "("+expr+")", 1)
	}
	for name := range exprs {
		if !fires[name] || !quiet[name] {
			t.Errorf("alert %s lacks a case that fires it (%v) or one that does not (%v)", name, fires[name], quiet[name])
		}
	}
	promqltest.RunTest(t, strings.Join(lines, "\n"), promqltest.NewTestEngine(t, false, 5*time.Minute, 1_000_000))
}

// TestAlertsReadWhatTheCodeExports: every metric an alert reads is one the code declares, every label it
// matches, groups or joins on is on the series at that point, every label value it matches is one the code
// writes, and every {{ $labels.x }} of its summary and description is on its result. Evaluating the alerts
// (above) cannot show this: the cases are written with the same label names as the alerts, and a query
// grouping by a label the series lack still returns a result, one series without it.
func TestAlertsReadWhatTheCodeExports(t *testing.T) {
	inv := loadInventory(t)
	read := map[string]bool{}
	for _, r := range loadAlerts(t) {
		out, families, problems := checkQuery(inv, r.Expr)
		for _, text := range r.Annotations {
			problems = append(problems, checkTemplate(text, alertTemplateLabels, out)...)
		}
		for _, p := range problems {
			t.Errorf("alert %s: %s", r.Alert, p)
		}
		for f := range families {
			read[f] = true
		}
	}
	if len(read) < 12 {
		t.Errorf("the alerts read only %d metrics: %v", len(read), read)
	}
}
