package webhookserver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/controllers"
	"github.com/cardplane/cardplane/internal/authz"
	"github.com/cardplane/cardplane/internal/decisionlog"
	"github.com/cardplane/cardplane/internal/projection"
	"github.com/cardplane/cardplane/internal/testenv"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

// One control plane and one manager for the package: the receiver under test reads endpoints from the
// manager's cache and writes through the real API server; callbacks arrive over real HTTP on loopback.
var (
	env      *testenv.Env
	k8s      client.Client
	receiver *webhookserver.Server
	srv      *httptest.Server
	// reviews serves the AuthorizationReview API (its own server, as in cmd/cardplane).
	reviews *httptest.Server
	mgrCtx  context.Context
	// ruleSets are the rule sets in force for the receiver under test (the RuleSet reconciler's store).
	ruleSets = &authz.Store{}
	// secrets is the receiver's Secret reader; directReads counts its reads from the API server.
	secrets     *webhookserver.SecretReader
	directReads *countingReader
)

const reviewToken = "test-review-token-0123456789"

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := run(m)
	_ = env.Stop()
	os.Exit(code)
}

// logs captures everything logged through controller-runtime, for the leak scan.
var logs testenv.LogBuffer

// decisionOut is the receiver's decision log.
var decisionOut testenv.LogBuffer

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(&logs), zap.UseDevMode(true)))
	k8s = env.Client
	// Secrets as in cmd/cardplane: metadata cached, data read through a SecretReader.
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.WebhookEndpointReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("test"), ValidateConfig: adapters.ValidateConfig}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	directReads = &countingReader{Reader: mgr.GetAPIReader()}
	secrets = &webhookserver.SecretReader{Reader: mgr.GetClient(), Metadata: mgr.GetCache(), Direct: directReads}
	receiver = &webhookserver.Server{
		Authorizer: &authz.Authorizer{Store: ruleSets, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Now: time.Now},
		Reader:     secrets,
		Ingester:   &ingest.Ingester{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()},
		Adapters:   adapters.All(),
		Recorder:   mgr.GetEventRecorder("cardplane-receiver"),
		Counters:   &webhookserver.Counters{},
		Challenges: &projection.ChallengeForwarder{Reader: secrets,
			Network: &projection.Network{AllowLoopback: true}, Backoff: 50 * time.Millisecond},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgrCtx = ctx
	receiver.Decisions = decisionlog.New(&decisionOut, 1000)
	go func() { _ = receiver.Decisions.Start(ctx) }()
	if err := webhookserver.WarmCache(ctx, mgr.GetCache()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := secrets.Watch(ctx, mgr.GetCache()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}
	srv = httptest.NewServer(receiver.Handler())
	defer srv.Close()
	authn, authzr, err := webhookserver.KubernetesAccess(env.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reviews = httptest.NewServer((&webhookserver.ReviewServer{Receiver: receiver, Authenticator: authn, Authorizer: authzr,
		SharedToken: reviewToken}).Handler())
	defer reviews.Close()
	ruleSets.MarkSynced() // the rule sets of these tests are put in place by each test
	return m.Run()
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rcv-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createEndpoint creates the credentials Secret and the endpoint and waits until it is Ready.
func createEndpoint(t *testing.T, ep *cardsv1alpha1.WebhookEndpoint, secret map[string]string) *cardsv1alpha1.WebhookEndpoint {
	t.Helper()
	ctx := context.Background()
	if secret != nil {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Name: ep.Name + "-credentials", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}, StringData: secret}
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		ep.Spec.CredentialsRef = &cardsv1alpha1.LocalObjectReference{Name: s.Name}
	}
	if err := k8s.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "endpoint Ready", func() bool {
		got := &cardsv1alpha1.WebhookEndpoint{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ep), got); err != nil {
			return false
		}
		c := apimeta.FindStatusCondition(got.Status.Conditions, cardsv1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == got.Generation
	})
	// The receiver reads from the manager's cache: give it the Ready endpoint too.
	time.Sleep(200 * time.Millisecond)
	return ep
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
