//go:build !nodev

// The container image is built with -tags nodev: the embedded control plane needs kube-apiserver and etcd
// binaries the image does not carry, and envtest's init writes a port cache that a read-only root filesystem
// refuses (the manager would crash at start).

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/scheme"
)

// controlPlaneVersion is the Kubernetes version hack/control-plane.sh builds (hack/k8s/go.mod).
const controlPlaneVersion = "v1.37.2"

func runDevCommand(args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	assets := fs.String("assets", "", "directory with kube-apiserver, etcd and kubectl (default: $KUBEBUILDER_ASSETS, then the hack/control-plane.sh cache)")
	kubeconfig := fs.String("kubeconfig-out", filepath.Join(cacheDir(), "dev", "kubeconfig"), "where to write the admin kubeconfig")
	namespace := fs.String("namespace", "default", "namespace the samples are applied to")
	noSamples := fs.Bool("no-samples", false, "do not apply config/samples")
	destAddr := fs.String("demo-destination-address", "127.0.0.1:18090", "where the demo destination (the sample endpoint's ledger) listens; empty disables it")
	opts := &managerOptions{}
	opts.bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !isFlagSet(fs, "metrics-bind-address") {
		opts.metricsAddr = "127.0.0.1:18080"
	}
	if !isFlagSet(fs, "health-probe-bind-address") {
		opts.probeAddr = "127.0.0.1:18081"
	}
	if !isFlagSet(fs, "webhook-bind-address") {
		opts.webhook.Addr = "127.0.0.1:18443"
	}
	opts.allowLoopback = true // destinations of a local demo run on this machine
	if !isFlagSet(fs, "spool-dir") {
		opts.spoolDir = filepath.Join(filepath.Dir(*kubeconfig), "spool")
	}
	if opts.webhook.TLSCertFile == "" {
		opts.webhook.PlainHTTP = true // a local receiver on loopback
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	log := ctrl.Log.WithName("dev")

	dir := *assets
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		dir = filepath.Join(cacheDir(), "k8s", controlPlaneVersion)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return fmt.Errorf("%s not found in %s: run `make demo` (it builds the control plane with hack/control-plane.sh) or pass --assets", bin, dir)
		}
	}
	crds, err := config.CRDs()
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	env := &envtest.Environment{BinaryAssetsDirectory: dir, CRDs: crds}
	log.Info("Starting kube-apiserver and etcd", "assets", dir)
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the local control plane: %w", err)
	}
	// Whatever happens next, stop the control plane so no process outlives this one.
	defer func() {
		log.Info("Stopping kube-apiserver and etcd")
		if err := env.Stop(); err != nil {
			log.Error(err, "Stopping the control plane")
		}
	}()

	if err := writeKubeconfig(env, *kubeconfig); err != nil {
		return err
	}
	if !*noSamples {
		if err := applySamples(ctx, cfg, *namespace); err != nil {
			return err
		}
	}

	if opts.reviewTokenFile == "" {
		// A fresh bearer token for the AuthorizationReview API of this local run.
		opts.reviewTokenFile = filepath.Join(filepath.Dir(*kubeconfig), "review-token")
		token := make([]byte, 24)
		_, _ = rand.Read(token)
		if err := os.WriteFile(opts.reviewTokenFile, []byte(hex.EncodeToString(token)), 0o600); err != nil {
			return err
		}
	}
	destLog := filepath.Join(filepath.Dir(*kubeconfig), "destination.log")
	if *destAddr != "" {
		dest, err := startDemoDestination(*destAddr, destLog)
		if err != nil {
			return err
		}
		defer dest.Close()
	}

	done := make(chan error, 1)
	go func() { done <- runManager(ctx, cfg, opts) }()

	kubectl := "kubectl"
	if _, err := os.Stat(filepath.Join(dir, "kubectl")); err == nil {
		kubectl = filepath.Join(dir, "kubectl")
	}
	fmt.Printf(`
cardplane is running on a local control plane. Look at the cards with:

  export KUBECONFIG=%s
  %s get cards,cardtransactions,webhookendpoints -n %s

The receiver takes provider callbacks on http://%s/webhooks/%s/<endpoint>; send one with

  cardplane simulate --endpoint %s/upay-main --example upay-card-status

The demo destination verifies and logs every delivery (also in %s).
AuthorizationReviews: POST http://%s/v1alpha1/authorizationreviews with the bearer token in %s.

Press Ctrl-C to stop; nothing keeps running afterwards.

`, *kubeconfig, kubectl, *namespace, opts.webhook.Addr, *namespace, *namespace, destLog, opts.webhook.Addr, opts.reviewTokenFile)

	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	case <-ctx.Done():
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			log.Info("Manager did not stop within 30s")
		}
	}
	return nil
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func writeKubeconfig(env *envtest.Environment, path string) error {
	user, err := env.AddUser(envtest.User{Name: "cardplane-dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating the admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// applySamples creates the sample objects, then writes the status the samples carry.
func applySamples(ctx context.Context, cfg *rest.Config, namespace string) error {
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	samples, err := config.Samples()
	if err != nil {
		return err
	}
	for _, s := range samples {
		obj := s.Object
		obj.SetNamespace(namespace)
		if _, found, _ := unstructured.NestedMap(obj.Object, "spec", "endpointRef"); found {
			_ = unstructured.SetNestedField(obj.Object, namespace, "spec", "endpointRef", "namespace")
		}
		status, hasStatus := obj.Object["status"]
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("sample %s: %s %s: %w", s.File, obj.GetKind(), obj.GetName(), err)
		}
		if hasStatus {
			obj.Object["status"] = status
			if err := c.Status().Update(ctx, obj); err != nil {
				return fmt.Errorf("sample %s: status of %s %s: %w", s.File, obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	return nil
}
