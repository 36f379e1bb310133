package alerts

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// metric is one metric family a process exports, as its prometheus.New… call declares it.
type metric struct {
	kind    string    // counter, gauge, histogram, summary
	labels  []string  // the label names of its Vec, in order
	buckets []float64 // a histogram's literal bucket bounds
	source  string    // file:line of the declaration
}

// inventory is every metric the manager's code declares: cardplane's own and controller-runtime's, read from
// the Go source (go/ast), so a query is checked against what the code exports, not against a list kept by hand.
type inventory struct {
	metrics map[string]metric
	// strings holds every string literal in cardplane's non-test code: a label value a query matches on (a
	// result, a controller name) must be one of them.
	strings map[string]bool
}

// cardplaneDirs are the module's directories the manager binary is built from.
var cardplaneDirs = []string{"api", "cmd", "config", "controllers", "internal", "webhookserver"}

// controllerRuntimeDirs hold the metrics controller-runtime registers in the manager (reconcile counts and
// errors, leader election).
var controllerRuntimeDirs = []string{"pkg/internal/controller/metrics", "pkg/metrics"}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// loadInventory reads the declarations. In cardplane's code every declaration must be readable (a literal
// name and label list): one that is not would leave its metric unchecked, so it fails the test. In
// controller-runtime's, declarations built from variables (the workqueue's) are skipped.
func loadInventory(t *testing.T) *inventory {
	t.Helper()
	inv := &inventory{metrics: map[string]metric{}, strings: map[string]bool{}}
	for _, dir := range cardplaneDirs {
		walkGo(t, filepath.Join(repoRoot(), dir), func(fset *token.FileSet, f *ast.File) {
			inv.collect(t, fset, f, true)
		})
	}
	crDir := goListDir(t, "sigs.k8s.io/controller-runtime")
	for _, dir := range controllerRuntimeDirs {
		walkGo(t, filepath.Join(crDir, dir), func(fset *token.FileSet, f *ast.File) {
			inv.collect(t, fset, f, false)
		})
	}
	for _, want := range []string{"cardplane_webhook_requests_total", "controller_runtime_reconcile_errors_total", "leader_election_master_status"} {
		if _, ok := inv.metrics[want]; !ok {
			t.Fatalf("the inventory lacks %s: the declarations are no longer read (%d found)", want, len(inv.metrics))
		}
	}
	return inv
}

// goListDir is the directory of a module the main module requires, in the module cache.
func goListDir(t *testing.T, module string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = repoRoot()
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go list -m %s (in %s): %v %s", module, cmd.Dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// walkGo parses every non-test Go file under dir (testdata excluded).
func walkGo(t *testing.T, dir string, visit func(*token.FileSet, *ast.File)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		visit(fset, f)
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
}

// collect adds the file's metric declarations (and, for cardplane's code, its string literals).
func (inv *inventory) collect(t *testing.T, fset *token.FileSet, f *ast.File, strict bool) {
	t.Helper()
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && strict && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil {
				inv.strings[s] = true
			}
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		kind := constructorKind(call)
		if kind == "" {
			return true
		}
		where := fset.Position(call.Pos()).String()
		name, m, err := declaration(call, kind)
		m.source = where
		switch {
		case err != nil && strict:
			t.Errorf("%s: a metric declaration this test cannot read (%v): write its name and labels as literals", where, err)
		case err == nil:
			if prev, dup := inv.metrics[name]; dup && prev.source != where {
				t.Errorf("%s declared twice: %s and %s", name, prev.source, where)
			}
			inv.metrics[name] = m
		}
		return true
	})
}

// constructorKind is the kind of metric a prometheus.New… call makes, or "" for any other call.
func constructorKind(call *ast.CallExpr) string {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
		return ""
	}
	for _, k := range []string{"Counter", "Gauge", "Histogram", "Summary"} {
		if sel.Sel.Name == "New"+k || sel.Sel.Name == "New"+k+"Vec" {
			return strings.ToLower(k)
		}
	}
	return ""
}

// declaration reads a prometheus.New…(prometheus.…Opts{Name: "…", …}, []string{"…"}) call.
func declaration(call *ast.CallExpr, kind string) (string, metric, error) {
	m := metric{kind: kind}
	if len(call.Args) == 0 {
		return "", m, fmt.Errorf("no options")
	}
	opts, ok := call.Args[0].(*ast.CompositeLit)
	if !ok {
		return "", m, fmt.Errorf("options are not a literal")
	}
	parts := map[string]string{}
	for _, e := range opts.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			return "", m, fmt.Errorf("options without field names")
		}
		key := kv.Key.(*ast.Ident).Name
		switch key {
		case "Namespace", "Subsystem", "Name":
			s, err := stringLit(kv.Value)
			if err != nil {
				return "", m, fmt.Errorf("%s: %w", key, err)
			}
			parts[key] = s
		case "Buckets":
			b, err := floatsLit(kv.Value)
			if err != nil {
				return "", m, fmt.Errorf("buckets: %w", err)
			}
			m.buckets = b
		}
	}
	if parts["Name"] == "" {
		return "", m, fmt.Errorf("no Name")
	}
	var name []string
	for _, k := range []string{"Namespace", "Subsystem", "Name"} {
		if parts[k] != "" {
			name = append(name, parts[k])
		}
	}
	if len(call.Args) > 1 {
		labels, err := stringsLit(call.Args[1])
		if err != nil {
			return "", m, fmt.Errorf("labels: %w", err)
		}
		m.labels = labels
	}
	return strings.Join(name, "_"), m, nil
}

func stringLit(e ast.Expr) (string, error) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", fmt.Errorf("not a string literal")
	}
	return strconv.Unquote(lit.Value)
}

func stringsLit(e ast.Expr) ([]string, error) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Errorf("not a []string literal")
	}
	var out []string
	for _, el := range lit.Elts {
		s, err := stringLit(el)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func floatsLit(e ast.Expr) ([]float64, error) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Errorf("not a literal")
	}
	var out []float64
	for _, el := range lit.Elts {
		b, ok := el.(*ast.BasicLit)
		if !ok {
			return nil, fmt.Errorf("not a number literal")
		}
		f, err := strconv.ParseFloat(b.Value, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Labels the Prometheus Operator puts on every series it scrapes through a ServiceMonitor. A metric label of
// the same name is renamed exported_<name> (honorLabels false, the default and the safe choice: a target
// cannot then pose as another), so queries written against the code's name silently read the target's.
var operatorTargetLabels = []string{"namespace", "service", "pod", "container", "endpoint", "job", "instance"}

// replicaLabels are the target labels a shipped query may read: those that tell replicas apart. The others
// (namespace, service, container, endpoint) are the same for every series of one installation, and
// namespace and endpoint were the names of cardplane's own labels before webhook_endpoint and
// rule_set_namespace: a shipped query reading them is one left behind by that rename.
var replicaLabels = []string{"job", "instance", "pod"}

// series resolves a series name a query reads to the labels it carries in Prometheus: the declaration's (one
// the scrape sets too renamed exported_<name>), le on a histogram's _bucket series, and the replica labels of
// the scrape. ok is false when nothing exports it.
func (inv *inventory) series(name string) (family string, labels map[string]bool, ok bool) {
	labels = map[string]bool{}
	for _, l := range replicaLabels {
		labels[l] = true
	}
	add := func(m metric, extra ...string) {
		for _, l := range append(m.labels, extra...) {
			if slices.Contains(operatorTargetLabels, l) {
				l = "exported_" + l // what the scrape makes of it
			}
			labels[l] = true
		}
	}
	if name == "up" { // written by Prometheus for every target: only target labels
		return name, labels, true
	}
	switch m, found := inv.metrics[name]; {
	case found && (m.kind == "counter" || m.kind == "gauge"):
		add(m)
		return name, labels, true
	case found && m.kind == "summary":
		add(m, "quantile")
		return name, labels, true
	}
	// A classic histogram has no series of its bare name, only these.
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		base := strings.TrimSuffix(name, suffix)
		b, found := inv.metrics[base]
		switch {
		case base == name || !found:
		case b.kind == "histogram" && suffix == "_bucket":
			add(b, "le")
			return base, labels, true
		case b.kind == "histogram" || b.kind == "summary":
			add(b)
			return base, labels, true
		}
	}
	return name, labels, false
}

// TestMetricLabelsDoNotCollideWithTargetLabels: no metric cardplane declares has a label the Prometheus
// Operator also sets on the scraped series. Before 0.2.0 `endpoint` and `namespace` did: they reached
// Prometheus as exported_endpoint and exported_namespace, and `sum by (endpoint)` grouped by the scrape port.
func TestMetricLabelsDoNotCollideWithTargetLabels(t *testing.T) {
	inv := loadInventory(t)
	checked := 0
	for name, m := range inv.metrics {
		if !strings.HasPrefix(name, "cardplane_") {
			continue
		}
		for _, l := range m.labels {
			checked++
			if slices.Contains(operatorTargetLabels, l) || l == "le" || l == "quantile" {
				t.Errorf("%s (%s) has the label %q, which the scrape sets too: Prometheus stores the metric's as exported_%s and queries by %q read the target's; name it after what it holds (webhook_endpoint, rule_set_namespace)",
					name, m.source, l, l, l)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d cardplane labels found: the declarations are no longer read", checked)
	}
}

// TestMetricsTableMatchesTheCode: the metrics table of docs/operations.md lists every metric cardplane
// declares, with the labels the code gives it, so the names operators write queries with are the real ones.
func TestMetricsTableMatchesTheCode(t *testing.T) {
	inv := loadInventory(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "| `cardplane_") {
			continue
		}
		cells := strings.Split(line, " | ")
		name := strings.Trim(strings.TrimPrefix(cells[0], "| "), "`")
		_, labelText, _ := strings.Cut(cells[1], ";")
		documented[name] = backticked(dropParenthesized(labelText))
	}
	for name, m := range inv.metrics {
		if !strings.HasPrefix(name, "cardplane_") {
			continue
		}
		doc, ok := documented[name]
		if !ok {
			t.Errorf("%s (%s) is not in the metrics table of docs/operations.md", name, m.source)
			continue
		}
		if code := slices.Sorted(slices.Values(m.labels)); !slices.Equal(slices.Sorted(slices.Values(doc)), code) {
			t.Errorf("docs/operations.md gives %s the labels %v; the code: %v", name, doc, m.labels)
		}
	}
	for name := range documented {
		if _, ok := inv.metrics[name]; !ok {
			t.Errorf("docs/operations.md documents %s, which the code does not declare", name)
		}
	}
}

func dropParenthesized(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func backticked(s string) []string {
	var out []string
	parts := strings.Split(s, "`")
	for i := 1; i < len(parts); i += 2 {
		out = append(out, parts[i])
	}
	return out
}
