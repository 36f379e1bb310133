// Command ingest measures the receiver's sustained ingestion throughput and callback-to-ack latency on a local
// kube-apiserver + etcd, against the physical limit of the same machine: a raw client-go loop doing the same
// API writes (create a Card, patch its status) without HTTP, verification or idempotency checks.
//
//	KUBEBUILDER_ASSETS=$(hack/control-plane.sh) go run ./bench/ingest -n 2000 -workers 16
//
// It prints a Markdown report; docs/benchmarks.md keeps the figures of a run.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/bench/benchenv"
	"github.com/cardplane/cardplane/bench/internal/measure"
	"github.com/cardplane/cardplane/controllers"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

const signingKey = "bench-signing-key-0123456789abcdef"

type config struct {
	n, workers int
	paced      time.Duration
	cpuProfile string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 2000, "cards written in each saturation phase")
	flag.IntVar(&cfg.workers, "workers", 16, "concurrent writers / HTTP clients")
	flag.DurationVar(&cfg.paced, "paced", 20*time.Second, "length of the paced phase at half the raw rate")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the receiver phase to this file")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	counters := &webhookserver.Counters{}
	env, err := benchenv.Start(ctx, func(mgr ctrl.Manager) error { return setupReceiver(mgr, counters) })
	if err != nil {
		return err
	}
	defer env.Stop()
	srv := httptest.NewServer(receiver(env.Manager, counters).Handler())
	defer srv.Close()
	if err := env.CreateNamespaces(ctx, "raw", "rcv", "paced"); err != nil {
		return err
	}
	rcvEP, err := createEndpoint(ctx, env, "rcv")
	if err != nil {
		return err
	}
	pacedEP, err := createEndpoint(ctx, env, "paced")
	if err != nil {
		return err
	}

	// 1. Raw: the same two API writes per card, straight from client-go.
	raw := report("raw", measure.Closed{Workers: cfg.workers, Count: cfg.n}.Run(ctx, rawWrites(ctx, env.Client)))
	// 2. Receiver at saturation: a signed UPay callback per new card over HTTP, acked after the writes.
	var rcv measure.Summary
	err = withCPUProfile(cfg.cpuProfile, func() {
		rcv = report("receiver", measure.Closed{Workers: cfg.workers, Count: cfg.n}.Run(ctx, callbacks(srv.URL, rcvEP)))
	})
	if err != nil {
		return err
	}
	// 3. Paced at half the raw rate: latency when not saturated.
	rate := raw.Rate() / 2
	paced := report("paced", measure.Open{Rate: rate, Duration: cfg.paced, MaxInFlight: cfg.workers * 4}.Run(ctx, callbacks(srv.URL, pacedEP)))

	printReport(cfg.workers, raw, rcv, paced, rate)
	return nil
}

// setupReceiver adds what the receiver needs running: endpoint readiness and the counter flusher.
func setupReceiver(mgr ctrl.Manager, counters *webhookserver.Counters) error {
	r := &controllers.WebhookEndpointReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("bench"),
		ValidateConfig: adapters.ValidateConfig}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	return mgr.Add(&webhookserver.CounterFlusher{Counters: counters, Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Interval: time.Second})
}

func receiver(mgr ctrl.Manager, counters *webhookserver.Counters) *webhookserver.Server {
	return &webhookserver.Server{Reader: mgr.GetClient(), Adapters: adapters.All(), Counters: counters,
		Ingester: &ingest.Ingester{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}}
}

// report passes s through, telling stderr the first error of a phase, which the table only counts.
func report(phase string, s measure.Summary) measure.Summary {
	if s.FirstErr != nil {
		fmt.Fprintf(os.Stderr, "%s: first error of %d: %v\n", phase, s.Errors, s.FirstErr)
	}
	return s
}

func printReport(workers int, raw, rcv, paced measure.Summary, rate float64) {
	fmt.Printf("## Ingestion benchmark (%s, GOMAXPROCS=%d, %d workers)\n\n", time.Now().UTC().Format("2006-01-02"), runtime.GOMAXPROCS(0), workers)
	t := measure.NewTable("phase", "operations", "errors", "throughput (ops/s)", "p50", "p99", "max")
	t.AddSummary(raw, "raw client-go: create Card + patch status")
	t.AddSummary(rcv, "receiver: signed UPay callback → Card → SUCCESS")
	t.AddSummary(paced, fmt.Sprintf("receiver paced at %.0f/s (half the raw rate)", rate))
	fmt.Print(t)
	fmt.Printf("\nreceiver / raw throughput: **%s**; p99 at half the raw rate: **%s**\n",
		measure.Ratio(rcv.Rate(), raw.Rate()).Percent(), measure.FormatDuration(paced.P99))
}

// createEndpoint creates a UPay endpoint and its signing Secret in ns and waits until it is Ready.
func createEndpoint(ctx context.Context, env *benchenv.Env, ns string) (*cardsv1alpha1.WebhookEndpoint, error) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		StringData: map[string]string{cardsv1alpha1.SecretKeySigningKey: signingKey}}
	if err := env.Client.Create(ctx, secret); err != nil {
		return nil, err
	}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upay"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"}}}
	if err := env.Client.Create(ctx, ep); err != nil {
		return nil, err
	}
	return ep, waitReady(ctx, env.Manager.GetClient(), ep)
}

func waitReady(ctx context.Context, c client.Client, ep *cardsv1alpha1.WebhookEndpoint) error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got := &cardsv1alpha1.WebhookEndpoint{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ep), got); err == nil && meta.IsStatusConditionTrue(got.Status.Conditions, cardsv1alpha1.ConditionReady) {
			return nil
		}
	}
	return fmt.Errorf("endpoint %s/%s not Ready", ep.Namespace, ep.Name)
}

// rawWrites is the physical limit: the two API writes a callback for a new card costs, from client-go.
func rawWrites(ctx context.Context, c client.Client) measure.Op {
	return func(i int) error {
		card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: "raw", Name: fmt.Sprintf("upay-c%d", i)},
			Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: "raw", Name: "upay"},
				Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: fmt.Sprintf("C%d", i)}}
		if err := c.Create(ctx, card); err != nil {
			return err
		}
		before := card.DeepCopy()
		card.Status.Phase = cardsv1alpha1.CardActive
		return c.Status().Patch(ctx, card, client.MergeFrom(before))
	}
}

// callbacks sends call i as a signed UPay CSC_STATUS_CHANGE for new card C<i> to ep, and wants SUCCESS, which
// the receiver answers only after the writes.
func callbacks(url string, ep *cardsv1alpha1.WebhookEndpoint) measure.Op {
	cfg := &endpointconfig.Resolved{SigningKey: []byte(signingKey), Endpoint: ep}
	url += "/webhooks/" + ep.Namespace + "/" + ep.Name
	return func(i int) error {
		body := fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":"o-%d","timestamp":%d,"detail":{"cardId":"C%d","cardNumber":"5326********1234","status":"1","orderNo":"o-%d","customerNo":"CU%d"}}`,
			i, time.Now().UnixMilli(), i, i, i)
		h, wire, err := upay.Encode(cfg, []byte(body), time.Now())
		if err != nil {
			return err
		}
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(wire))
		if err != nil {
			return err
		}
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }() // a read: nothing to lose
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(answer) != "SUCCESS" {
			return fmt.Errorf("answered %d %s", resp.StatusCode, answer)
		}
		return nil
	}
}

// withCPUProfile runs f, profiling the CPU into path if one is given.
func withCPUProfile(path string, f func()) error {
	if path == "" {
		f()
		return nil
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		_ = out.Close()
		return err
	}
	f()
	pprof.StopCPUProfile()
	return out.Close() // the profile is only whole once closed
}
