package webhookserver_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
)

// TestARepeatedDeliveryIDWithAnotherBodyIsApplied: UPay's request ID is a header its signature does not cover; a
// verified request that reuses a seen ID with another body is a new delivery, applied and answered on its own.
// (Before, it got the cached answer and was not applied.)
func TestARepeatedDeliveryIDWithAnotherBodyIsApplied(t *testing.T) {
	ep := upayEndpoint(t, nil)
	sameID := func(h http.Header) { h.Set(upay.HeaderRequestID, "REQ-1") }
	t0 := time.Now().Add(-time.Minute)
	if r := sendUPay(t, ep, statusEvent("UC80", "1", t0, "o-80a"), sameID); r.status != 200 {
		t.Fatalf("first delivery: %d %s", r.status, r.body)
	}
	if r := sendUPay(t, ep, statusEvent("UC80", "3", t0.Add(time.Second), "o-80b"), sameID); r.status != 200 {
		t.Fatalf("second delivery with the same request ID: %d %s", r.status, r.body)
	}
	card := &cardsv1alpha1.Card{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-uc80"}, card); err != nil {
		t.Fatal(err)
	}
	if card.Status.Phase != cardsv1alpha1.CardFrozen {
		t.Errorf("card phase %q after a freeze delivered under a reused request ID, want Frozen", card.Status.Phase)
	}
	// The same delivery again (same ID, same body) is still answered from the cache, and changes nothing.
	if r := sendUPay(t, ep, statusEvent("UC80", "3", t0.Add(time.Second), "o-80b"), sameID); r.status != 200 || r.body != "SUCCESS" {
		t.Errorf("a repeated delivery: %d %s", r.status, r.body)
	}
}

// fromAddress is an HTTP client whose connections come from local address ip (another loopback address: a
// second source on one machine).
func fromAddress(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}
}

// TestAnUnsignedFloodLocksNoProviderOut: 2 000 unsigned requests from one source are refused (401, then 429 for
// that source, unread) without spending the endpoint's rate limit: every signed callback from the provider's
// address is still answered 200. (Before, the flood spent the limit and the provider's callbacks got 429.)
func TestAnUnsignedFloodLocksNoProviderOut(t *testing.T) {
	ep := upayEndpoint(t, func(ep *cardsv1alpha1.WebhookEndpoint) {
		ep.Spec.RateLimit = &cardsv1alpha1.RateLimit{RequestsPerSecond: 20, Burst: 20}
	})
	attacker := fromAddress("127.0.0.2")
	url := srv.URL + "/webhooks/" + ep.Namespace + "/" + ep.Name
	counts := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","n":%d}`, w*1000+i)))
				req.Header.Set(upay.HeaderSign, "forged")
				req.Header.Set(upay.HeaderTimestamp, fmt.Sprint(time.Now().UnixMilli()))
				resp, err := attacker.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
				mu.Lock()
				counts[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if counts[http.StatusOK] != 0 || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != 2000 || counts[http.StatusTooManyRequests] == 0 {
		t.Errorf("the flood was answered %v, want only 401 then 429", counts)
	}
	cfg := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
	for i := range 15 {
		h, b, err := upay.Encode(cfg, []byte(statusEvent(fmt.Sprint("UC9", i), "1", time.Now(), fmt.Sprint("o-f", i))), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if r := post(t, "/webhooks/"+ep.Namespace+"/"+ep.Name, h, b); r.status != 200 {
			t.Errorf("signed callback %d after the flood: %d %s", i, r.status, r.body)
		}
	}
	t.Logf("flood of 2000 unsigned requests: %v; 15 signed callbacks after it: all 200", counts)
}
