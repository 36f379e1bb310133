// Command authz measures the AuthorizationReview API over loopback HTTP at rising concurrency, side by side in
// the same run with Open Policy Agent serving an equivalent policy, and with spend-ledger writes.
//
//	make bin/opa   # OPA built from its Go module (hack/tools)
//	KUBEBUILDER_ASSETS=$(hack/control-plane.sh) go run ./bench/authz -opa bin/opa
//
// It prints a Markdown report; docs/benchmarks.md keeps the figures of a run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	"github.com/cardplane/cardplane/internal/authz"
	"github.com/cardplane/cardplane/internal/rules"
	"github.com/cardplane/cardplane/internal/testenv"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

const ruleSet = `
rules:
- name: block-gambling
  reason: BLOCKED_MCC
  mcc: {block: ["7995", "7800-7802"]}
- name: allowed-countries
  reason: BLOCKED_COUNTRY
  merchantCountry: {allow: [US, DE, FR, NL]}
- name: max-per-authorization
  reason: AMOUNT_LIMIT
  amount: {max: "500.00", currency: USD}
- name: no-atm
  reason: ATM_NOT_ALLOWED
  condition: "transaction.channel == 'ATM'"
`

const spendRule = `
- name: daily-spend
  reason: SPEND_LIMIT_DAILY
  spend: {window: Daily, maxAmount: "100000000.00", currency: USD}
`

// The same policy in Rego (OPA works in floating point; cardplane in exact decimals).
const rego = `package cards

import rego.v1

blocked_mcc := {"7995", "7800", "7801", "7802"}

allowed_countries := {"US", "DE", "FR", "NL"}

deny contains "BLOCKED_MCC" if input.merchant.mcc in blocked_mcc

deny contains "BLOCKED_COUNTRY" if not input.merchant.country in allowed_countries

deny contains "AMOUNT_LIMIT" if input.currency != "USD"

deny contains "AMOUNT_LIMIT" if to_number(input.amount) > 500

deny contains "ATM_NOT_ALLOWED" if input.channel == "ATM"

decision := {"allowed": count(deny) == 0, "reasons": deny}
`

func main() {
	opa := flag.String("opa", "bin/opa", "OPA binary (built by `make bin/opa`); empty skips the comparison")
	d := flag.Duration("duration", 5*time.Second, "length of each measurement")
	flag.Parse()
	if err := run(*opa, *d); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

type result struct {
	name          string
	concurrency   int
	ops, errors   int
	rate          float64
	p50, p99, max time.Duration
}

func run(opaBin string, d time.Duration) error {
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
	if err := webhookserver.WarmCache(ctx, mgr.GetCache()); err != nil {
		return err
	}
	store := &authz.Store{}
	token := "bench-review-token"
	receiver := &webhookserver.Server{Options: webhookserver.Options{ReviewToken: token},
		Reader: mgr.GetClient(), Ingester: &ingest.Ingester{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()},
		Authorizer: &authz.Authorizer{Store: store, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Now: time.Now}}
	go func() { _ = mgr.Start(ctx) }()
	mgr.GetCache().WaitForCacheSync(ctx)
	srv := httptest.NewServer(receiver.Handler())
	defer srv.Close()

	c := env.Client
	for _, ns := range []string{"plain", "ledger"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
		ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
			Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay,
				Verification: &cardsv1alpha1.Verification{AllowUnauthenticated: true}}}
		objs := []client.Object{ep}
		for i := 1; i <= 16; i++ {
			objs = append(objs, &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("orders-c%d", i)},
				Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: ns, Name: "orders"},
					Provider: cardsv1alpha1.ProviderAlchemyPay, ProviderCardID: fmt.Sprintf("C%d", i)}})
		}
		for _, o := range objs {
			if err := c.Create(ctx, o); err != nil {
				return err
			}
		}
		text := ruleSet
		if ns == "ledger" {
			text += spendRule
		}
		rs, err := rules.Parse([]byte(text))
		if err != nil {
			return err
		}
		rs.Name, rs.Version = ns+"/card-rules", ns+"/card-rules@1"
		store.Set(ns, "card-rules", rs)
	}
	time.Sleep(time.Second) // the cache sees the cards

	review := func(ns string, i, card int) []byte {
		b, _ := json.Marshal(map[string]any{"apiVersion": "cards.cardplane.io/v1alpha1", "kind": "AuthorizationReview",
			"request": map[string]any{"uid": fmt.Sprint("u-", i), "card": map[string]string{"namespace": ns, "name": fmt.Sprintf("orders-c%d", card)},
				"authorizationID": fmt.Sprint("a-", i), "amount": "12.50", "currency": "USD", "channel": "ECOMMERCE",
				"merchant": map[string]string{"name": "Coffee Bar", "mcc": "5814", "country": "DE"}}})
		return b
	}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	post := func(url, auth string, body []byte, want string) error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(out, []byte(want)) {
			return fmt.Errorf("answered %d %s", resp.StatusCode, out)
		}
		return nil
	}

	var opaURL string
	if opaBin != "" {
		stop, url, err := startOPA(opaBin)
		if err != nil {
			return err
		}
		defer stop()
		opaURL = url
	}

	var results []result
	for _, conc := range []int{1, 4, 16, 64} {
		results = append(results, measure("cardplane", conc, d, func(i int) error {
			return post(srv.URL+"/v1alpha1/authorizationreviews", token, review("plain", i, 1), `"allowed":true`)
		}))
		if opaURL != "" {
			results = append(results, measure("OPA", conc, d, func(i int) error {
				body := []byte(`{"input":{"amount":"12.50","currency":"USD","channel":"ECOMMERCE","merchant":{"name":"Coffee Bar","mcc":"5814","country":"DE"}}}`)
				return post(opaURL+"/v1/data/cards/decision", "", body, `"allowed":true`)
			}))
		}
	}
	for _, conc := range []int{1, 16} {
		results = append(results, measure("cardplane + spend ledger write, one card", conc, d, func(i int) error {
			return post(srv.URL+"/v1alpha1/authorizationreviews", token, review("ledger", conc*1_000_000+i, 1), `"allowed":true`)
		}))
	}
	results = append(results, measure("cardplane + spend ledger write, 16 cards", 16, d, func(i int) error {
		return post(srv.URL+"/v1alpha1/authorizationreviews", token, review("ledger", 99_000_000+i, 1+i%16), `"allowed":true`)
	}))

	fmt.Printf("## Authorization decisions over loopback HTTP (%s, GOMAXPROCS=%d, %s per cell)\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOMAXPROCS(0), d)
	fmt.Println("| server | concurrency | decisions | errors | decisions/s | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %s | %d | %d | %d | %.0f | %s | %s | %s |\n", r.name, r.concurrency, r.ops, r.errors, r.rate, us(r.p50), us(r.p99), us(r.max))
	}
	return nil
}

func us(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

// measure runs op on `conc` goroutines for d (closed loop).
func measure(name string, conc int, d time.Duration, op func(i int) error) result {
	var next, errs atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				i := int(next.Add(1))
				t := time.Now()
				if err := op(i); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, name, "first error:", err)
					}
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{name: name, concurrency: conc, ops: len(lat), errors: int(errs.Load()), rate: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r
}

func startOPA(bin string) (func(), string, error) {
	dir, err := os.MkdirTemp("", "opa-bench-")
	if err != nil {
		return nil, "", err
	}
	policy := filepath.Join(dir, "cards.rego")
	if err := os.WriteFile(policy, []byte(rego), 0o600); err != nil {
		return nil, "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "run", "--server", "--addr", addr, "--log-level", "error", policy)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting OPA: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
	url := "http://" + addr
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return stop, url, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return nil, "", fmt.Errorf("OPA did not become healthy on %s", addr)
}
