package projection

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/internal/sink"
)

// A destination's transport follows its endpoint and Secrets: a change that cannot be built keeps the last
// good transport, and once the Secret is restored the transport is built again under the endpoint's current
// spec. Before, the kept transport was recorded as built from the new generation, so restoring the Secret to
// its old content kept the old address policy for good: an allow-list narrowed meanwhile never took effect.
func TestADestinationTransportFollowsItsEndpoint(t *testing.T) {
	addr := privateAddress(t)
	srv, got := serveOn(t, addr)
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(destinationSecret.DeepCopy()).Build()
	d := &Dispatcher{ctx: context.Background(), Secrets: reader, Network: &Network{},
		SinkPolicy: SinkPolicy{RecheckInterval: time.Nanosecond}, Now: time.Now}
	q := newDestinationQueue(d, types.NamespacedName{Namespace: "ns", Name: "ep"}, "d", [kinds]uint64{})
	defer stopDestination(q)
	tgt := q.t.(*destTarget)
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ep", UID: "u1", Generation: 1},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay,
			DestinationPolicy: &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: []string{netip.PrefixFrom(addr, addr.BitLen()).String()}},
			Destinations:      []cardsv1alpha1.Destination{{Name: "d", URL: srv.URL, SecretRef: cardsv1alpha1.LocalObjectReference{Name: "d"}}}}}
	send := func() error {
		out, err := tgt.transport(context.Background(), ep, &ep.Spec.Destinations[0])
		if err != nil {
			return err
		}
		return out.Send(context.Background(), sink.Event{ID: "x-1", Type: "card.updated", Source: "/x", Data: []byte(`{}`)})
	}
	setKey := func(key string) {
		s := destinationSecret.DeepCopy()
		if err := reader.Get(context.Background(), client.ObjectKeyFromObject(s), s); err != nil {
			t.Fatal(err)
		}
		s.Data = map[string][]byte{key: destinationSecret.Data[cardsv1alpha1.SecretKeyDestinationSecret]}
		if err := reader.Update(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}

	if err := send(); err != nil || got.Load() != 1 {
		t.Fatalf("generation 1: %v, %d delivered", err, got.Load())
	}
	// Generation 2 takes the address off the allow-list while the Secret loses its key: the change cannot be
	// built, so the last good transport (generation 1's policy) keeps delivering.
	setKey("renamed")
	ep.Generation, ep.Spec.DestinationPolicy = 2, nil
	if err := send(); err != nil || got.Load() != 2 {
		t.Fatalf("a change that cannot be built: %v, %d delivered; want the last good transport", err, got.Load())
	}
	// The Secret restored: generation 2 is built, and its policy refuses the address.
	setKey(cardsv1alpha1.SecretKeyDestinationSecret)
	if err := send(); !errors.Is(err, ErrForbiddenAddress) || got.Load() != 2 {
		t.Fatalf("the Secret restored: %v, %d delivered; want generation 2's policy to refuse the address", err, got.Load())
	}
	// Removed, it builds nothing more.
	stopDestination(q)
	time.Sleep(10 * time.Millisecond)
	if err := send(); err == nil || notConfigured(err) {
		t.Fatalf("a removed destination: %v, want refused", err)
	}
}

// A destination that was never built answers its configuration error until the next check, without reading
// Secrets for every queued state, and its queue neither opens the circuit nor spends the retry budget.
func TestAnUnbuiltDestinationWaitsWithoutSpending(t *testing.T) {
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).Build() // no Secret yet
	d := &Dispatcher{ctx: context.Background(), Secrets: reader, Network: &Network{AllowLoopback: true},
		SinkPolicy: SinkPolicy{RecheckInterval: time.Hour}, Now: time.Now}
	q := newDestinationQueue(d, types.NamespacedName{Namespace: "ns", Name: "ep"}, "d", [kinds]uint64{})
	defer stopDestination(q)
	tgt := q.t.(*destTarget)
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ep", UID: "u1", Generation: 1},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay,
			Destinations: []cardsv1alpha1.Destination{{Name: "d", URL: "http://127.0.0.1:1/", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "d"}}}}}
	_, first := tgt.transport(context.Background(), ep, &ep.Spec.Destinations[0])
	if !notConfigured(first) {
		t.Fatalf("no Secret: %v, want a configuration error", first)
	}
	if err := reader.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d"}}); err != nil {
		t.Fatal(err)
	}
	// Within the recheck interval the cached error answers (the new, still unlabelled, Secret is not read).
	if _, err := tgt.transport(context.Background(), ep, &ep.Spec.Destinations[0]); !errors.Is(err, first) {
		t.Errorf("within the recheck interval: %v, want the cached %v", err, first)
	}
	at := attemptState{}
	q.failed(objectKey{}, at, first, false, nil, 0, retryPolicy{maxAttempts: 1})
	if n := q.attempts[objectKey{}].n; n != 0 || q.breaker.open() {
		t.Errorf("after a configuration error: %d attempts counted, circuit open %v; want none", n, q.breaker.open())
	}
}
