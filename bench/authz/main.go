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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/bench/benchenv"
	"github.com/cardplane/cardplane/bench/internal/measure"
	"github.com/cardplane/cardplane/internal/authz"
	"github.com/cardplane/cardplane/internal/rules"
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

const reviewToken = "bench-review-token"

func main() {
	opa := flag.String("opa", "bin/opa", "OPA binary (built by `make bin/opa`); empty skips the comparison")
	d := flag.Duration("duration", 5*time.Second, "length of each measurement")
	flag.Parse()
	if err := run(*opa, *d); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(opaBin string, d time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, err := benchenv.Start(ctx, nil)
	if err != nil {
		return err
	}
	defer env.Stop()
	store := &authz.Store{}
	srv := httptest.NewServer(reviewer(env.Manager, store).Handler())
	defer srv.Close()
	for _, ns := range []string{"plain", "ledger"} {
		if err := seed(ctx, env, store, ns); err != nil {
			return err
		}
	}
	time.Sleep(time.Second) // the cache sees the cards

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
	for _, c := range cells(srv.URL, opaURL) {
		s := measure.Closed{Workers: c.concurrency, Duration: d}.Run(ctx, c.op)
		if s.FirstErr != nil {
			fmt.Fprintf(os.Stderr, "%s at %d: first error of %d: %v\n", c.server, c.concurrency, s.Errors, s.FirstErr)
		}
		results = append(results, result{cell: c, Summary: s})
	}
	printReport(d, results)
	return nil
}

// reviewer is the AuthorizationReview API serving decisions from store's rule sets; the bench authenticates
// with the shared token (a TokenReview per caller is cached, so it would not change the figures).
func reviewer(mgr ctrl.Manager, store *authz.Store) *webhookserver.ReviewServer {
	store.MarkSynced()
	receiver := &webhookserver.Server{Reader: mgr.GetClient(), Ingester: &ingest.Ingester{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()},
		Authorizer: &authz.Authorizer{Store: store, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Now: time.Now}}
	return &webhookserver.ReviewServer{Receiver: receiver, SharedToken: reviewToken, RatePerCaller: 1e9, BurstPerCaller: 1e9}
}

// seed creates namespace ns with an endpoint and 16 cards, and its rule set in store: the "ledger" namespace's
// adds a daily spend rule, so its approvals are written to the Card.
func seed(ctx context.Context, env *benchenv.Env, store *authz.Store, ns string) error {
	if err := env.CreateNamespaces(ctx, ns); err != nil {
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
		if err := env.Client.Create(ctx, o); err != nil {
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
	return nil
}

// cell is one measured row of the report: a server at a concurrency.
type cell struct {
	server      string
	concurrency int
	op          measure.Op
}

type result struct {
	cell
	measure.Summary
}

// cells lists the measurements in report order: cardplane next to OPA (when opaURL is set) at each
// concurrency, then cardplane with spend-ledger writes. Ledger cells number their authorizations apart so no
// two decisions of the run share an ID.
func cells(receiverURL, opaURL string) []cell {
	reviews := receiverURL + "/v1alpha1/authorizationreviews"
	var cs []cell
	for _, conc := range []int{1, 4, 16, 64} {
		cs = append(cs, cell{"cardplane", conc, func(i int) error {
			return post(reviews, reviewToken, review("plain", i, 1))
		}})
		if opaURL != "" {
			cs = append(cs, cell{"OPA", conc, func(int) error { return post(opaURL+"/v1/data/cards/decision", "", opaInput) }})
		}
	}
	for _, conc := range []int{1, 16} {
		cs = append(cs, cell{"cardplane + spend ledger write, one card", conc, func(i int) error {
			return post(reviews, reviewToken, review("ledger", conc*1_000_000+i, 1))
		}})
	}
	return append(cs, cell{"cardplane + spend ledger write, 16 cards", 16, func(i int) error {
		return post(reviews, reviewToken, review("ledger", 99_000_000+i, 1+i%16))
	}})
}

// opaInput is the OPA request equivalent to review's.
var opaInput = []byte(`{"input":{"amount":"12.50","currency":"USD","channel":"ECOMMERCE","merchant":{"name":"Coffee Bar","mcc":"5814","country":"DE"}}}`)

// review is AuthorizationReview i of $12.50 at a German coffee bar, on card orders-c<card> of ns.
func review(ns string, i, card int) []byte {
	b, _ := json.Marshal(map[string]any{"apiVersion": "cards.cardplane.io/v1alpha1", "kind": "AuthorizationReview",
		"request": map[string]any{"uid": fmt.Sprint("u-", i), "card": map[string]string{"namespace": ns, "name": fmt.Sprintf("orders-c%d", card)},
			"authorizationID": fmt.Sprint("a-", i), "amount": "12.50", "currency": "USD", "channel": "ECOMMERCE",
			"merchant": map[string]string{"name": "Coffee Bar", "mcc": "5814", "country": "DE"}}})
	return b
}

// httpc keeps enough idle connections for the highest concurrency, so no cell measures connection setup.
var httpc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// post sends a decision request and wants an approval: both servers are given a request their policy allows.
func post(url, bearer string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // a read: nothing to lose
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"allowed":true`)) {
		return fmt.Errorf("answered %d %s", resp.StatusCode, out)
	}
	return nil
}

func printReport(d time.Duration, results []result) {
	fmt.Printf("## Authorization decisions over loopback HTTP (%s, GOMAXPROCS=%d, %s per cell)\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOMAXPROCS(0), d)
	t := measure.NewTable("server", "concurrency", "decisions", "errors", "decisions/s", "p50", "p99", "max")
	for _, r := range results {
		t.AddSummary(r.Summary, r.server, r.concurrency)
	}
	fmt.Print(t)
	// The target is read against OPA in the same run: throughput at a p99 no worse.
	opa := map[int]measure.Summary{}
	for _, r := range results {
		if r.server == "OPA" {
			opa[r.concurrency] = r.Summary
		}
	}
	if len(opa) > 0 {
		fmt.Println()
	}
	for _, r := range results {
		if o, ok := opa[r.concurrency]; ok && r.server == "cardplane" {
			fmt.Printf("cardplane / OPA at concurrency %d: decisions/s **%s**, p99 %s\n", r.concurrency,
				measure.Ratio(r.Rate(), o.Rate()).Times(), measure.Ratio(float64(r.P99), float64(o.P99)).Times())
		}
	}
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
	_ = l.Close()
	cmd := exec.Command(bin, "run", "--server", "--addr", addr, "--log-level", "error", policy)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting OPA: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
	url := "http://" + addr
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(url + "/health"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return stop, url, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return nil, "", fmt.Errorf("OPA did not become healthy on %s", addr)
}
