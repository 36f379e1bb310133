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
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// devOptions are the flags of `cardplane dev`, with the manager's.
type devOptions struct {
	assets     string
	kubeconfig string
	namespace  string
	noSamples  bool
	destAddr   string
	noSinks    bool
	sinks      demoSinkOptions
	manager    managerOptions
}

func newDevCommand() *cobra.Command {
	o := &devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on an embedded local kube-apiserver and etcd, with samples",
		Long: `Start a local kube-apiserver and etcd (built by hack/control-plane.sh), install the CRDs and the samples,
write an admin kubeconfig and run the manager against them, with a demo destination that verifies every
delivery, and demo sinks for the sample CardEventSinks (NATS with JetStream, an in-memory Kafka-protocol
broker, a CloudEvents receiver), each logging what it receives next to the kubeconfig. Ctrl-C stops everything; no process outlives this one. This is what make demo runs.`,
		Example: `  make demo
  cardplane dev --assets "$(hack/control-plane.sh)" --namespace demo`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.localDefaults(cmd.Flags())
			return o.run(cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.assets, "assets", "", "directory with kube-apiserver, etcd and kubectl (default: $KUBEBUILDER_ASSETS, then the hack/control-plane.sh cache)")
	fs.StringVar(&o.kubeconfig, "kubeconfig-out", filepath.Join(cacheDir(), "dev", "kubeconfig"), "where to write the admin kubeconfig")
	fs.StringVar(&o.namespace, "namespace", "default", "namespace the samples are applied to")
	fs.BoolVar(&o.noSamples, "no-samples", false, "do not apply config/samples")
	fs.StringVar(&o.destAddr, "demo-destination-address", "127.0.0.1:18090", "where the demo destination (the sample endpoint's ledger) listens; empty disables it")
	fs.StringVar(&o.sinks.natsAddr, "demo-nats-address", "127.0.0.1:14222", "where the demo NATS server (JetStream, stream CARDS on cards.>) listens; empty disables it")
	fs.StringVar(&o.sinks.kafkaAddr, "demo-kafka-address", "127.0.0.1:19092", "where the demo Kafka-protocol broker (franz-go's in-memory kfake, topic card-events) listens; empty disables it")
	fs.StringVar(&o.sinks.cloudEventsAddr, "demo-cloudevents-address", "127.0.0.1:18091", "where the demo CloudEvents receiver listens; empty disables it")
	fs.BoolVar(&o.noSinks, "no-demo-sinks", false, "start none of the demo NATS server, Kafka-protocol broker and CloudEvents receiver")
	o.manager.bind(fs)
	return cmd
}

// localDefaults puts the manager's listeners on loopback and its spool next to the kubeconfig, unless a flag
// says otherwise.
func (o *devOptions) localDefaults(fs *pflag.FlagSet) {
	opts := &o.manager
	if !fs.Changed("metrics-bind-address") {
		opts.metricsAddr = "127.0.0.1:18080"
	}
	if !fs.Changed("metrics-secure") {
		opts.metricsSecure = false // loopback only: curl http://127.0.0.1:18080/metrics
	}
	if !fs.Changed("health-probe-bind-address") {
		opts.probeAddr = "127.0.0.1:18081"
	}
	if !fs.Changed("webhook-bind-address") {
		opts.webhook.Addr = "127.0.0.1:18443"
	}
	opts.allowLoopback = true // destinations of a local demo run on this machine
	if !fs.Changed("spool-dir") {
		opts.spoolDir = filepath.Join(filepath.Dir(o.kubeconfig), "spool")
	}
	if !fs.Changed("decision-log") { // stdout carries the banner
		opts.decisionLog = filepath.Join(filepath.Dir(o.kubeconfig), "decisions.jsonl")
	}
	if !fs.Changed("admission-bind-address") {
		opts.admissionAddr = "0" // no API server calls the admission webhook of a local demo
	}
	if !fs.Changed("review-bind-address") {
		opts.review.Addr = "127.0.0.1:18444"
	}
	if opts.webhook.TLSCertFile == "" {
		opts.webhook.PlainHTTP = true // a local receiver on loopback
	}
	if opts.review.CertFile == "" && opts.webhook.TLSCertFile == "" {
		opts.review.PlainHTTP = true
	}
}

// assetsDir finds the kube-apiserver and etcd binaries.
func (o *devOptions) assetsDir() (string, error) {
	dir := o.assets
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		dir = filepath.Join(cacheDir(), "k8s", controlPlaneVersion)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s not found in %s: run `make demo` (it builds the control plane with hack/control-plane.sh) or pass --assets", bin, dir)
		}
	}
	return dir, nil
}

// run starts the control plane, loads it and runs the manager until Ctrl-C.
func (o *devOptions) run(out io.Writer) error {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	log := ctrl.Log.WithName("dev")
	dir, err := o.assetsDir()
	if err != nil {
		return err
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

	if err := writeKubeconfig(env, o.kubeconfig); err != nil {
		return err
	}
	if !o.noSamples {
		if err := applySamples(ctx, cfg, o.namespace); err != nil {
			return err
		}
	}
	if err := o.writeReviewToken(); err != nil {
		return err
	}
	destLog := filepath.Join(filepath.Dir(o.kubeconfig), "destination.log")
	if o.destAddr != "" {
		dest, err := startDemoDestination(o.destAddr, destLog)
		if err != nil {
			return err
		}
		defer dest.Close()
	}
	if o.noSinks {
		o.sinks.disableAll()
	}
	sinks, err := startDemoSinks(o.sinks, filepath.Dir(o.kubeconfig))
	if err != nil {
		return err
	}
	if o.destAddr != "" {
		sinks.running = append([]demoSinkInfo{{"Standard Webhooks", "http://" + o.destAddr + "/", "the demo destination (growth-webhook)", destLog}}, sinks.running...)
	}
	defer func() {
		log.Info("Stopping the demo sinks")
		sinks.Close()
	}()

	done := make(chan error, 1)
	go func() { done <- runManager(ctx, cfg, &o.manager) }()
	if !o.noSamples {
		go func() {
			if err := playDemoCallbacks(ctx, cfg, o.manager.webhook.Addr, o.namespace); err != nil {
				ctrl.Log.WithName("dev").Error(err, "Sending the example callbacks")
			}
		}()
	}
	o.printBanner(out, dir, destLog, sinks)
	return waitForManager(ctx, done)
}

// writeReviewToken makes a fresh bearer token for the AuthorizationReview API of this local run, unless one
// was given.
func (o *devOptions) writeReviewToken() error {
	if o.manager.reviewTokenFile != "" {
		return nil
	}
	o.manager.reviewTokenFile = filepath.Join(filepath.Dir(o.kubeconfig), "review-token")
	token := make([]byte, 24)
	_, _ = rand.Read(token)
	return os.WriteFile(o.manager.reviewTokenFile, []byte(hex.EncodeToString(token)), 0o600)
}

func (o *devOptions) printBanner(out io.Writer, assets, destLog string, sinks *demoSinks) {
	kubectl := "kubectl"
	if _, err := os.Stat(filepath.Join(assets, "kubectl")); err == nil {
		kubectl = filepath.Join(assets, "kubectl")
	}
	addr := o.manager.webhook.Addr
	fmt.Fprintf(out, `
cardplane is running on a local control plane. Look at the cards with:

  export KUBECONFIG=%s
  %s get cardholders,cards,cardtransactions,webhookendpoints,cardeventsinks -n %s

The receiver takes provider callbacks on http://%s/webhooks/%s/<endpoint>; send one with

  cardplane simulate --endpoint %s/upay-main --example upay-card-status

The demo destination verifies and logs every delivery (also in %s).
AuthorizationReviews: POST http://%s/v1alpha1/authorizationreviews with a ServiceAccount token allowed to
"authorize" cards in the namespace, or (this demo only) the shared token in %s.
Every decision is written to the decision log %s.

`, o.kubeconfig, kubectl, o.namespace, addr, o.namespace, o.namespace, destLog, o.manager.review.Addr, o.manager.reviewTokenFile, o.manager.decisionLog)
	sinks.printBanner(out, o.namespace)
	fmt.Fprint(out, `Press Ctrl-C to stop; nothing keeps running afterwards.

`)
}

// waitForManager returns when the manager fails, or when Ctrl-C has stopped it (or 30 s after).
func waitForManager(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	case <-ctx.Done():
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		case <-time.After(30 * time.Second):
			ctrl.Log.WithName("dev").Info("Manager did not stop within 30s")
		}
	}
	return nil
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
