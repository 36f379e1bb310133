package config_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	for _, want := range []string{"kind: CustomResourceDefinition", "kind: ClusterRole", "kind: Deployment", "kind: ServiceAccount"} {
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

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}
