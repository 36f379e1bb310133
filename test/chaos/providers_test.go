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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	samples "github.com/cardplane/cardplane/config"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapters"
)

// TestAllProvidersLoad sends card lifecycle callbacks of every built-in provider and the generic adapter —
// each signed or encrypted as its provider does, 20% sent twice, shuffled, from 16 senders — and checks that
// every card ends in the state of its newest callback by provider time, that Tevau transactions end Completed
// whichever of authorization and clearing arrives first, and that every Alchemy Pay order is stored once. Expectations come from what was sent.
func TestAllProvidersLoad(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "providers-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	objs, err := samples.Samples()
	if err != nil {
		t.Fatal(err)
	}
	endpoints := map[cardsv1alpha1.Provider]*cardsv1alpha1.WebhookEndpoint{}
	for _, s := range objs {
		if k := s.Object.GetKind(); k != "Secret" && k != "WebhookEndpoint" {
			continue
		}
		o := s.Object.DeepCopy()
		o.SetNamespace(ns.Name)
		if o.GetKind() == "WebhookEndpoint" {
			_ = unstructuredDelete(o.Object, "spec", "destinations")
			_ = unstructuredDelete(o.Object, "spec", "rateLimit")
			// The callbacks are up to three hours old and BananaTech's occur_time must lie within the tolerance.
			if p, _, _ := unstructured.NestedString(o.Object, "spec", "provider"); p == string(cardsv1alpha1.ProviderBananaTech) {
				if err := unstructured.SetNestedField(o.Object, "4h", "spec", "verification", "timestampTolerance"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		if o.GetKind() == "WebhookEndpoint" {
			ep := &cardsv1alpha1.WebhookEndpoint{}
			_ = env.Client.Get(ctx, client.ObjectKeyFromObject(o), ep)
			endpoints[ep.Spec.Provider] = ep
		}
	}
	mgr, url := startReceiver(t, ctx, env.Config, "providers", true, nil)
	resolved := map[cardsv1alpha1.Provider]*endpointconfig.Resolved{}
	for p, ep := range endpoints {
		waitFor(t, 30*time.Second, "endpoint "+ep.Name+" Ready", ready(mgr.GetClient(), ep))
		if resolved[p], err = endpointconfig.Resolve(ctx, env.Client, ep); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)

	type callback struct {
		provider cardsv1alpha1.Provider
		body     string
	}
	rng := rand.New(rand.NewSource(5))
	total := callbacks()
	unique := total * 10 / 12
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	var list []callback
	type last struct {
		at    time.Time
		phase cardsv1alpha1.CardPhase
	}
	want := map[string]last{} // endpoint/card -> newest state
	wantTxn := map[string]bool{}
	note := func(ep, card string, at time.Time, phase cardsv1alpha1.CardPhase) {
		k := ep + "/" + card
		if l, ok := want[k]; !ok || at.After(l.at) {
			want[k] = last{at, phase}
		}
	}
	// Distinct whole-second times per event, so no two events of a card share a time in any provider's unit.
	slot := rng.Perm(unique * 3)
	for i := 0; i < unique; i++ {
		at := t0.Add(time.Duration(slot[i]) * time.Second)
		active := rng.Intn(2) == 0
		phase := map[bool]cardsv1alpha1.CardPhase{true: cardsv1alpha1.CardActive, false: cardsv1alpha1.CardFrozen}[active]
		n := rng.Intn(unique/30 + 1)
		switch i % 6 {
		case 0: // Prepaidify: CREATE_CARD (Active) or RISK_CONTROL (Frozen), times in epoch seconds
			card := fmt.Sprintf("c_p%03d", n)
			body := fmt.Sprintf(`{"eventType":"RISK_CONTROL","eventId":"ev_%d","webhookSubscribeId":"w","data":{"userId":"u1","cardIds":[%q],"type":"FREEZE_CARD","riskControlReasonType":"HIGH_REFUSE_RATE","reason":"r","gmtCreate":%d}}`, i, card, at.Unix())
			if active {
				body = fmt.Sprintf(`{"eventType":"CREATE_CARD","eventId":"ev_%d","webhookSubscribeId":"w","data":{"userId":"u1","cardId":%q,"last4":"4372","status":"ACTIVE","expYear":2028,"expMonth":11,"balance":1000,"gmtCreate":%d}}`, i, card, at.Unix())
			}
			list = append(list, callback{cardsv1alpha1.ProviderPrepaidify, body})
			note(endpoints[cardsv1alpha1.ProviderPrepaidify].Name, card, at, phase)
		case 1: // BananaTech: CARD_STATUS_CHANGE, encrypted, times in milliseconds
			card := fmt.Sprint(730000 + n)
			st := map[bool]string{true: "ACTIVE", false: "LOCKED"}[active]
			list = append(list, callback{cardsv1alpha1.ProviderBananaTech, fmt.Sprintf(`{"type":"CARD_STATUS_CHANGE","data":{"card_id":%s,"status":"SUCCESS","card_status":%q,"occur_time":%d}}`, card, st, at.UnixMilli())})
			note(endpoints[cardsv1alpha1.ProviderBananaTech].Name, card, at, phase)
		case 2: // generic (Standard Webhooks + CEL mapping): card.updated, times in seconds
			card := fmt.Sprintf("ic_g%03d", n)
			st := map[bool]string{true: "active", false: "inactive"}[active]
			list = append(list, callback{cardsv1alpha1.ProviderGeneric, fmt.Sprintf(`{"id":"evt_%d","object":"event","type":"card.updated","created":%d,"data":{"id":%q,"object":"issuing.card","exp_month":11,"exp_year":2028,"last4":"5556","status":%q}}`, i, at.Unix(), card, st)})
			note(endpoints[cardsv1alpha1.ProviderGeneric].Name, card, at, phase)
		case 3: // UPay: CSC_STATUS_CHANGE
			card := fmt.Sprintf("UP%03d", n)
			st := map[bool]string{true: "1", false: "3"}[active]
			list = append(list, callback{cardsv1alpha1.ProviderUPay, fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":"p-%d","timestamp":%d,"detail":{"cardId":%q,"cardNumber":"5326********1234","status":%q,"orderNo":"p-%d","customerNo":"C"}}`, i, at.UnixMilli(), card, st, i)})
			note(endpoints[cardsv1alpha1.ProviderUPay].Name, card, at, phase)
		case 4: // Tevau: an authorization and its clearing (later), either may arrive first
			order := fmt.Sprintf("CT%06d", i)
			auth := fmt.Sprintf(`{"orderId":%q,"cardId":"CIDT%03d","eventType":"Authorization","status":1,"transAmount":15,"transCurrency":"USD","merchantData":{"mccCode":"5814","merchantName":"Cafe","merchantCountry":"US"},"details":{"subOrderId":"A%s","principal":15,"subStatus":5,"subType":1,"remark":"Transaction Authorization","createTimeStamp":%d},"channel":"ECOMMERCE"}`, order, n, order, at.UnixMilli())
			clearing := fmt.Sprintf(`{"orderId":%q,"cardId":"CIDT%03d","eventType":"Clearing","status":1,"transAmount":15,"transCurrency":"USD","merchantData":{"mccCode":"5814","merchantName":"Cafe","merchantCountry":"US"},"details":{"subOrderId":"C%s","principal":15,"subStatus":1,"subType":16,"remark":"Clearing Standard","createTimeStamp":%d},"channel":"ECOMMERCE"}`, order, n, order, at.Add(time.Minute).UnixMilli())
			list = append(list, callback{cardsv1alpha1.ProviderTevau, auth}, callback{cardsv1alpha1.ProviderTevau, clearing})
			wantTxn[order] = true
		case 5: // Alchemy Pay: a recharge order, resent as Alchemy Pay does until acknowledged
			order := fmt.Sprintf("8%08d", i)
			list = append(list, callback{cardsv1alpha1.ProviderAlchemyPay, fmt.Sprintf(`{"orderNo":%q,"cardId":"AP%03d","orderType":"2","cardType":"1","status":"SUCCESS","cardAmount":"25.00","cardCurrency":"USD","cryptoCurrency":"USDT","paymentAmount":"25.4","network":"TRC20","orderTime":%q}`,
				order, n, at.In(alchemyPayZone).Format("2006-01-02 15:04:05"))})
			wantTxn[order] = true
		}
	}
	distinct := len(list)
	for len(list) < distinct*12/10 {
		list = append(list, list[rng.Intn(distinct)])
	}
	rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })

	var acked, failed atomic.Int64
	var firstFailure atomic.Value
	jobs := make(chan callback)
	var wg sync.WaitGroup
	start := time.Now()
	encoders := adapters.Encoders()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cb := range jobs {
				cfg := resolved[cb.provider]
				h, wire, err := encoders[cb.provider](cfg, []byte(cb.body), time.Now())
				if err != nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				path := "/webhooks/" + ns.Name + "/" + cfg.Endpoint.Name
				if cfg.URLToken != "" {
					path += "/" + cfg.URLToken
				}
				req, _ := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(wire))
				req.Header = h
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					acked.Add(1)
				} else {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s: %d %s", cb.provider, resp.StatusCode, answer))
				}
			}
		}()
	}
	for _, cb := range list {
		jobs <- cb
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)

	cards := &cardsv1alpha1.CardList{}
	txns := &cardsv1alpha1.CardTransactionList{}
	_ = env.Client.List(ctx, cards, client.InNamespace(ns.Name))
	_ = env.Client.List(ctx, txns, client.InNamespace(ns.Name))
	wrong, byProvider := 0, map[cardsv1alpha1.Provider]int{}
	got := map[string]cardsv1alpha1.CardPhase{}
	for _, c := range cards.Items {
		got[c.Spec.EndpointRef.Name+"/"+c.Spec.ProviderCardID] = c.Status.Phase
		byProvider[c.Spec.Provider]++
	}
	for k, l := range want {
		if got[k] != l.phase {
			wrong++
			if wrong <= 3 {
				t.Logf("card %s: %q, want %q", k, got[k], l.phase)
			}
		}
	}
	completed := 0
	for _, x := range txns.Items {
		if x.Status.Phase == cardsv1alpha1.TransactionCompleted && wantTxn[x.Spec.ProviderTransactionID] {
			completed++
		}
	}
	t.Logf("%d callbacks (%d distinct) across 6 adapters in %s: acknowledged %d, failed %d; cards by provider %v, %d in the wrong state of %d; Tevau and Alchemy Pay transactions Completed %d of %d",
		len(list), distinct, elapsed.Round(time.Millisecond), acked.Load(), failed.Load(), byProvider, wrong, len(want), completed, len(wantTxn))
	if failed.Load() != 0 {
		t.Errorf("first failure: %v", firstFailure.Load())
	}
	statusCards := 0 // Tevau and Alchemy Pay cards here only carry transactions
	for _, c := range cards.Items {
		if c.Spec.Provider != cardsv1alpha1.ProviderTevau && c.Spec.Provider != cardsv1alpha1.ProviderAlchemyPay {
			statusCards++
		}
	}
	if wrong != 0 || completed != len(wantTxn) || statusCards != len(want) {
		t.Error("a callback was lost, duplicated or applied out of order")
	}
}

func unstructuredDelete(obj map[string]any, fields ...string) error {
	m := obj
	for _, f := range fields[:len(fields)-1] {
		next, ok := m[f].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	delete(m, fields[len(fields)-1])
	return nil
}

// alchemyPayZone is the zone Alchemy Pay's local orderTime is read in by default (UTC+8, as its own example shows).
var alchemyPayZone = time.FixedZone("UTC+8", 8*3600)
