package controllers_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cardplane/cardplane/controllers"
	"github.com/cardplane/cardplane/internal/projection"
	"github.com/cardplane/cardplane/internal/testenv"
	"github.com/cardplane/cardplane/webhookserver/adapters"
)

// One control plane for the package; each test runs its own manager over its own namespace, so a test can
// stop and restart "the operator" without disturbing the others.
var (
	env *testenv.Env
	k8s client.Client
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s = env.Client
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// startManager runs every reconciler over namespace ns (and more) until the returned stop is called (or the
// test ends).
func startManager(t *testing.T, ns string, more ...string) (stop func()) {
	t.Helper()
	namespaces := map[string]cache.Config{ns: {}}
	for _, n := range more {
		namespaces[n] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:     env.Scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: namespaces},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		// As in production (cmd/cardplane/manager.go): Secrets are read from the API server, so a reconcile
		// triggered by a Secret's metadata never reads an older copy of it from another informer.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := mgr.GetEventRecorder("cardplane-controller")
	for _, r := range []interface{ SetupWithManager(ctrl.Manager) error }{
		&controllers.WebhookEndpointReconciler{Client: mgr.GetClient(), Recorder: rec, ValidateConfig: adapters.ValidateConfig},
		&controllers.CardReconciler{Client: mgr.GetClient(), Recorder: rec},
		&controllers.CardTransactionReconciler{Client: mgr.GetClient()},
	} {
		if err := r.SetupWithManager(mgr); err != nil {
			t.Fatal(err)
		}
	}
	if err := mgr.Add(&projection.Dispatcher{Cache: mgr.GetCache(), Client: mgr.GetClient(), Secrets: mgr.GetClient(),
		Network: &projection.Network{AllowLoopback: true}, SinkPolicy: projection.SinkPolicy{RecheckInterval: 300 * time.Millisecond},
		Recorder: rec, Now: time.Now, StatusInterval: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = mgr.Start(ctx); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ctl-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func waitFor(t *testing.T, what string, cond func() bool, onTimeout ...func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, f := range onTimeout {
				f()
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
