package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// TestAHangingDestinationDoesNotBlockAnother: one destination accepts connections and never answers; the
// other receives every card anyway, while the hanging one holds only its own maxInFlight requests. (Before, one
// reconcile worker delivered inline to each destination in turn, so every card waited out the hanging one's
// timeout first: twenty cards took ten minutes.)
func TestAHangingDestinationDoesNotBlockAnother(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	d := newDestination(t)
	ep := projectionEndpoint(t, ns, d, nil)

	release := make(chan struct{})
	var mu sync.Mutex
	inFlight, peak, received := 0, 0, 0
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight, received = inFlight+1, received+1
		peak = max(peak, inFlight)
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs first: the handlers return, then the server closes

	// The hanging destination comes first in the list and has the longest timeout there is.
	before := ep.DeepCopy()
	ep.Spec.Destinations = append([]cardsv1alpha1.Destination{{Name: "hang", URL: hang.URL + "/hooks", MaxInFlight: 2,
		Timeout: &metav1.Duration{Duration: 10 * 60 * 1e9}, SecretRef: cardsv1alpha1.LocalObjectReference{Name: "ledger"}}},
		ep.Spec.Destinations...)
	if err := k8s.Patch(ctx, ep, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	startManager(t, ns)
	const cards = 20
	for i := range cards {
		observe(t, ns, fmt.Sprintf("card-%d", i), cardsv1alpha1.CardActive)
	}
	waitFor(t, "every card delivered to the healthy destination", func() bool {
		for i := range cards {
			if len(d.deliveries(fmt.Sprintf("card-%d", i))) != 1 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	gotPeak, gotReceived := peak, received
	mu.Unlock()
	if gotPeak > 2 || gotReceived > 2 {
		t.Errorf("the hanging destination got %d requests, %d at once; want at most its maxInFlight (2)", gotReceived, gotPeak)
	}
	waitFor(t, "the hanging destination's backlog in the endpoint status", func() bool {
		s := destinationStatus(t, ns, "hang")
		return s != nil && s.Pending >= cards-2 && s.OldestPendingTime != nil
	})
	if s := destinationStatus(t, ns, "ledger"); s == nil || s.State != cardsv1alpha1.DestinationHealthy {
		t.Errorf("ledger status = %+v, want Healthy", s)
	}
}
