package chaos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/controllers"
	"github.com/cardplane/cardplane/internal/testenv"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

// newUPayEndpoint creates a namespace named after prefix, the UPay credentials Secret and a UPay endpoint
// "upay" in it.
func newUPayEndpoint(t *testing.T, prefix string) *cardsv1alpha1.WebhookEndpoint {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "creds", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		StringData: map[string]string{cardsv1alpha1.SecretKeySigningKey: upayKey}}); err != nil {
		t.Fatal(err)
	}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "upay"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"}}}
	if err := env.Client.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

// ready reports whether ep is Ready at its generation as r sees it (a manager's cache, or the API server), as
// the receiver requires. The condition is found by type: an endpoint has others beside it.
func ready(r client.Reader, ep *cardsv1alpha1.WebhookEndpoint) func() bool {
	return func() bool {
		got := &cardsv1alpha1.WebhookEndpoint{}
		if err := r.Get(context.Background(), client.ObjectKeyFromObject(ep), got); err != nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, cardsv1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == got.Generation
	}
}

// probe is a receiver's answer to an unsigned callback for ep: 404 before the receiver's cache holds ep, 503
// NotReady while it holds ep not Ready, and once it admits ep's callbacks a refusal of the missing signature
// (see admitted), which writes nothing. A receiver reads endpoints from its cache, which can trail the API
// server: a test that acts on an endpoint's condition waits for the receiver's view too.
func probe(hc *http.Client, base string, ep *cardsv1alpha1.WebhookEndpoint) int {
	resp, err := hc.Post(base+"/webhooks/"+ep.Namespace+"/"+ep.Name, "application/json", strings.NewReader("{}"))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// admitted is probe's answer once the receiver admits the endpoint's callbacks: the unsigned probe is refused
// as malformed or unauthenticated.
func admitted(status int) bool {
	return status == http.StatusBadRequest || status == http.StatusUnauthorized
}

// startReceiver starts a manager on cfg and a receiver of it served on loopback, wired as in the other chaos
// tests: the endpoint reconciler (when reconcile; one replica of several leaves it to the first), warmed
// caches, and configure's additions (a spool, options) before the manager starts. It returns the manager and
// the receiver's URL; both stop when the test ends or ctx does.
func startReceiver(t *testing.T, ctx context.Context, cfg *rest.Config, name string, reconcile bool,
	configure func(ctrl.Manager, *webhookserver.Server)) (ctrl.Manager, string) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}}) // several operators in one test binary
	if err != nil {
		t.Fatal(err)
	}
	if reconcile {
		if err := (&controllers.WebhookEndpointReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder(name), ValidateConfig: adapters.ValidateConfig}).SetupWithManager(mgr); err != nil {
			t.Fatal(err)
		}
	}
	mctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := webhookserver.WarmCache(mctx, mgr.GetCache()); err != nil {
		t.Fatal(err)
	}
	receiver := &webhookserver.Server{Reader: mgr.GetClient(), Adapters: adapters.All(),
		Ingester: &ingest.Ingester{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}}
	if configure != nil {
		configure(mgr, receiver)
	}
	go func() { _ = mgr.Start(mctx) }()
	srv := httptest.NewServer(receiver.Handler())
	t.Cleanup(srv.Close)
	return mgr, srv.URL
}

// cardPhases is the phase of every card in namespace, by provider card ID.
func cardPhases(ctx context.Context, namespace string) (map[string]cardsv1alpha1.CardPhase, error) {
	list := &cardsv1alpha1.CardList{}
	if err := env.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	got := map[string]cardsv1alpha1.CardPhase{}
	for _, c := range list.Items {
		got[c.Spec.ProviderCardID] = c.Status.Phase
	}
	return got, nil
}

// buildManager builds the cardplane binary into dir, for the tests that run and SIGKILL it.
func buildManager(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "cardplane")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cardplane")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
