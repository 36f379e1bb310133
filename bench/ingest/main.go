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
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/controllers"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/testenv"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

func main() {
	n := flag.Int("n", 2000, "cards written in each saturation phase")
	workers := flag.Int("workers", 16, "concurrent writers / HTTP clients")
	paced := flag.Duration("paced", 20*time.Second, "length of the paced phase at half the raw rate")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the receiver phase to this file")
	flag.Parse()
	cpuProfile = *profile
	if err := run(*n, *workers, *paced); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(n, workers int, pacedFor time.Duration) error {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := (&controllers.WebhookEndpointReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("bench")}).SetupWithManager(mgr); err != nil {
		return err
	}
	counters := &webhookserver.Counters{}
	receiver := &webhookserver.Server{Reader: mgr.GetClient(), Adapters: adapters.All(), Counters: counters,
		Ingester: &ingest.Ingester{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}}
	if err := mgr.Add(&webhookserver.CounterFlusher{Counters: counters, Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Interval: time.Second}); err != nil {
		return err
	}
	if err := webhookserver.WarmCache(ctx, mgr.GetCache()); err != nil {
		return err
	}
	go func() { _ = mgr.Start(ctx) }()
	mgr.GetCache().WaitForCacheSync(ctx)
	srv := httptest.NewServer(receiver.Handler())
	defer srv.Close()

	c := env.Client
	for _, ns := range []string{"raw", "rcv", "paced"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	key := "bench-signing-key-0123456789abcdef"
	var eps []*cardsv1alpha1.WebhookEndpoint
	for _, ns := range []string{"rcv", "paced"} {
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
			StringData: map[string]string{cardsv1alpha1.SecretKeySigningKey: key}}); err != nil {
			return err
		}
		ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upay"},
			Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"}}}
		if err := c.Create(ctx, ep); err != nil {
			return err
		}
		eps = append(eps, ep)
	}
	for _, ep := range eps {
		if err := waitReady(ctx, mgr.GetClient(), ep); err != nil {
			return err
		}
	}

	// 1. Raw: the same two API writes per card, straight from client-go.
	raw := measure(n, workers, func(i int) error {
		card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: "raw", Name: fmt.Sprintf("upay-c%d", i)},
			Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: "raw", Name: "upay"},
				Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: fmt.Sprintf("C%d", i)}}
		if err := c.Create(ctx, card); err != nil {
			return err
		}
		before := card.DeepCopy()
		card.Status.Phase = cardsv1alpha1.CardActive
		return c.Status().Patch(ctx, card, client.MergeFrom(before))
	})

	// 2. Receiver at saturation: a signed UPay callback per new card over HTTP, acked after the writes.
	send := func(ep *cardsv1alpha1.WebhookEndpoint, i int) error {
		cfg := &endpointconfig.Resolved{SigningKey: []byte(key), Endpoint: ep}
		body := fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":"o-%d","timestamp":%d,"detail":{"cardId":"C%d","cardNumber":"5326********1234","status":"1","orderNo":"o-%d","customerNo":"CU%d"}}`,
			i, time.Now().UnixMilli(), i, i, i)
		h, wire, err := upay.Encode(cfg, []byte(body), time.Now())
		if err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/"+ep.Namespace+"/"+ep.Name, bytes.NewReader(wire))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(answer) != "SUCCESS" {
			return fmt.Errorf("answered %d %s", resp.StatusCode, answer)
		}
		return nil
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		_ = pprof.StartCPUProfile(f)
	}
	rcv := measure(n, workers, func(i int) error { return send(eps[0], i) })
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}

	// 3. Paced at half the raw rate: latency when not saturated.
	rate := raw.rate / 2
	p := pace(rate, pacedFor, workers*4, func(i int) error { return send(eps[1], i) })

	fmt.Printf("## Ingestion benchmark (%s, GOMAXPROCS=%d, %d workers)\n\n", time.Now().UTC().Format("2006-01-02"), runtime.GOMAXPROCS(0), workers)
	fmt.Println("| phase | operations | errors | throughput (ops/s) | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|---|---|---|")
	row := func(name string, r result) {
		fmt.Printf("| %s | %d | %d | %.0f | %s | %s | %s |\n", name, r.ops, r.errors, r.rate, ms(r.p50), ms(r.p99), ms(r.max))
	}
	row("raw client-go: create Card + patch status", raw)
	row("receiver: signed UPay callback → Card → SUCCESS", rcv)
	row(fmt.Sprintf("receiver paced at %.0f/s (half the raw rate)", rate), p)
	fmt.Printf("\nreceiver / raw throughput: **%.0f%%**; p99 at half the raw rate: **%s**\n", 100*rcv.rate/raw.rate, ms(p.p99))
	return nil
}

var cpuProfile string

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

type result struct {
	ops, errors   int
	rate          float64
	p50, p99, max time.Duration
	firstErr      error
}

func summarize(lat []time.Duration, errs int, elapsed time.Duration) result {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{ops: len(lat), errors: errs, rate: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r
}

// measure runs op n times on `workers` goroutines as fast as they go.
func measure(n, workers int, op func(i int) error) result {
	var next, errs atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if err := op(i); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first error:", err)
					}
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	return summarize(lat, int(errs.Load()), time.Since(start))
}

// pace starts op at a fixed rate (open loop: latency includes any queueing) for d.
func pace(rate float64, d time.Duration, maxInFlight int, op func(i int) error) result {
	interval := time.Duration(float64(time.Second) / rate)
	total := int(d / interval)
	lat := make([]time.Duration, total)
	var errs atomic.Int64
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := op(1_000_000 + i); err != nil {
				errs.Add(1)
			}
			lat[i] = time.Since(due)
		}(i)
	}
	wg.Wait()
	return summarize(lat, int(errs.Load()), time.Since(start))
}

func waitReady(ctx context.Context, c client.Client, ep *cardsv1alpha1.WebhookEndpoint) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		got := &cardsv1alpha1.WebhookEndpoint{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ep), got); err == nil {
			for _, cond := range got.Status.Conditions {
				if cond.Type == cardsv1alpha1.ConditionReady && cond.Status == "True" {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("endpoint %s/%s not Ready", ep.Namespace, ep.Name)
}
