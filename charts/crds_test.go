package charts_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/cardplane/cardplane/internal/testenv"
)

// The CRDs the chart carries, by file name in config/crd/bases.
func configCRDs(t *testing.T) map[string]apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "*.yaml"))
	crds := map[string]apiextensionsv1.CustomResourceDefinition{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		crds[crd.Name] = crd
	}
	if len(crds) == 0 {
		t.Fatal("no CRDs in config/crd/bases")
	}
	return crds
}

func renderedCRDs(t *testing.T, args ...string) map[string]apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crds := map[string]apiextensionsv1.CustomResourceDefinition{}
	for _, o := range objects(t, render(t, "cardplane-system", args...)) {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := fromUnstructured(o, &crd); err != nil {
			t.Fatal(err)
		}
		crds[crd.Name] = crd
	}
	return crds
}

func fromUnstructured(o *unstructured.Unstructured, out any) error {
	raw, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	return yaml.Unmarshal(raw, out)
}

// TestRenderedCRDsAreConfigs: templates/crds.yaml renders every CRD of config/crd/bases with its spec unchanged
// by the trip through fromYaml and toYaml, annotated helm.sh/resource-policy: keep; crds.keep=false drops the
// annotation and crds.install=false the CRDs.
func TestRenderedCRDsAreConfigs(t *testing.T) {
	want := configCRDs(t)
	got := renderedCRDs(t)
	if len(got) != len(want) {
		t.Fatalf("rendered %d CRDs, config/crd/bases has %d", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if !reflect.DeepEqual(g.Spec, w.Spec) {
			t.Errorf("the rendered %s's spec differs from config/crd/bases'", name)
		}
		if g.Annotations["helm.sh/resource-policy"] != "keep" || g.Annotations["controller-gen.kubebuilder.io/version"] == "" {
			t.Errorf("%s annotations %v: want helm.sh/resource-policy=keep and controller-gen's", name, g.Annotations)
		}
	}
	for _, crd := range renderedCRDs(t, "--set", "crds.keep=false") {
		if _, ok := crd.Annotations["helm.sh/resource-policy"]; ok {
			t.Errorf("crds.keep=false: %s is still kept", crd.Name)
		}
	}
	if n := len(renderedCRDs(t, "--set", "crds.install=false")); n != 0 {
		t.Errorf("crds.install=false renders %d CRDs", n)
	}
}

// previousChart writes the chart as release 0.1.0 shipped it, CRDs in crds/ (installed once by Helm, never
// upgraded), with the WebhookEndpoint CRD lacking spec.destinationPolicy, the field the upgrade must bring.
func previousChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cardplane")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"crds", "files/crds", "templates/crds.yaml", "values.schema.json"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "crds"), 0o755); err != nil {
		t.Fatal(err)
	}
	stripped := false
	for name, crd := range configCRDs(t) {
		if name == "cardeventsinks.cards.cardplane.io" {
			continue // new since 0.1.0: the upgrade installs it, no adoption needed
		}
		if name == "webhookendpoints.cards.cardplane.io" {
			spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			_, stripped = spec.Properties["destinationPolicy"]
			delete(spec.Properties, "destinationPolicy")
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		}
		writeYAML(t, filepath.Join(dir, "crds", name+".yaml"), crd)
	}
	if !stripped {
		t.Fatal("the WebhookEndpoint CRD has no spec.destinationPolicy to take out: pick another field")
	}
	chart, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	chart = regexp.MustCompile(`(?m)^version: .*$`).ReplaceAll(chart, []byte("version: 0.1.0"))
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), chart, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(env.Kubectl, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// servesDestinationPolicy says whether the served WebhookEndpoint CRD has spec.destinationPolicy.
func servesDestinationPolicy(t *testing.T) (bool, *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "webhookendpoints.cards.cardplane.io"}, &crd); err != nil {
		t.Fatal(err)
	}
	_, ok := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["destinationPolicy"]
	return ok, &crd
}

// The CRDs, as the adoption step of the upgrade notes (docs/operations.md) names them.
var crdNames = []string{"cardholders.cards.cardplane.io", "cards.cards.cardplane.io", "cardtransactions.cards.cardplane.io",
	"webhookendpoints.cards.cardplane.io"}

// TestHelmUpgradeUpgradesTheCRDs upgrades a release of the 0.1.0 chart (CRDs in crds/, the WebhookEndpoint CRD
// without spec.destinationPolicy) to this chart on the real API server, following the upgrade notes: the CRDs
// are adopted into the release, `helm upgrade` brings the field, and `helm uninstall` leaves the CRDs and the
// endpoints.
func TestHelmUpgradeUpgradesTheCRDs(t *testing.T) {
	const release, ns = "cardplane-upgrade", "cardplane-upgrade"
	prev := previousChart(t)
	createNamespace(t, ns, nil)
	kube := []string{"--kubeconfig", env.Kubeconfig, "--namespace", ns}
	// A cluster that ran 0.1.0 has the CRDs Helm installed from its crds/, not envtest's: start from none.
	kubectl(t, "delete", "--wait", "-f", filepath.Join(testenv.RepoRoot(), "config", "crd", "bases"))
	runHelm(t, append([]string{"install", release, prev}, kube...)...)
	if has, _ := servesDestinationPolicy(t); has {
		t.Fatal("after installing 0.1.0 the served WebhookEndpoint CRD has spec.destinationPolicy: the old CRD is not the one served")
	}

	// Helm takes over no object another installed: the CRDs of crds/ belong to no release until adopted.
	upgrade := append([]string{"upgrade", release, chartDir}, kube...)
	if _, stderr, err := tryHelm(upgrade...); err == nil || !strings.Contains(string(stderr), "invalid ownership metadata") {
		t.Fatalf("upgrading without adopting the CRDs: want Helm's invalid ownership metadata error, got %v\n%s", err, stderr)
	}
	kubectl(t, append(append([]string{"label", "crd"}, crdNames...), "app.kubernetes.io/managed-by=Helm")...)
	kubectl(t, append(append([]string{"annotate", "crd"}, crdNames...), "meta.helm.sh/release-name="+release, "meta.helm.sh/release-namespace="+ns)...)
	runHelm(t, upgrade...)

	has, crd := servesDestinationPolicy(t)
	if !has {
		t.Error("after helm upgrade the served WebhookEndpoint CRD still lacks spec.destinationPolicy")
	}
	if crd.Annotations["helm.sh/resource-policy"] != "keep" || crd.Annotations["meta.helm.sh/release-name"] != release {
		t.Errorf("served CRD annotations %v", crd.Annotations)
	}
	// The API server refuses an unknown field (kubectl's strict field validation) until it serves the new
	// schema, which it picks up from the stored CRD shortly after the update.
	deadline, refused := time.Now().Add(30*time.Second), 0
	for applyEndpoint(ns, true) != nil && time.Now().Before(deadline) {
		refused++
		time.Sleep(200 * time.Millisecond)
	}
	if err := applyEndpoint(ns, false); err != nil {
		t.Fatalf("an endpoint with spec.destinationPolicy is refused after the upgrade: %v", err)
	}
	t.Logf("the API server took spec.destinationPolicy after %d refused dry runs", refused)

	runHelm(t, append([]string{"uninstall", release}, kube...)...)
	// The CardEventSink CRD, new in this chart, was installed by the upgrade and is kept like the others.
	for _, name := range append(slices.Clone(crdNames), "cardeventsinks.cards.cardplane.io") {
		if out := kubectl(t, "get", "crd", name, "-o", "jsonpath={.metadata.deletionTimestamp}"); out != "" {
			t.Errorf("helm uninstall is deleting %s (%s)", name, out)
		}
	}
	if out := kubectl(t, "-n", ns, "get", "webhookendpoint", "upgraded", "-o", "jsonpath={.spec.destinationPolicy.allowedCIDRs[0]}"); out != "10.96.0.0/12" {
		t.Errorf("after helm uninstall the endpoint's allowedCIDRs[0] = %q, want 10.96.0.0/12", out)
	}
}

// applyEndpoint applies a WebhookEndpoint that sets spec.destinationPolicy, with kubectl's strict field
// validation (an unknown field is an error, not dropped).
func applyEndpoint(ns string, dryRun bool) error {
	args := []string{"--kubeconfig", env.Kubeconfig, "-n", ns, "apply", "--server-side", "--validate=strict", "-f", "-"}
	if dryRun {
		args = append(args, "--dry-run=server")
	}
	cmd := exec.Command(env.Kubectl, args...)
	cmd.Stdin = strings.NewReader(`apiVersion: cards.cardplane.io/v1alpha1
kind: WebhookEndpoint
metadata: {name: upgraded}
spec:
  provider: upay
  credentialsRef: {name: upay-credentials}
  destinationPolicy: {allowedCIDRs: ["10.96.0.0/12"]}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}
