package charts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// schemaNode is the part of JSON Schema values.schema.json uses to describe keys.
type schemaNode struct {
	Ref                  string                 `json:"$ref"`
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
	Definitions          map[string]*schemaNode `json:"definitions"`
}

func loadSchema(t *testing.T) *schemaNode {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s schemaNode
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	return &s
}

// TestSchemaCoversEveryValue: every key of values.yaml is described by values.schema.json, down to the maps
// and Kubernetes objects passed through as given, and the schema describes no key values.yaml lacks (so
// README.md documents every key the schema admits). Objects with properties refuse unknown keys.
func TestSchemaCoversEveryValue(t *testing.T) {
	root := loadSchema(t)
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	resolve := func(n *schemaNode) *schemaNode {
		if n != nil && strings.HasPrefix(n.Ref, "#/definitions/") {
			return root.Definitions[strings.TrimPrefix(n.Ref, "#/definitions/")]
		}
		return n
	}
	checked := 0
	var walk func(path string, v map[string]any, s *schemaNode)
	walk = func(path string, v map[string]any, s *schemaNode) {
		if s.Properties == nil {
			return // a map or an object passed through: its keys are the user's
		}
		if s.AdditionalProperties != false {
			t.Errorf("%s: the schema admits unknown keys (additionalProperties is not false)", strings.TrimPrefix(path, "."))
		}
		for k, child := range v {
			checked++
			p := resolve(s.Properties[k])
			if p == nil {
				t.Errorf("%s.%s is in values.yaml but not in values.schema.json", path, k)
				continue
			}
			if m, ok := child.(map[string]any); ok {
				walk(path+"."+k, m, p)
			}
		}
		for k := range s.Properties {
			if _, ok := v[k]; !ok && (path != "" || k != "global") { // global is Helm's, for parent charts
				t.Errorf("%s.%s is in values.schema.json but not in values.yaml", path, k)
			}
		}
	}
	walk("", values, root)
	if checked < 90 {
		t.Errorf("only %d keys checked", checked)
	}
}

// TestSchemaRefusesWrongValues: helm template and helm lint refuse wrongly typed values, values outside the
// enums the code knows, and misspelt keys, naming the key; the defaults and every feature on pass (TestLint).
func TestSchemaRefusesWrongValues(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"--set", "replicaCount=abc"}, "/replicaCount"},
		{[]string{"--set", "replicaCount=-1"}, "/replicaCount"},
		{[]string{"--set", "podAntiAffinity=always"}, "/podAntiAffinity"},
		{[]string{"--set", "authorization.ungovernedCardDecision=allow"}, "/authorization/ungovernedCardDecision"},
		{[]string{"--set", "image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
		{[]string{"--set", "webhook.service.type=ExternalName"}, "/webhook/service/type"},
		{[]string{"--set", "webhook.port=70000"}, "/webhook/port"},
		{[]string{"--set-string", "manager.authorizationBudget=1.5 seconds"}, "/manager/authorizationBudget"},
		{[]string{"--set", "metrics.serviceMonitor.interval=30"}, "/metrics/serviceMonitor/interval"},
		{[]string{"--set", "watchNamespaces={Payments}"}, "/watchNamespaces/0"},
		{[]string{"--set", "crds.install=yes please"}, "/crds/install"},
		{[]string{"--set", "metrics.dashboard.labels.grafana_dashboard=1"}, "/metrics/dashboard/labels/grafana_dashboard"},
		{[]string{"--set", "webhook.certManager.enabled=true"}, "/webhook/certManager/issuerRef/name"},
		{[]string{"--set", "admission.failurePolicy=Open"}, "/admission/failurePolicy"},
		{[]string{"--set", "admission.timeoutSeconds=31"}, "/admission/timeoutSeconds"},
		{[]string{"--set", "metrics.reader.subjects[0].kind=ServiceAccount", "--set", "metrics.reader.subjects[0].name=prometheus"},
			"/metrics/reader/subjects/0"},
		{[]string{"--set", "metrics.serviceMonitor.authorizationSecret.key="}, "/metrics/serviceMonitor/authorizationSecret/key"},
		{[]string{"--set", "metrics.serviceMonitor.tlsConfig.ca.secrets.name=ca"}, "/metrics/serviceMonitor/tlsConfig/ca"},
		{[]string{"--set", "metrics.secure=yes"}, "/metrics/secure"},
		{[]string{"--set", "replicas=3"}, "additional properties 'replicas'"},
		{[]string{"--set", "spool.persistance.enabled=true"}, "additional properties 'persistance'"},
	} {
		for _, cmd := range [][]string{{"template", "cardplane", chartDir}, {"lint", "--strict", chartDir}} {
			out, stderr, err := tryHelm(append(cmd, tc.set...)...)
			msg := string(out) + string(stderr)
			if err == nil || !strings.Contains(msg, "don't meet the specifications of the schema") || !strings.Contains(msg, tc.want) {
				t.Errorf("helm %s %v: want a schema error at %s, got %v\n%s", cmd[0], tc.set, tc.want, err, msg)
			}
		}
	}
	// The passing side: values of each kind the schema admits beyond the defaults.
	render(t, "cardplane-system", "--set", "podAntiAffinity=", "--set", "podDisruptionBudget.minAvailable=50%",
		"--set", "resources.limits.memory=1Gi", "--set", "resources.limits.cpu=2", "--set", "manager.shutdownDelay=0",
		"--set", "watchNamespaces={payments,team-a}", "--set", "authorization.ungovernedCardDecision=approve")
}
