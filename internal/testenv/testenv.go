// Package testenv starts a real kube-apiserver and etcd (envtest) with the cardplane CRDs installed,
// for integration tests. The binaries come from hack/control-plane.sh through KUBEBUILDER_ASSETS.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/cardplane/cardplane/internal/scheme"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
)

// Env is a running control plane.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
	// Kubeconfig is the path of an admin kubeconfig for kubectl.
	Kubeconfig string
	// Kubectl is the path of the kubectl built beside the API server.
	Kubectl string
}

// RepoRoot is the root of the cardplane module.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts etcd and kube-apiserver and installs the CRDs from config/crd/bases.
// It fails when KUBEBUILDER_ASSETS does not point at the binaries: run tests with `make test`.
func Start() (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd (hack/control-plane.sh)")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	e := &Env{Environment: env, Config: cfg, Scheme: scheme.New(), Kubectl: filepath.Join(assets, "kubectl")}
	e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	user, err := env.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("adding admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cardplane-envtest-")
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	e.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

// Stop stops the control plane and removes the kubeconfig.
func (e *Env) Stop() error {
	_ = os.RemoveAll(filepath.Dir(e.Kubeconfig))
	return e.Environment.Stop()
}
