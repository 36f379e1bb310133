package v1alpha1_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name},
	}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
}

// TestSamplesAreAccepted applies every sample, including the status the samples carry.
func TestSamplesAreAccepted(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "samples")
	samples, err := config.Samples()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, s := range samples {
		obj := s.Object
		files[s.File] = true
		obj.SetNamespace("samples")
		status, hasStatus := obj.Object["status"]
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Errorf("%s: %s %s refused: %v", s.File, obj.GetKind(), obj.GetName(), err)
			continue
		}
		if hasStatus {
			obj.Object["status"] = status
			if err := env.Client.Status().Update(ctx, obj); err != nil {
				t.Errorf("%s: status of %s %s refused: %v", s.File, obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	// Every sample file on disk is embedded and was applied.
	onDisk, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "*.yaml"))
	for _, f := range onDisk {
		if b := filepath.Base(f); b != "kustomization.yaml" && !files[b] {
			t.Errorf("sample %s was not applied", b)
		}
	}
	if len(files) < 8 {
		t.Errorf("only %d sample files", len(files))
	}
}

func card(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cards.cardplane.io/v1alpha1", "kind": "Card",
		"metadata": map[string]any{"name": name, "namespace": "invalid"},
		"spec": map[string]any{
			"endpointRef":    map[string]any{"namespace": "invalid", "name": "upay-main"},
			"provider":       "upay",
			"providerCardID": "UC-" + name,
		},
	}}
}

func endpoint(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cards.cardplane.io/v1alpha1", "kind": "WebhookEndpoint",
		"metadata": map[string]any{"name": name, "namespace": "invalid"},
		"spec":     spec,
	}}
}

func destinations(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{
			"name": fmt.Sprintf("d%d", i), "url": fmt.Sprintf("https://example.com/%d", i),
			"secretRef": map[string]any{"name": "s"},
		}
	}
	return out
}

// TestInvalidObjectsAreRefused checks that the API server itself refuses bad objects with the message a user sees.
func TestInvalidObjectsAreRefused(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "invalid")

	creates := []struct {
		name string
		obj  *unstructured.Unstructured
		want string
	}{
		{"unknown provider", func() *unstructured.Unstructured {
			c := card("bad-enum")
			_ = unstructured.SetNestedField(c.Object, "visa", "spec", "provider")
			return c
		}(), `spec.provider: Unsupported value: "visa"`},
		{"missing providerCardID", func() *unstructured.Unstructured {
			c := card("missing")
			unstructured.RemoveNestedField(c.Object, "spec", "providerCardID")
			return c
		}(), "spec.providerCardID: Required value"},
		{"too many destinations", endpoint("too-many", map[string]any{
			"provider": "upay", "credentialsRef": map[string]any{"name": "c"}, "destinations": destinations(17),
		}), "spec.destinations: Too many: 17: must have at most 16 items"},
		{"unsigned provider without any verification", endpoint("open", map[string]any{
			"provider": "prepaidify",
		}), "prepaidify and alchemypay sign nothing"},
		{"signing provider without credentials", endpoint("nocreds", map[string]any{
			"provider": "upay",
		}), "providers that sign their callbacks need credentialsRef"},
		{"options of another provider", endpoint("mixed", map[string]any{
			"provider": "upay", "credentialsRef": map[string]any{"name": "c"}, "tevau": map[string]any{"algorithm": "SHA256"},
		}), "tevau options are only valid with provider tevau"},
		{"destination with a non-HTTP URL", endpoint("ftp", map[string]any{
			"provider": "upay", "credentialsRef": map[string]any{"name": "c"},
			"destinations": []any{map[string]any{"name": "d", "url": "ftp://example.com/x", "secretRef": map[string]any{"name": "s"}}},
		}), "url must be an http or https URL"},
		{"bad source CIDR", endpoint("cidr", map[string]any{
			"provider": "alchemypay", "verification": map[string]any{"sourceCIDRs": []any{"10.0.0.300/8"}},
		}), "sourceCIDRs must be CIDRs"},
		{"generic mapping with an unknown field", endpoint("generic", map[string]any{
			"provider": "generic", "credentialsRef": map[string]any{"name": "c"},
			"generic": map[string]any{"eventType": "body.type", "events": []any{map[string]any{
				"eventTypes": []any{"card.updated"}, "kind": "CardLifecycle",
				"fields": map[string]any{"cardID": "body.id", "pan": "body.number"},
			}}},
		}), "unknown field name"},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(ctx, tc.obj)
			expectInvalid(t, err, tc.want)
		})
	}

	// Status updates go through the same schema.
	statuses := []struct {
		name   string
		status map[string]any
		want   string
	}{
		{"amount with a comma", map[string]any{"balance": map[string]any{"available": map[string]any{"value": "12,50", "currency": "USD"}}},
			`status.balance.available.value: Invalid value: "12,50": balance.available.value in body should match`},
		{"amount as a float", map[string]any{"balance": map[string]any{"available": map[string]any{"value": "1e3", "currency": "USD"}}},
			`status.balance.available.value: Invalid value: "1e3"`},
		{"lower-case currency", map[string]any{"balance": map[string]any{"available": map[string]any{"value": "1.00", "currency": "usd"}}},
			`status.balance.available.currency: Invalid value: "usd": balance.available.currency in body should match '^[A-Z]{3}$'`},
		{"full PAN in last4", map[string]any{"number": map[string]any{"last4": "4000009990000096"}},
			`status.number.last4: Invalid value: "4000009990000096": number.last4 in body should match '^[0-9]{4}$'`},
		{"unknown phase", map[string]any{"phase": "Stolen"}, `status.phase: Unsupported value: "Stolen"`},
	}
	c := card("status")
	if err := env.Client.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, tc := range statuses {
		t.Run(tc.name, func(t *testing.T) {
			obj := c.DeepCopy()
			obj.Object["status"] = tc.status
			expectInvalid(t, env.Client.Status().Update(ctx, obj), tc.want)
		})
	}

	t.Run("changed identity", func(t *testing.T) {
		obj := c.DeepCopy()
		_ = unstructured.SetNestedField(obj.Object, "UC-other", "spec", "providerCardID")
		expectInvalid(t, env.Client.Update(ctx, obj), "card identity (endpointRef, provider, providerCardID) is immutable")
	})

	t.Run("changed endpoint provider", func(t *testing.T) {
		ep := endpoint("immutable", map[string]any{"provider": "upay", "credentialsRef": map[string]any{"name": "c"}})
		if err := env.Client.Create(ctx, ep); err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedField(ep.Object, "tevau", "spec", "provider")
		expectInvalid(t, env.Client.Update(ctx, ep), "provider is immutable")
	})

	t.Run("no field can hold a PAN or CVC", func(t *testing.T) {
		obj := card("pruned")
		obj.Object["status"] = map[string]any{}
		_ = unstructured.SetNestedField(obj.Object, "4000009990000096", "spec", "pan")
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		obj.Object["status"] = map[string]any{"number": map[string]any{"last4": "0096", "pan": "4000009990000096", "cvc": "123"}}
		if err := env.Client.Status().Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(obj.GroupVersionKind())
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
			t.Fatal(err)
		}
		raw, _ := got.MarshalJSON()
		if bytes.Contains(raw, []byte("4000009990000096")) || bytes.Contains(raw, []byte(`"123"`)) {
			t.Fatalf("the API server kept a card secret: %s", raw)
		}
	})
}

func expectInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want refusal containing %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %v", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q does not contain %q", err.Error(), want)
	}
}

// TestPrinterColumns checks the served CRDs and what kubectl shows a user.
func TestPrinterColumns(t *testing.T) {
	ctx := context.Background()
	want := map[string][]string{
		"cards.cards.cardplane.io":            {"Provider", "Phase", "Last4", "Balance", "Currency", "Age"},
		"cardtransactions.cards.cardplane.io": {"Card", "Type", "Amount", "Currency", "Phase", "Decision", "Age"},
		"webhookendpoints.cards.cardplane.io": {"Provider", "Ready", "Received", "Destinations", "Path", "Age"},
	}
	for name, cols := range want {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
			got = append(got, c.Name)
		}
		if strings.Join(got, ",") != strings.Join(cols, ",") {
			t.Errorf("%s printer columns = %v, want %v", name, got, cols)
		}
		if len(crd.Spec.Names.ShortNames) == 0 {
			t.Errorf("%s has no short names", name)
		}
		if crd.Spec.Versions[0].Subresources == nil || crd.Spec.Versions[0].Subresources.Status == nil {
			t.Errorf("%s has no status subresource", name)
		}
	}

	// What a user sees: kubectl against the same API server.
	createNamespace(t, "columns")
	c := card("columns")
	c.SetNamespace("columns")
	_ = unstructured.SetNestedField(c.Object, "columns", "spec", "endpointRef", "namespace")
	if err := env.Client.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Object["status"] = map[string]any{"phase": "Frozen", "number": map[string]any{"bin": "532600", "last4": "1234"},
		"balance": map[string]any{"available": map[string]any{"value": "99.95", "currency": "EUR"}}}
	if err := env.Client.Status().Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(env.Kubectl, "--kubeconfig", env.Kubeconfig, "get", "cpcard", "-n", "columns").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get cpcard printed %q", out)
	}
	header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if strings.Join(header, " ") != "NAME PROVIDER PHASE LAST4 BALANCE CURRENCY AGE" {
		t.Errorf("header = %q", lines[0])
	}
	if strings.Join(row[:6], " ") != "columns upay Frozen 1234 99.95 EUR" {
		t.Errorf("row = %q", lines[1])
	}
}
