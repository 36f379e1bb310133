package node_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/testenv"
)

// TestKustomizeDefaultRunsOnANode deploys config/default as docs/operations.md's kustomize section says (an
// overlay adding the receiver Service, here also pointing the image at the registry), and has its pods,
// run from the image by the stand-in node, take a first card.
func TestKustomizeDefaultRunsOnANode(t *testing.T) {
	root := testenv.RepoRoot()
	cl := newCluster(t)
	image := cl.registry + "/cardplane"
	mustRun(t, root, cl.kubeconfig, "make", "--no-print-directory", "image-push", "build", "IMAGE="+image+":kustomize")

	work := t.TempDir()
	crt, key := filepath.Join(work, "tls.crt"), filepath.Join(work, "tls.key")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
		"-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", crt).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	overlay := filepath.Join(work, "overlays", "prod")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(overlay, filepath.Join(root, "config", "default")) // kustomize takes no absolute bases
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"kustomization.yaml": `resources:
- ` + base + `
- receiver-service.yaml
images:
- name: ghcr.io/cardplane/cardplane
  newName: ` + image + `
  newTag: kustomize
`,
		// As in the guide.
		"receiver-service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: cardplane-receiver
  namespace: cardplane-system
spec:
  selector:
    app.kubernetes.io/name: cardplane
    app.kubernetes.io/component: manager
  ports:
  - name: https
    port: 443
    targetPort: 9443
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(overlay, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	receiver, err := cl.node.Balance(cl.ctx, "cardplane-system", "cardplane-receiver")
	if err != nil {
		t.Fatal(err)
	}

	kubectl := func(args ...string) { t.Helper(); mustRun(t, work, cl.kubeconfig, "kubectl", args...) }
	kubectl("apply", "--server-side", "-k", overlay)
	// The guide says the pods wait for the TLS Secret: create it only once they exist.
	eventually(t, time.Minute, "config/default's pods exist", func() bool {
		var pods corev1.PodList
		_ = cl.c.List(cl.ctx, &pods, client.InNamespace("cardplane-system"))
		return len(pods.Items) == 2
	})
	kubectl("-n", "cardplane-system", "create", "secret", "tls", "cardplane-receiver-tls", "--cert="+crt, "--key="+key)
	kubectl("-n", "cardplane-system", "rollout", "status", "deployment/cardplane-manager", "--timeout=2m")
	kubectl("create", "namespace", "payments")
	kubectl("-n", "payments", "create", "secret", "generic", "upay-credentials", "--from-literal=signingKey=kustomize-walk-key")
	kubectl("-n", "payments", "label", "secret", "upay-credentials", "cards.cardplane.io/credentials=true")
	mustRun(t, work, cl.kubeconfig, "bash", "-c", `kubectl -n payments apply -f - <<'EOF'
apiVersion: cards.cardplane.io/v1alpha1
kind: WebhookEndpoint
metadata:
  name: upay-main
spec:
  provider: upay
  credentialsRef:
    name: upay-credentials
EOF
kubectl -n payments wait --for=condition=Ready webhookendpoint/upay-main --timeout=60s`)
	simulate(t, cl.kubeconfig, receiver, crt, "payments/upay-main", "upay-cs-approved")

	var cards cardsv1alpha1.CardList
	if err := cl.c.List(cl.ctx, &cards, client.InNamespace("payments")); err != nil {
		t.Fatal(err)
	}
	if len(cards.Items) != 1 || cards.Items[0].Status.Phase != cardsv1alpha1.CardPendingActivation {
		t.Fatalf("cards after the kustomize install: %d %v", len(cards.Items), cards.Items)
	}
	pods := readyPodsIn(t, cl.c, "cardplane-system")
	if len(pods) != 2 {
		t.Fatalf("want config/default's 2 replicas ready, got %d", len(pods))
	}
	for _, p := range pods {
		checkContainerIdentity(t, cl.node, p)
		if !strings.HasPrefix(p.Spec.Containers[0].Image, image+":") {
			t.Errorf("pod %s runs %s, want the pushed image", p.Name, p.Spec.Containers[0].Image)
		}
	}
	if errs := cl.node.Errors(); len(errs) > 0 {
		t.Fatalf("the stand-in node reported: %v", errs)
	}
}
