package webhookserver_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

const upayKey = "test-upay-signing-key-0123456789"

func upayEndpoint(t *testing.T, mutate func(*cardsv1alpha1.WebhookEndpoint)) *cardsv1alpha1.WebhookEndpoint {
	ep := &cardsv1alpha1.WebhookEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: newNamespace(t), Name: "upay-main"},
		Spec:       cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay},
	}
	if mutate != nil {
		mutate(ep)
	}
	return createEndpoint(t, ep, map[string]string{cardsv1alpha1.SecretKeySigningKey: upayKey})
}

type reply struct {
	status int
	body   string
}

// sendUPay signs body as UPay would (the sender side of the adapter) and posts it.
func sendUPay(t *testing.T, ep *cardsv1alpha1.WebhookEndpoint, body string, tamper func(http.Header)) reply {
	t.Helper()
	cfg := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
	h, wire, err := upay.Encode(cfg, []byte(body), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		tamper(h)
	}
	return post(t, "/webhooks/"+ep.Namespace+"/"+ep.Name, h, wire)
}

func post(t *testing.T, path string, h http.Header, body []byte) reply {
	t.Helper()
	return postTo(t, srv.URL+path, h, body)
}

func postTo(t *testing.T, url string, h http.Header, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b)}
}

func statusEvent(cardID, status string, at time.Time, orderNo string) string {
	return fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"tr","orderNo":%q,"timestamp":%d,"detail":{"cardId":%q,"cardNumber":"5326123412341234","status":%q,"orderNo":%q,"customerNo":"CUST77","reason":"r-%s"}}`,
		orderNo, at.UnixMilli(), cardID, status, orderNo, status)
}

func getCard(t *testing.T, ns, name string) *cardsv1alpha1.Card {
	t.Helper()
	c := &cardsv1alpha1.Card{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
		t.Fatalf("card %s/%s: %v", ns, name, err)
	}
	return c
}

func TestUPayCardLifecycleIsIdempotentAndOrdered(t *testing.T) {
	ep := upayEndpoint(t, nil)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)

	r := sendUPay(t, ep, statusEvent("UC10001", "2", t0, "o-1"), nil)
	if r.status != 200 || r.body != "SUCCESS" {
		t.Fatalf("first callback answered %d %q, want 200 SUCCESS", r.status, r.body)
	}
	card := getCard(t, ep.Namespace, "upay-main-uc10001")
	if card.Spec.ProviderCardID != "UC10001" || card.Status.Phase != cardsv1alpha1.CardPendingActivation {
		t.Fatalf("card after first callback: spec %+v phase %q", card.Spec, card.Status.Phase)
	}
	if n := card.Status.Number; n == nil || n.BIN != "532612" || n.Last4 != "1234" {
		t.Errorf("masked number = %+v, want BIN 532612 last4 1234", n)
	}
	if card.Status.HolderID != "CUST77" || card.Labels[cardsv1alpha1.LabelHolder] != ingest.HolderLabel("CUST77") {
		t.Errorf("holder not recorded: %q labels %v", card.Status.HolderID, card.Labels)
	}
	rv := card.ResourceVersion

	// The same callback twice more (the provider retrying): same answer, nothing written.
	for i := 0; i < 2; i++ {
		if r := sendUPay(t, ep, statusEvent("UC10001", "2", t0, "o-1"), nil); r.status != 200 || r.body != "SUCCESS" {
			t.Fatalf("duplicate answered %d %q", r.status, r.body)
		}
	}
	if got := getCard(t, ep.Namespace, "upay-main-uc10001"); got.ResourceVersion != rv {
		t.Errorf("a duplicate callback wrote the card (resourceVersion %s -> %s)", rv, got.ResourceVersion)
	}

	// Newer event (frozen at t0+2s), then an older one (active at t0+1s) arriving late: frozen stays.
	sendUPay(t, ep, statusEvent("UC10001", "3", t0.Add(2*time.Second), "o-3"), nil)
	if r := sendUPay(t, ep, statusEvent("UC10001", "1", t0.Add(time.Second), "o-2"), nil); r.status != 200 {
		t.Fatalf("late event answered %d %q", r.status, r.body)
	}
	card = getCard(t, ep.Namespace, "upay-main-uc10001")
	if card.Status.Phase != cardsv1alpha1.CardFrozen || card.Status.PhaseReason != "r-3" {
		t.Errorf("older event overwrote newer state: phase %q reason %q", card.Status.Phase, card.Status.PhaseReason)
	}
	if card.Status.LastEvent == nil || card.Status.LastEvent.ID != "o-3" {
		t.Errorf("lastEvent = %+v, want o-3", card.Status.LastEvent)
	}
	if card.Status.StateSequence != 2 {
		t.Errorf("stateSequence = %d, want 2 (one per state change)", card.Status.StateSequence)
	}

	// Counters reach the endpoint's status in a batch.
	receiver.Counters.Flush(context.Background(), k8s, k8s)
	got := &cardsv1alpha1.WebhookEndpoint{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ep), got); err != nil {
		t.Fatal(err)
	}
	c := got.Status.Counters
	if c.Received != 5 || c.Applied != 2 || c.Duplicates != 3 || got.Status.LastEventTime == nil {
		t.Errorf("counters = %+v lastEventTime %v, want received 5, applied 2, duplicates 3", c, got.Status.LastEventTime)
	}
}

func TestUPayTransactionsAndAuthorization(t *testing.T) {
	ep := upayEndpoint(t, nil)
	putRules(t, ep.Namespace, "defaultDecision: approve\nrules: []\n")
	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	auth := fmt.Sprintf(`{"event":"CC_AUTHORIZATION","trace":"tr_9001","orderNo":"ON-A","timestamp":%d,"detail":{"cardId":"UC10001","cardNumber":"5326********1234","amount":"42.10","currency":"USD","merchantMcc":"5814","transactionId":"TX-77-1","authorizationId":"AU-77-1","transactionChannel":"ECOMMERCE"}}`, now.UnixMilli())
	if r := sendUPay(t, ep, auth, nil); r.status != 200 || r.body != "approve" {
		t.Fatalf("authorization answered %d %q, want 200 approve", r.status, r.body)
	}
	txn := &cardsv1alpha1.CardTransaction{}
	key := client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-tx-77-1"}
	// The record is written right after the answer.
	waitFor(t, "the decision recorded", func() bool {
		return k8s.Get(context.Background(), key, txn) == nil && txn.Status.Authorization != nil
	})
	if txn.Status.Phase != cardsv1alpha1.TransactionPending || txn.Status.Authorization == nil ||
		txn.Status.Authorization.Outcome != cardsv1alpha1.DecisionApproved || txn.Status.Amount.Value != "42.10" {
		t.Fatalf("authorization transaction = %+v", txn.Status)
	}
	if len(txn.OwnerReferences) != 1 || txn.OwnerReferences[0].Name != "upay-main-uc10001" {
		t.Errorf("transaction not owned by its card: %+v", txn.OwnerReferences)
	}

	consume := func(status string, at time.Time) string {
		return fmt.Sprintf(`{"event":"CC_CONSUME","trace":"tr_9001","orderNo":"ON-C-%s","timestamp":%d,"detail":{"cardId":"UC10001","cardNumber":"5326123412341234","orderNo":"x","customerNo":"CUST77","type":2,"status":%s,"amount":40.00,"direction":2,"merchantName":"Coffee Bar","currency":"USD","transactionAt":%d,"transactionId":"TX-77-1","originalAmount":"37.12","originalCurrency":"EUR","fee":"0.30","merchantMcc":"5814","merchantCountry":"US"}}`,
			status, at.UnixMilli(), status, now.UnixMilli())
	}
	sendUPay(t, ep, consume("1", now.Add(2*time.Second)), nil)
	sendUPay(t, ep, consume("3", now.Add(time.Second)), nil) // the processing push arrives after the success
	if err := k8s.Get(context.Background(), key, txn); err != nil {
		t.Fatal(err)
	}
	st := txn.Status
	if st.Phase != cardsv1alpha1.TransactionCompleted || st.Type != cardsv1alpha1.TransactionPurchase || st.Direction != cardsv1alpha1.Debit {
		t.Errorf("transaction after clearing = type %q phase %q direction %q", st.Type, st.Phase, st.Direction)
	}
	if st.Amount.Value != "37.12" || st.Amount.Currency != "EUR" || st.BillingAmount.Value != "40.00" || st.Fee.Value != "0.30" {
		t.Errorf("amounts = %+v billing %+v fee %+v", st.Amount, st.BillingAmount, st.Fee)
	}
	if st.Authorization == nil || st.AuthorizationID != "AU-77-1" {
		t.Errorf("the clearing lost the authorization record: %+v", st)
	}
	// A retry of the authorization request gets the same answer and does not re-decide.
	if r := sendUPay(t, ep, auth, nil); r.body != "approve" {
		t.Errorf("replayed authorization answered %q", r.body)
	}
}

func TestBadInputIsAnswered(t *testing.T) {
	ep := upayEndpoint(t, func(ep *cardsv1alpha1.WebhookEndpoint) {
		ep.Spec.RateLimit = &cardsv1alpha1.RateLimit{RequestsPerSecond: 1, Burst: 12}
	})
	good := statusEvent("UC2", "1", time.Now(), "o-b")
	cases := []struct {
		name   string
		r      func() reply
		status int
		reason string
	}{
		{"unknown endpoint", func() reply {
			return post(t, "/webhooks/"+ep.Namespace+"/nope", http.Header{}, []byte(good))
		}, 404, cardsv1alpha1.ReasonNotFound},
		{"wrong signature", func() reply {
			return sendUPay(t, ep, good, func(h http.Header) { h.Set(upay.HeaderSign, "AAAA") })
		}, 401, "InvalidSignature"},
		{"missing signature", func() reply {
			return sendUPay(t, ep, good, func(h http.Header) { h.Del(upay.HeaderSign) })
		}, 401, "InvalidSignature"},
		{"stale timestamp", func() reply {
			cfg := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
			h, b, _ := upay.Encode(cfg, []byte(good), time.Now().Add(-time.Hour))
			return post(t, "/webhooks/"+ep.Namespace+"/"+ep.Name, h, b)
		}, 401, "StaleTimestamp"},
		{"not JSON (an encrypted body)", func() reply {
			cfg := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
			h, _, _ := upay.Encode(cfg, []byte(good), time.Now())
			return post(t, "/webhooks/"+ep.Namespace+"/"+ep.Name, h, []byte("eyJhbGciOi.encrypted"))
		}, 400, "Malformed"},
		{"JSON nested 40 levels deep", func() reply {
			deep := `{"event":"CSC_STATUS_CHANGE","detail":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`
			cfg := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
			h, _, _ := upay.Encode(cfg, []byte(good), time.Now()) // the body is refused before the signature is checked
			return post(t, "/webhooks/"+ep.Namespace+"/"+ep.Name, h, []byte(deep))
		}, 400, "Malformed"},
		{"trailing data after the JSON", func() reply {
			cfg := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
			h, b, _ := upay.Encode(cfg, []byte(good), time.Now())
			return post(t, "/webhooks/"+ep.Namespace+"/"+ep.Name, h, append(b, []byte(`{"x":1}`)...))
		}, 400, "Malformed"},
		{"too large", func() reply {
			return sendUPay(t, ep, `{"event":"CC_CONSUME","pad":"`+strings.Repeat("x", webhookserver.DefaultMaxBodyBytes)+`"}`, nil)
		}, 413, cardsv1alpha1.ReasonTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.r()
			var p struct{ Reason, Message string }
			_ = json.Unmarshal([]byte(r.body), &p)
			if r.status != c.status || p.Reason != c.reason || p.Message == "" {
				t.Errorf("answered %d %s, want %d with reason %s and a message", r.status, r.body, c.status, c.reason)
			}
		})
	}

	t.Run("nothing written", func(t *testing.T) {
		cards := &cardsv1alpha1.CardList{}
		if err := k8s.List(context.Background(), cards, client.InNamespace(ep.Namespace)); err != nil {
			t.Fatal(err)
		}
		if len(cards.Items) != 0 {
			t.Errorf("refused callbacks wrote %d cards", len(cards.Items))
		}
	})

	t.Run("unknown event type is acknowledged", func(t *testing.T) {
		r := sendUPay(t, ep, fmt.Sprintf(`{"event":"XX_NEW_THING","orderNo":"o-u","timestamp":%d,"detail":{}}`, time.Now().UnixMilli()), nil)
		if r.status != 200 || r.body != "SUCCESS" {
			t.Errorf("unknown event answered %d %q, want 200 SUCCESS", r.status, r.body)
		}
		waitFor(t, "an UnknownEvent Event on the endpoint", func() bool {
			list := &corev1.EventList{}
			_ = k8s.List(context.Background(), list, client.InNamespace(ep.Namespace))
			for _, e := range list.Items {
				if e.Reason == "UnknownEvent" && e.InvolvedObject.Name == ep.Name {
					return true
				}
			}
			return false
		})
	})

	// A status value no adapter knows was a 400: UPay retried it until it gave up, and the event was lost.
	t.Run("unknown card status is kept and reported", func(t *testing.T) {
		r := sendUPay(t, ep, statusEvent("UC2", "99", time.Now(), "o-x"), nil)
		if r.status != 200 || r.body != "SUCCESS" {
			t.Fatalf("unknown card status answered %d %q, want 200 SUCCESS", r.status, r.body)
		}
		card := getCard(t, ep.Namespace, ep.Name+"-uc2")
		if card.Status.Phase != cardsv1alpha1.CardUnknown || card.Status.ProviderStatus != "99" {
			t.Errorf("card phase %q (provider status %q), want Unknown (99)", card.Status.Phase, card.Status.ProviderStatus)
		}
		waitFor(t, "an UnknownProviderStatus Event on the endpoint", func() bool {
			list := &corev1.EventList{}
			_ = k8s.List(context.Background(), list, client.InNamespace(ep.Namespace))
			for _, e := range list.Items {
				if e.Reason == cardsv1alpha1.EventUnknownProviderStatus && e.InvolvedObject.Name == ep.Name && strings.Contains(e.Message, `"99"`) {
					return true
				}
			}
			return false
		})
	})

	t.Run("rate limit", func(t *testing.T) {
		limited := 0
		for i := 0; i < 20; i++ {
			if r := sendUPay(t, ep, good, nil); r.status == 429 {
				limited++
			}
		}
		if limited == 0 {
			t.Error("20 callbacks at once against a 1/s burst-12 limit: none answered 429")
		}
	})

	t.Run("endpoint not ready when its Secret is deleted", func(t *testing.T) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Name: ep.Name + "-credentials", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}}
		if err := k8s.Delete(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "503", func() bool {
			time.Sleep(1100 * time.Millisecond) // let the rate limiter refill
			return sendUPay(t, ep, good, nil).status == 503
		})
		r := sendUPay(t, ep, good, nil)
		if !strings.Contains(r.body, "SecretNotFound") && !strings.Contains(r.body, "not found") {
			t.Errorf("503 does not say why: %s", r.body)
		}
	})
}

// TestStoreFailureIsNotAcknowledged: when the API server cannot take the write, the provider gets a 5xx and
// will retry; it never gets SUCCESS for an event that was not stored.
func TestStoreFailureIsNotAcknowledged(t *testing.T) {
	ep := upayEndpoint(t, nil)
	dead := rest.CopyConfig(env.Config)
	dead.Host = "https://127.0.0.1:1"
	dead.Timeout = 2 * time.Second
	broken, err := client.New(dead, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	s := &webhookserver.Server{Reader: receiver.Reader, Adapters: adapters.All(),
		Ingester: &ingest.Ingester{Client: broken, APIReader: broken}}
	h := s.Handler()
	cfg := &endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}
	hdr, body, _ := upay.Encode(cfg, []byte(statusEvent("UC3", "1", time.Now(), "o-f")), time.Now())
	req, _ := http.NewRequest(http.MethodPost, "/webhooks/"+ep.Namespace+"/"+ep.Name, bytes.NewReader(body))
	req.Header = hdr
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code < 500 || strings.Contains(rec.Body.String(), "SUCCESS") {
		t.Fatalf("store failure answered %d %q, want a 5xx", rec.Code, rec.Body.String())
	}
}

// TestReverseOrderGivesTheSameState delivers one card's story in order to one endpoint and in reverse order to
// another: the final card and transaction facts are the same.
func TestReverseOrderGivesTheSameState(t *testing.T) {
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	consume := func(status string, at time.Time, amount string) string {
		return fmt.Sprintf(`{"event":"CC_CONSUME","trace":"tr","orderNo":"c-%s","timestamp":%d,"detail":{"cardId":"UC9","cardNumber":"5326********4321","type":2,"status":%s,"amount":%q,"direction":2,"merchantName":"Shop","currency":"USD","transactionAt":%d,"transactionId":"T-9","merchantMcc":"5411","merchantCountry":"DE"}}`,
			status, at.UnixMilli(), status, amount, t0.UnixMilli())
	}
	story := []string{
		statusEvent("UC9", "6", t0, "s-1"),
		statusEvent("UC9", "2", t0.Add(1*time.Second), "s-2"),
		statusEvent("UC9", "1", t0.Add(2*time.Second), "s-3"),
		consume("3", t0.Add(3*time.Second), "10.00"),
		consume("1", t0.Add(4*time.Second), "10.50"),
		statusEvent("UC9", "3", t0.Add(5*time.Second), "s-4"),
	}
	type facts struct {
		Phase, ProviderStatus, Reason, Last4   string
		TxnPhase, TxnAmount, TxnProviderStatus string
	}
	final := func(ep *cardsv1alpha1.WebhookEndpoint) facts {
		card := getCard(t, ep.Namespace, "upay-main-uc9")
		txn := &cardsv1alpha1.CardTransaction{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-t-9"}, txn); err != nil {
			t.Fatal(err)
		}
		return facts{string(card.Status.Phase), card.Status.ProviderStatus, card.Status.PhaseReason, card.Status.Number.Last4,
			string(txn.Status.Phase), string(txn.Status.Amount.Value), txn.Status.ProviderStatus}
	}
	inOrder, reversed := upayEndpoint(t, nil), upayEndpoint(t, nil)
	for i := range story {
		if r := sendUPay(t, inOrder, story[i], nil); r.status != 200 {
			t.Fatalf("in order: %d %s", r.status, r.body)
		}
		if r := sendUPay(t, reversed, story[len(story)-1-i], nil); r.status != 200 {
			t.Fatalf("reversed: %d %s", r.status, r.body)
		}
	}
	a, b := final(inOrder), final(reversed)
	want := facts{"Frozen", "3", "r-3", "1234", "Completed", "10.50", "1"}
	if a != want || b != want {
		t.Errorf("final state\nin order: %+v\nreversed: %+v\nwant:     %+v", a, b, want)
	}
}

// TestMetrics: every callback is counted by endpoint, provider, event and result, and timed.
func TestMetrics(t *testing.T) {
	ep := upayEndpoint(t, nil)
	sendUPay(t, ep, statusEvent("UC5", "1", time.Now(), "m-1"), nil)
	sendUPay(t, ep, statusEvent("UC5", "1", time.Now(), "m-1"), func(h http.Header) { h.Set(upay.HeaderSign, "bad") })
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	histogram := uint64(0)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "cardplane_webhook_requests_total":
				if labels["webhook_endpoint"] == ep.Namespace+"/"+ep.Name {
					counts[labels["provider"]+"/"+labels["event"]+"/"+labels["result"]] += m.GetCounter().GetValue()
				}
			case "cardplane_webhook_request_duration_seconds":
				if labels["provider"] == "upay" {
					histogram += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	if counts["upay/CSC_STATUS_CHANGE/applied"] != 1 || counts["upay//InvalidSignature"] != 1 {
		t.Errorf("cardplane_webhook_requests_total for the endpoint = %v", counts)
	}
	if histogram < 2 {
		t.Errorf("request duration histogram has %d samples", histogram)
	}
}

// TestOneTimeCodesGoOnlyToSubscribedDestinations: a 3-D Secure code reaches the destination that lists
// challenge.otp, signed, after one failed attempt, and is not written to the card.
func TestOneTimeCodesGoOnlyToSubscribedDestinations(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var got []string
	failures := 1
	key := []byte("0123456789abcdef0123")
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), body)
		if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		got = append(got, r.URL.Path+" "+string(body))
	}))
	defer dest.Close()
	ep := upayEndpoint(t, func(ep *cardsv1alpha1.WebhookEndpoint) {
		ep.Spec.Destinations = []cardsv1alpha1.Destination{
			{Name: "otp", URL: dest.URL + "/otp", EventTypes: []cardsv1alpha1.DestinationEventType{"challenge.otp"},
				SecretRef: cardsv1alpha1.LocalObjectReference{Name: "dest"}},
			{Name: "ledger", URL: dest.URL + "/ledger", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "dest"}},
		}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Name: "dest", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
			StringData: map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: string(key)}}
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	})
	otp := fmt.Sprintf(`{"event":"3DS_OTP","trace":"t","orderNo":"o-otp","timestamp":%d,"detail":{"cardId":"UC7","cardNumber":"5326123412341234","customerNo":"C","3dsCode":"739164","orderNo":"o-otp","merchants":"Shop","amount":"9.99","transactionCurrency":"USD","transactionTime":%d}}`,
		time.Now().UnixMilli(), time.Now().UnixMilli())
	if r := sendUPay(t, ep, otp, nil); r.status != 200 || r.body != "SUCCESS" {
		t.Fatalf("3DS_OTP answered %d %s", r.status, r.body)
	}
	waitFor(t, "the code delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.HasPrefix(got[0], "/otp ") || !strings.Contains(got[0], `"code":"739164"`) || !strings.Contains(got[0], `"type":"challenge.otp"`) {
		t.Errorf("deliveries = %q, want one challenge.otp with the code to /otp only", got)
	}
	card := getCard(t, ep.Namespace, "upay-main-uc7")
	data, _ := json.Marshal(card)
	if strings.Contains(string(data), "739164") {
		t.Error("the one-time code was written to the card")
	}
}
