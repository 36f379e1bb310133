package chaos

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/projection"
)

// destinationOutage is how long the destination is down: CHAOS_DESTINATION_OUTAGE (make test-chaos: 10m), 15s
// in make test.
func destinationOutage() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CHAOS_DESTINATION_OUTAGE")); err == nil {
		return d
	}
	return 15 * time.Second
}

// TestDestinationOutageSkipsNothing: a destination answers 503 for the outage while 30 cards change state;
// once it is back, every card's latest state is delivered (verified with the destination's own Standard
// Webhooks check) and the cursors say so. Retries use the endpoint's policy — the default (12 attempts, 1 s
// to 5 min) when the outage is long.
func TestDestinationOutageSkipsNothing(t *testing.T) {
	ctx := context.Background()
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	var down atomic.Bool
	var mu sync.Mutex
	delivered := map[string]int64{} // card name -> highest sequence received
	var refused, rejected atomic.Int64
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if down.Load() {
			refused.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), body)
		if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			rejected.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var env struct {
			Data struct {
				Metadata struct{ Name string }
				Status   struct{ StateSequence int64 }
			}
		}
		_ = json.Unmarshal(body, &env)
		mu.Lock()
		if env.Data.Status.StateSequence > delivered[env.Data.Metadata.Name] {
			delivered[env.Data.Metadata.Name] = env.Data.Status.StateSequence
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer dest.Close()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dest-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "ledger", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		StringData: map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: secret}}); err != nil {
		t.Fatal(err)
	}
	var retry *cardsv1alpha1.RetryPolicy
	if destinationOutage() < time.Minute {
		retry = &cardsv1alpha1.RetryPolicy{MaxAttempts: 100, MinBackoff: &metav1.Duration{Duration: time.Second},
			MaxBackoff: &metav1.Duration{Duration: 5 * time.Second}}
	}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "orders"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay,
			Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"127.0.0.0/8"}},
			Destinations: []cardsv1alpha1.Destination{{Name: "ledger", URL: dest.URL, SecretRef: cardsv1alpha1.LocalObjectReference{Name: "ledger"}, Retry: retry}}}}
	if err := env.Client.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(&projection.Dispatcher{Cache: mgr.GetCache(), Client: mgr.GetClient(), Secrets: mgr.GetClient(),
		Network: &projection.Network{AllowLoopback: true}, Recorder: mgr.GetEventRecorder("chaos"), Now: time.Now}); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = mgr.Start(mctx) }()

	down.Store(true)
	start := time.Now()
	want := map[string]int64{}
	for c := 0; c < 30; c++ {
		name := fmt.Sprintf("orders-d%02d", c)
		card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name},
			Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: ns.Name, Name: "orders"},
				Provider: cardsv1alpha1.ProviderAlchemyPay, ProviderCardID: fmt.Sprint("D", c)}}
		if err := env.Client.Create(ctx, card); err != nil {
			t.Fatal(err)
		}
		for s, phase := range []cardsv1alpha1.CardPhase{cardsv1alpha1.CardActive, cardsv1alpha1.CardFrozen, cardsv1alpha1.CardActive}[:1+c%3] {
			for { // a state change as the receiver writes it
				_ = env.Client.Get(ctx, client.ObjectKeyFromObject(card), card)
				before := card.DeepCopy()
				card.Status.Phase, card.Status.StateSequence = phase, int64(s+1)
				if env.Client.Status().Patch(ctx, card, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})) == nil {
					break
				}
			}
		}
		want[name] = int64(1 + c%3)
	}
	time.Sleep(destinationOutage() - time.Since(start))
	down.Store(false)
	t.Logf("destination down for %s (%d deliveries refused)", destinationOutage(), refused.Load())

	recovered := time.Now()
	ok := waitFor(t, 10*time.Minute, "every card's latest state delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for name, seq := range want {
			if delivered[name] != seq {
				return false
			}
		}
		return true
	})
	mu.Lock()
	missing := 0
	for name, seq := range want {
		if delivered[name] != seq {
			missing++
		}
	}
	mu.Unlock()
	t.Logf("after recovery: %d of %d cards' latest states delivered in %s; %d deliveries refused while down; %d signatures rejected",
		len(want)-missing, len(want), time.Since(recovered).Round(time.Second), refused.Load(), rejected.Load())
	if !ok || rejected.Load() != 0 {
		t.Error("a state was skipped or a delivery was not signed")
	}
}
