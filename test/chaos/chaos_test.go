package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/testenv"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

var env *testenv.Env

// logs captures every log line of the package's operators, for the leak scan.
var logs testenv.LogBuffer

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(&logs), zap.UseDevMode(true)))
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// outage is how long the API server is unreachable: CHAOS_OUTAGE (make test-chaos: 60s), 10s in make test.
func outage() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CHAOS_OUTAGE")); err == nil {
		return d
	}
	return 10 * time.Second
}

const upayKey = "chaos-upay-signing-key-0123456789"

// TestAPIServerOutageLosesNothing: the operator loses its API server (a network cut) for the outage while
// UPay-style providers keep calling (each callback tried at most 5 times, 3 s apart, as UPay documents).
// Every callback must be acknowledged within its tries and, once the API server is back, every card must end
// in the state the callbacks say last — computed here from what was sent, not by the code under test.
func TestAPIServerOutageLosesNothing(t *testing.T) {
	ctx := context.Background()
	proxy, err := NewProxy(hostPort(env.Config.Host))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfg := rest.CopyConfig(env.Config)
	cfg.Host = "https://" + proxy.Addr()
	cfg.Timeout = 5 * time.Second

	ep := newUPayEndpoint(t, "chaos")

	sp, err := spool.Open(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	mgr, url := startReceiver(t, ctx, cfg, "chaos", true, func(mgr ctrl.Manager, receiver *webhookserver.Server) {
		receiver.Spool, receiver.StoreTimeout = sp, 2*time.Second
		if err := mgr.Add(&webhookserver.SpoolReplayer{Spool: sp, Reader: mgr.GetClient(), Ingester: receiver.Ingester, Interval: 500 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	})
	waitFor(t, 30*time.Second, "endpoint Ready", ready(mgr.GetClient(), ep))

	// The callbacks: 20 cards, each Active then Frozen then (for even cards) Active again, sent shuffled.
	type callback struct {
		card, status string
		at           time.Time
		id           string
	}
	t0 := time.Now().Add(-time.Hour)
	var callbacks []callback
	want := map[string]cardsv1alpha1.CardPhase{}
	for c := 0; c < 20; c++ {
		card := fmt.Sprintf("K%02d", c)
		states := []string{"1", "3"}
		if c%2 == 0 {
			states = append(states, "1")
		}
		for i, st := range states {
			callbacks = append(callbacks, callback{card, st, t0.Add(time.Duration(c*10+i) * time.Second), fmt.Sprintf("%s-%d", card, i)})
		}
		want[card] = map[string]cardsv1alpha1.CardPhase{"1": cardsv1alpha1.CardActive, "3": cardsv1alpha1.CardFrozen}[states[len(states)-1]]
	}
	rand.New(rand.NewSource(7)).Shuffle(len(callbacks), func(i, j int) { callbacks[i], callbacks[j] = callbacks[j], callbacks[i] })

	// The provider: each callback up to 5 tries, 3 s apart, paced over the outage window.
	resolved := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
	var acked, lost, tries atomic.Int64
	var wg sync.WaitGroup
	spacing := (outage() + 4*time.Second) / time.Duration(len(callbacks))
	go func() {
		time.Sleep(2 * time.Second)
		proxy.Cut()
		t.Logf("API server unreachable for %s", outage())
		time.Sleep(outage())
		proxy.Restore()
	}()
	for _, cb := range callbacks {
		wg.Add(1)
		go func(cb callback) {
			defer wg.Done()
			body := fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":%q,"timestamp":%d,"detail":{"cardId":%q,"cardNumber":"5326********1234","status":%q,"orderNo":%q,"customerNo":"C"}}`,
				cb.id, cb.at.UnixMilli(), cb.card, cb.status, cb.id)
			for try := 0; try < 5; try++ {
				tries.Add(1)
				h, wire, _ := upay.Encode(resolved, []byte(body), time.Now())
				req, _ := http.NewRequest(http.MethodPost, url+"/webhooks/"+ep.Namespace+"/upay", bytes.NewReader(wire))
				req.Header = h
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					answer, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 && string(answer) == "SUCCESS" {
						acked.Add(1)
						return
					}
				}
				time.Sleep(3 * time.Second)
			}
			lost.Add(1)
		}(cb)
		time.Sleep(spacing)
	}
	wg.Wait()

	// After the outage: every card in its last state, and no extra objects.
	var got map[string]cardsv1alpha1.CardPhase
	ok := waitFor(t, 60*time.Second, "every card in its last state", func() bool {
		got, _ = cardPhases(ctx, ep.Namespace)
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	depth, _ := sp.Depth()
	spooled := appended()
	if spooled == 0 {
		t.Error("no callback went through the spool: the outage did not happen as planned")
	}
	t.Logf("%d events spooled during the outage and replayed after it", int(spooled))
	t.Logf("callbacks sent %d (tries %d), acknowledged %d, lost %d; cards expected %d, stored %d, in the right state %v; spool depth now %d",
		len(callbacks), tries.Load(), acked.Load(), lost.Load(), len(want), len(got), ok, depth)
	if lost.Load() != 0 || !ok {
		t.Errorf("lost %d callbacks; final states %v, want %v", lost.Load(), got, want)
	}
}

// appended reads cardplane_spool_appended_total from the metrics registry.
func appended() float64 {
	families, _ := metrics.Registry.Gather()
	for _, f := range families {
		if f.GetName() == "cardplane_spool_appended_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func hostPort(host string) string {
	u, err := url.Parse(host)
	if err != nil {
		return host
	}
	return u.Host
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}
