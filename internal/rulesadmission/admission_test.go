package rulesadmission_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/rulesadmission"
	"github.com/cardplane/cardplane/internal/testenv"
)

// suite is a real kube-apiserver with config/webhook's ValidatingWebhookConfiguration installed (envtest points
// it at a loopback address and generates the serving certificate), the webhook served there by
// rulesadmission.Server, and kubectl with an admin kubeconfig.
var suite struct {
	env        *envtest.Environment
	client     client.Client
	kubectl    string
	kubeconfig string
}

func TestMain(m *testing.M) {
	code, err := runSuite(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runSuite(m *testing.M) (int, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return 0, errors.New("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd")
	}
	suite.env = &envtest.Environment{BinaryAssetsDirectory: assets, WebhookInstallOptions: envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook", "validating_webhook_configuration.yaml")},
	}}
	cfg, err := suite.env.Start()
	if err != nil {
		return 0, fmt.Errorf("starting envtest: %w", err)
	}
	defer func() { _ = suite.env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wo := &suite.env.WebhookInstallOptions
	srv, err := rulesadmission.NewServer(net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort)), wo.LocalServingCertDir)
	if err != nil {
		return 0, err
	}
	go func() {
		if err := srv.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "admission server:", err)
		}
	}()
	if suite.client, err = client.New(cfg, client.Options{}); err != nil {
		return 0, err
	}
	if err := suite.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments"}}); err != nil {
		return 0, err
	}
	if suite.kubeconfig, err = writeKubeconfig(suite.env); err != nil {
		return 0, err
	}
	defer os.RemoveAll(filepath.Dir(suite.kubeconfig))
	suite.kubectl = filepath.Join(assets, "kubectl")
	if err := waitForRefusal(ctx); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func writeKubeconfig(env *envtest.Environment) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("adding admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "rulesadmission-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
}

// waitForRefusal waits until a dry run of a broken rule set is refused: the API server learns of webhook
// configurations through a watch, and the server starts in the background. Failing open, either being late
// would let the first broken set of a test through.
func waitForRefusal(ctx context.Context) error {
	cm := configMap(ruleSetLabel, map[string]string{cardsv1alpha1.RuleSetKey: brokenRules})
	cm.Name = "probe"
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = suite.client.Create(ctx, cm.DeepCopy(), client.DryRunAll); apierrors.IsForbidden(err) {
			return nil
		}
	}
	if err == nil {
		return errors.New("the webhook never refused a broken rule set: the API server kept accepting it")
	}
	return fmt.Errorf("the webhook never refused a broken rule set: %w", err)
}

// kubectl runs the real kubectl against the suite's API server with manifest as the file it applies.
func kubectl(t *testing.T, manifest string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "configmap.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "FILE", file)
	}
	cmd := exec.Command(suite.kubectl, append([]string{"--kubeconfig", suite.kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// manifest is a rule-set ConfigMap file as it sits in Git: rules.yaml as a | block.
func manifest(name string, labelled bool, rulesYAML string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: payments\n", name)
	if labelled {
		b.WriteString("  labels:\n    cards.cardplane.io/rule-set: \"true\"\n")
	}
	b.WriteString("data:\n  rules.yaml: |\n")
	for _, line := range strings.SplitAfter(rulesYAML, "\n") {
		if line != "" {
			b.WriteString("    " + line)
		}
	}
	return b.String()
}

func storedRules(t *testing.T, name string) (string, bool) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	err := suite.client.Get(context.Background(), client.ObjectKey{Namespace: "payments", Name: name}, cm)
	if apierrors.IsNotFound(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[cardsv1alpha1.RuleSetKey], true
}

// wantRefused checks that kubectl failed with the webhook's refusal and every one of lint's lines.
func wantRefused(t *testing.T, stdout, stderr string, err error, lines ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("kubectl accepted it:\n%s%s", stdout, stderr)
	}
	for _, want := range append([]string{`admission webhook "rule-sets.cards.cardplane.io" denied the request`}, lines...) {
		if !strings.Contains(stderr, want) {
			t.Errorf("kubectl's stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func wantAccepted(t *testing.T, stdout, stderr string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("kubectl refused it: %v\n%s%s", err, stdout, stderr)
	}
}

func TestKubectlApplyOfABrokenRuleSetIsRefused(t *testing.T) {
	stdout, stderr, err := kubectl(t, manifest("broken-rules", true, brokenRules), "apply", "-f", "FILE")
	wantRefused(t, stdout, stderr, err, brokenProblems...)
	t.Logf("kubectl apply -f broken.yaml:\n%s", stderr)
	if _, ok := storedRules(t, "broken-rules"); ok {
		t.Error("the refused ConfigMap was stored")
	}
}

// TestServerSideDryRunIsRefused: Flux applies server-side and Argo CD can dry-run on the server first; both
// see the refusal before anything is stored.
func TestServerSideDryRunIsRefused(t *testing.T) {
	stdout, stderr, err := kubectl(t, manifest("broken-dry-run", true, brokenRules), "apply", "--server-side", "--dry-run=server", "-f", "FILE")
	wantRefused(t, stdout, stderr, err, brokenProblems...)
}

func TestKubectlApplyOfAValidRuleSetIsAccepted(t *testing.T) {
	stdout, stderr, err := kubectl(t, manifest("valid-rules", true, validRules), "apply", "-f", "FILE")
	wantAccepted(t, stdout, stderr, err)
	if got, _ := storedRules(t, "valid-rules"); got != validRules {
		t.Errorf("stored rules.yaml %q, want %q", got, validRules)
	}
}

func TestAnUnlabelledConfigMapIsNotJudged(t *testing.T) {
	stdout, stderr, err := kubectl(t, manifest("not-rules", false, brokenRules), "apply", "-f", "FILE")
	wantAccepted(t, stdout, stderr, err)
}

func TestARuleSetWithoutRulesYAMLIsRefused(t *testing.T) {
	m := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: empty-rules\n  namespace: payments\n  labels:\n    cards.cardplane.io/rule-set: \"true\"\ndata:\n  rules.yml: \"rules: []\"\n"
	stdout, stderr, err := kubectl(t, m, "apply", "-f", "FILE")
	wantRefused(t, stdout, stderr, err, "the ConfigMap has no data key rules.yaml")
}

// TestBreakingAndFixingARuleSet: an update that breaks a good set is refused and the good version stays
// stored; the fix goes through; deleting the set is never refused.
func TestBreakingAndFixingARuleSet(t *testing.T) {
	stdout, stderr, err := kubectl(t, manifest("card-rules", true, validRules), "apply", "-f", "FILE")
	wantAccepted(t, stdout, stderr, err)

	stdout, stderr, err = kubectl(t, manifest("card-rules", true, brokenRules), "apply", "-f", "FILE")
	wantRefused(t, stdout, stderr, err, brokenProblems...)
	t.Logf("kubectl apply -f broken-update.yaml:\n%s", stderr)
	if got, _ := storedRules(t, "card-rules"); got != validRules {
		t.Errorf("after the refused update the stored rules.yaml is %q, want the good version", got)
	}

	fixed := strings.Replace(strings.Replace(strings.Replace(brokenRules, "Berlinn", "Berlin", 1), `, "780"`, "", 1), "Day", "Daily", 1)
	stdout, stderr, err = kubectl(t, manifest("card-rules", true, fixed), "apply", "-f", "FILE")
	wantAccepted(t, stdout, stderr, err)
	if got, _ := storedRules(t, "card-rules"); got != fixed {
		t.Errorf("stored rules.yaml %q, want the fix %q", got, fixed)
	}

	stdout, stderr, err = kubectl(t, "", "-n", "payments", "delete", "configmap", "card-rules")
	wantAccepted(t, stdout, stderr, err)
}

// TestServerWaitsForItsCertificate: a replica whose certificate Secret is not mounted yet starts without the
// webhook, and serves it once the files appear.
func TestServerWaitsForItsCertificate(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	srv, err := rulesadmission.NewServer(addr, dir)
	if err != nil {
		t.Fatal(err)
	}
	rulesadmission.SetPoll(srv, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()

	time.Sleep(200 * time.Millisecond)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the webhook listens without a certificate")
	}
	certs := suite.env.WebhookInstallOptions.LocalServingCertDir
	for _, name := range []string{rulesadmission.KeyName, rulesadmission.CertName} {
		data, err := os.ReadFile(filepath.Join(certs, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(suite.env.WebhookInstallOptions.LocalServingCAData)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
		if err == nil {
			if p := c.ConnectionState().NegotiatedProtocol; p == "h2" {
				t.Errorf("negotiated %s: HTTP/2 should be off", p)
			}
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook does not serve its certificate once it exists: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
