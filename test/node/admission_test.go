package node_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// brokenRuleSet is docs/operations.md's broken.yaml: line 2 of its rules.yaml names no IANA time zone.
const brokenRuleSet = `apiVersion: v1
kind: ConfigMap
metadata:
  name: card-rules
  namespace: payments
  labels:
    cards.cardplane.io/rule-set: "true"
data:
  rules.yaml: |
    defaultDecision: approve
    timeZone: Europe/Berlinn
    rules:
    - name: block-gambling
      reason: BLOCKED_MCC
      mcc: {block: ["7995"]}
`

// checkRuleSetAdmission follows docs/operations.md on the running installation: the chart's registration (its
// generated CA in the caBundle, the admission Service) has the API server call a replica, which refuses a rule
// set that does not compile with the message the guide shows; a rule set that compiles is admitted, and the
// manager marks it InForce on the ConfigMap (its new configmaps patch right); the replicas count the requests.
func checkRuleSetAdmission(t *testing.T, cl *cluster, pods []corev1.Pod, token string) {
	t.Helper()
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	good := filepath.Join(dir, "card-rules.yaml")
	if err := os.WriteFile(broken, []byte(brokenRuleSet), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte(strings.Replace(brokenRuleSet, "Europe/Berlinn", "Europe/Berlin", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := refusedDryRun(t, cl.kubeconfig, broken)
	for _, want := range []string{`admission webhook "rule-sets.cards.cardplane.io" denied the request: rule set payments/card-rules does not compile:`,
		`rules.yaml:2: timeZone: "Europe/Berlinn" is not an IANA time zone name (e.g. UTC, Europe/Berlin)`} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, out)
		}
	}
	t.Logf("a broken rule set, refused through the webhook:\n%s", out)

	mustRun(t, dir, cl.kubeconfig, "kubectl", "apply", "-f", good)
	if cm := waitRuleSetState(t, cl, cardsv1alpha1.RuleSetInForce); cm.Annotations[cardsv1alpha1.AnnotationRuleSetError] != "" {
		t.Errorf("an InForce rule set carries an error: %q", cm.Annotations[cardsv1alpha1.AnnotationRuleSetError])
	}

	// A broken version stored while the webhook did not answer (it fails open), written here as the manager's
	// ServiceAccount, which the chart's registration exempts so that the manager can mark such a set Invalid:
	// the error lands on the ConfigMap, where docs/operations.md's Argo CD health check reads it.
	mustRun(t, dir, cl.kubeconfig, "kubectl", "apply", "--as=system:serviceaccount:"+namespace+":cardplane", "-f", broken)
	cm := waitRuleSetState(t, cl, cardsv1alpha1.RuleSetInvalid)
	if msg := cm.Annotations[cardsv1alpha1.AnnotationRuleSetError]; !strings.Contains(msg, `"Europe/Berlinn" is not an IANA time zone name`) ||
		!strings.Contains(msg, "stays in force") {
		t.Errorf("rule-set-error annotation %q: want the problem and the version kept in force", msg)
	}
	mustRun(t, dir, cl.kubeconfig, "kubectl", "apply", "-f", good)
	if cm := waitRuleSetState(t, cl, cardsv1alpha1.RuleSetInForce); cm.Annotations[cardsv1alpha1.AnnotationRuleSetError] != "" {
		t.Errorf("the fixed rule set still carries an error: %q", cm.Annotations[cardsv1alpha1.AnnotationRuleSetError])
	}
	var requests float64
	for _, p := range pods {
		requests += metricSum(t, p.Status.PodIP, token, "controller_runtime_webhook_requests_total")
	}
	if requests < 2 {
		t.Errorf("the replicas counted %v admission requests, want at least the refusal and the create", requests)
	}
}

// refusedDryRun runs `kubectl apply --dry-run=server -f file` until the webhook refuses it and returns kubectl's
// output. The registration fails open, so until the API server has it and a replica serves, the dry run is let
// through: a deadline, not a single try.
func refusedDryRun(t *testing.T, kubeconfig, file string) string {
	t.Helper()
	var out []byte
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		cmd := exec.Command("kubectl", "apply", "--dry-run=server", "-f", file)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+os.Getenv("KUBEBUILDER_ASSETS")+":"+os.Getenv("PATH"))
		var err error
		if out, err = cmd.CombinedOutput(); err != nil && strings.Contains(string(out), "denied the request") {
			return string(out)
		}
	}
	t.Fatalf("the API server never refused the broken rule set through the webhook; last answer:\n%s", out)
	return ""
}

// waitRuleSetState waits until the manager has annotated payments/card-rules with state, and returns it.
func waitRuleSetState(t *testing.T, cl *cluster, state string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	eventually(t, time.Minute, "the manager marks the rule set "+state, func() bool {
		if err := cl.c.Get(context.Background(), client.ObjectKey{Namespace: "payments", Name: "card-rules"}, cm); err != nil {
			t.Fatal(err)
		}
		return cm.Annotations[cardsv1alpha1.AnnotationRuleSetState] == state
	})
	return cm
}
