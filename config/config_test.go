package config_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/cardplane/cardplane/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// TestDefaultKustomizationIsAccepted renders config/default with kubectl's built-in kustomize and has the
// real API server validate every object with a server-side dry run.
func TestDefaultKustomizationIsAccepted(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cardplane-system"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	rendered, err := exec.Command(env.Kubectl, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", stderr(err))
	}
	for _, want := range []string{"kind: CustomResourceDefinition", "kind: ClusterRole", "kind: Deployment", "kind: ServiceAccount",
		"kind: ValidatingWebhookConfiguration"} {
		if !bytes.Contains(rendered, []byte(want)) {
			t.Errorf("config/default renders no %q", want)
		}
	}
	cmd := exec.Command(env.Kubectl, "--kubeconfig", env.Kubeconfig, "apply", "--dry-run=server", "--server-side", "--force-conflicts", "-f", "-")
	cmd.Stdin = bytes.NewReader(rendered)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("server-side dry run refused config/default: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "(server dry run)"); got < 8 {
		t.Errorf("expected every object to be dry-run applied, got %d lines:\n%s", got, out)
	}
}

// TestCertManagerComponentServesTheWebhook renders config/default with the optional config/webhook/certmanager
// component (cert-manager's CRDs are not installed here, so it is not dry-run) and checks that its pieces meet:
// the Certificate writes the Secret the Deployment mounts where --admission-cert-dir points, names the
// webhook Service, and is the one the CA injector reads for the ValidatingWebhookConfiguration.
func TestCertManagerComponentServesTheWebhook(t *testing.T) {
	overlay := t.TempDir()
	rel := func(dir string) string {
		r, err := filepath.Rel(overlay, filepath.Join(testenv.RepoRoot(), "config", dir))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := "resources:\n- " + rel("default") + "\ncomponents:\n- " + rel("webhook/certmanager") + "\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	rendered, err := exec.Command(env.Kubectl, "kustomize", overlay).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", stderr(err))
	}
	objs := map[string]*unstructured.Unstructured{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		objs[u.GetKind()+"/"+u.GetName()] = u
	}
	cert, vwc, dep := objs["Certificate/cardplane-admission"], objs["ValidatingWebhookConfiguration/cardplane-rule-sets"], objs["Deployment/cardplane-manager"]
	if cert == nil || vwc == nil || dep == nil || objs["Issuer/cardplane-admission-ca"] == nil {
		t.Fatalf("rendered objects %v lack the admission Certificate, its Issuer, the webhook configuration or the Deployment", keys(objs))
	}
	if got, want := vwc.GetAnnotations()["cert-manager.io/inject-ca-from"], cert.GetNamespace()+"/"+cert.GetName(); got != want {
		t.Errorf("inject-ca-from %q, want %q", got, want)
	}
	secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if svc := objs["Service/cardplane-admission"]; svc == nil || !slices.Contains(dnsNames, svc.GetName()+"."+svc.GetNamespace()+".svc") {
		t.Errorf("the Certificate's names %v lack the webhook Service's", dnsNames)
	}
	depYAML, err := yaml.Marshal(dep.Object)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"secretName: " + secret, "--admission-cert-dir=/admission-tls", "mountPath: /admission-tls"} {
		if !bytes.Contains(depYAML, []byte(want)) {
			t.Errorf("the Deployment lacks %q", want)
		}
	}
}

func keys(m map[string]*unstructured.Unstructured) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}
