// Package alerts checks charts/cardplane/files/alerts.yaml with Prometheus' own code: every rule parses and
// validates as Prometheus loads a rule file, and each alert's expression is evaluated (promqltest, the PromQL
// test language of Prometheus' own tests) against series that must fire it and series that must not, in
// testdata/alerts.promqltest, where {{Name}} stands for the expression of alert Name. `for` durations are not
// evaluated: an instant query shows whether the condition holds.
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

func TestAlertsFireWhenTheyShouldAndOnlyThen(t *testing.T) {
	groups, errs := rulefmt.ParseFile(alertsFile(), false, model.UTF8Validation, parser.NewParser(parser.Options{}), promslog.NewNopLogger())
	if len(errs) > 0 {
		t.Fatalf("Prometheus would not load the alerts: %v", errs)
	}
	exprs := map[string]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("rule %q is not an alert", r.Record)
				continue
			}
			exprs[r.Alert] = r.Expr
		}
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
