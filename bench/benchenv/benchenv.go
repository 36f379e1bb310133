// Package benchenv starts what the harnesses measure against: a local kube-apiserver and etcd (testenv) and a
// started controller manager whose cache already serves the kinds the receiver reads. It is apart from
// package measure so that measure stays free of cardplane and of an API server, and outside bench/internal
// because it wires the receiver's packages, which internal packages may not import (.golangci.yml depguard).
package benchenv

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cardplane/cardplane/internal/testenv"
	"github.com/cardplane/cardplane/webhookserver"
)

// Env is a running control plane and manager.
type Env struct {
	*testenv.Env
	Manager ctrl.Manager
	cancel  context.CancelFunc
}

// Start starts the control plane and a manager (no metrics listener, logs discarded: a harness prints only
// its report). setup adds reconcilers and runnables before the manager starts; it may be nil.
func Start(ctx context.Context, setup func(ctrl.Manager) error) (*Env, error) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	te, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	e := &Env{Env: te}
	ctx, e.cancel = context.WithCancel(ctx)
	if err := e.startManager(ctx, setup); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) startManager(ctx context.Context, setup func(ctrl.Manager) error) error {
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	e.Manager = mgr
	if setup != nil {
		if err := setup(mgr); err != nil {
			return err
		}
	}
	if err := webhookserver.WarmCache(ctx, mgr.GetCache()); err != nil {
		return err
	}
	go func() { _ = mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("manager cache did not sync")
	}
	return nil
}

// Stop stops the manager and the control plane.
func (e *Env) Stop() {
	e.cancel()
	_ = e.Env.Stop()
}

// CreateNamespaces creates namespaces, one per measured phase, so the phases' objects never meet.
func (e *Env) CreateNamespaces(ctx context.Context, names ...string) error {
	for _, ns := range names {
		if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
	}
	return nil
}
