package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
)

// TestTwoReceiversNoLostUpdate: two receiver replicas, each with its own manager, cache and clients, take
// shuffled status changes for the same five hot cards at once. Every card ends in the state of its newest
// callback: optimistic concurrency, not in-process state, keeps replicas from overwriting each other.
func TestTwoReceiversNoLostUpdate(t *testing.T) {
	ctx := context.Background()
	ep := newUPayEndpoint(t, "replicas")
	var urls []string
	for r := 0; r < 2; r++ {
		// The first replica's reconciler (the leader's) makes the endpoint Ready.
		mgr, url := startReceiver(t, ctx, env.Config, "replicas", r == 0, nil)
		urls = append(urls, url)
		waitFor(t, 30*time.Second, "endpoint Ready in replica's cache", ready(mgr.GetClient(), ep))
	}

	rng := rand.New(rand.NewSource(3))
	t0 := time.Now().Add(-time.Hour)
	type cb struct{ body string }
	var list []cb
	want := map[string]cardsv1alpha1.CardPhase{}
	latest := map[string]time.Time{}
	for i := 0; i < 400; i++ {
		card := fmt.Sprintf("H%d", i%5)
		st := []string{"1", "3"}[rng.Intn(2)]
		at := t0.Add(time.Duration(i) * time.Second)
		list = append(list, cb{fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":"r-%d","timestamp":%d,"detail":{"cardId":%q,"cardNumber":"5326********1234","status":%q,"orderNo":"r-%d","customerNo":"C"}}`,
			i, at.UnixMilli(), card, st, i)})
		if at.After(latest[card]) {
			latest[card], want[card] = at, map[string]cardsv1alpha1.CardPhase{"1": cardsv1alpha1.CardActive, "3": cardsv1alpha1.CardFrozen}[st]
		}
	}
	rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })

	resolved := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
	var acked, failed atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				h, wire, _ := upay.Encode(resolved, []byte(list[i].body), time.Now())
				req, _ := http.NewRequest(http.MethodPost, urls[i%2]+"/webhooks/"+ep.Namespace+"/upay", bytes.NewReader(wire))
				req.Header = h
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					failed.Add(1)
					t.Logf("callback %d: %v", i, err)
					continue
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
				resp.Body.Close()
				if resp.StatusCode == 200 {
					acked.Add(1)
				} else {
					failed.Add(1)
					t.Logf("callback %d: HTTP %d %s", i, resp.StatusCode, body)
				}
			}
		}()
	}
	for i := range list {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	cards := &cardsv1alpha1.CardList{}
	if err := env.Client.List(ctx, cards, client.InNamespace(ep.Namespace)); err != nil {
		t.Fatal(err)
	}
	got := map[string]cardsv1alpha1.CardPhase{}
	for _, c := range cards.Items {
		got[c.Spec.ProviderCardID] = c.Status.Phase
	}
	t.Logf("400 callbacks for 5 cards through 2 replicas: acknowledged %d, failed %d; cards %d; final states %v (want %v)",
		acked.Load(), failed.Load(), len(cards.Items), got, want)
	if acked.Load() != 400 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Error("an update was lost or a replica overwrote a newer state")
	}
}
