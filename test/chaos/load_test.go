package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/pan"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
)

// callbacks is how many callbacks the load scenario sends: CHAOS_CALLBACKS (make test-chaos: 10000), 1000 in
// make test.
func callbacks() int {
	if n, err := strconv.Atoi(os.Getenv("CHAOS_CALLBACKS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// TestShuffledDuplicatedLoad sends card status changes and transaction pushes (UPay) and crypto orders
// (Alchemy Pay), 20% of them twice, in shuffled order, from 16 concurrent senders. The final Card and
// CardTransaction state must equal what the test computes from the callbacks (the newest push of each object
// by provider time), with no object lost or duplicated.
func TestShuffledDuplicatedLoad(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "load-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "creds", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		StringData: map[string]string{cardsv1alpha1.SecretKeySigningKey: upayKey}}); err != nil {
		t.Fatal(err)
	}
	up := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "upay"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"}}}
	ap := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "orders"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay,
			Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"127.0.0.0/8"}}}}
	for _, ep := range []*cardsv1alpha1.WebhookEndpoint{up, ap} {
		if err := env.Client.Create(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	mgr, url := startReceiver(t, ctx, env.Config, "load", true, nil)
	for _, ep := range []*cardsv1alpha1.WebhookEndpoint{up, ap} {
		waitFor(t, 30*time.Second, "endpoint Ready", ready(mgr.GetClient(), ep))
	}

	// Build the callbacks and, independently, the expected final state.
	type callback struct {
		path string
		body []byte
		upay bool
	}
	rng := rand.New(rand.NewSource(42))
	total := callbacks()
	unique := total * 10 / 12 // 20% of them are sent twice
	t0 := time.Now().Add(-2 * time.Hour)
	var list []callback
	wantCards := map[string]string{} // provider card ID -> phase
	wantTxns := map[string]string{}  // provider transaction ID -> phase
	type last struct {
		at    time.Time
		phase string
	}
	lastCard, lastTxn := map[string]last{}, map[string]last{}
	pans := map[string]bool{}
	phases := map[string]string{"1": "Active", "3": "Frozen"}
	txPhases := map[string]string{"1": "Completed", "2": "Failed", "3": "Pending"}
	for i := 0; i < unique; i++ {
		at := t0.Add(time.Duration(rng.Intn(3_600_000)) * time.Millisecond)
		switch k := rng.Intn(10); {
		case k < 5: // a card status change
			card := fmt.Sprintf("U%03d", rng.Intn(unique/10+1))
			st := []string{"1", "3"}[rng.Intn(2)]
			number := fullPAN(card) // a full card number, as UPay sends in some pushes: the leak scan looks for it
			pans[number] = true
			body := fmt.Sprintf(`{"event":"CSC_STATUS_CHANGE","trace":"t","orderNo":"s-%d","timestamp":%d,"detail":{"cardId":%q,"cardNumber":%q,"status":%q,"orderNo":"s-%d","customerNo":"C"}}`,
				i, at.UnixMilli(), card, number, st, i)
			list = append(list, callback{"/webhooks/" + ns.Name + "/upay", []byte(body), true})
			if l, ok := lastCard[card]; !ok || !at.Before(l.at) {
				lastCard[card] = last{at, phases[st]}
			}
		case k < 8: // a transaction push
			txn := fmt.Sprintf("T%04d", rng.Intn(unique/5+1))
			st := []string{"1", "2", "3"}[rng.Intn(3)]
			body := fmt.Sprintf(`{"event":"CC_CONSUME","trace":%q,"orderNo":"c-%d","timestamp":%d,"detail":{"cardId":"U-TX","cardNumber":"5326********1234","type":2,"status":%s,"amount":"12.34","direction":2,"currency":"USD","transactionAt":%d,"transactionId":%q}}`,
				txn, i, at.UnixMilli(), st, t0.UnixMilli(), txn)
			list = append(list, callback{"/webhooks/" + ns.Name + "/upay", []byte(body), true})
			if l, ok := lastTxn[txn]; !ok || !at.Before(l.at) {
				lastTxn[txn] = last{at, txPhases[st]}
			}
		default: // a crypto order, one status per order (Alchemy Pay resends the same order until acknowledged)
			order := fmt.Sprintf("9%08d", i)
			body := fmt.Sprintf(`{"orderNo":%q,"cardId":"A-%d","orderType":"2","cardType":"1","status":"SUCCESS","cardAmount":"25.00","cardCurrency":"USD","cryptoCurrency":"USDT","paymentAmount":"25.4","network":"TRC20","orderTime":%q}`,
				order, i%50, at.In(alchemyPayZone).Format("2006-01-02 15:04:05"))
			list = append(list, callback{"/webhooks/" + ns.Name + "/orders", []byte(body), false})
			lastTxn[order] = last{at, "Completed"}
			wantCards[fmt.Sprint("A-", i%50)] = ""
		}
	}
	for card, l := range lastCard {
		wantCards[card] = l.phase
	}
	for txn, l := range lastTxn {
		wantTxns[txn] = l.phase
		if txn[0] == 'T' {
			wantCards["U-TX"] = "" // the card of the UPay transactions, created on first sight, no status
		}
	}
	for len(list) < total {
		list = append(list, list[rng.Intn(unique)])
	}
	rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })

	resolved := &endpointconfig.Resolved{Endpoint: up, SigningKey: []byte(upayKey)}
	var acked, lost atomic.Int64
	jobs := make(chan callback)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cb := range jobs {
				ok := false
				for try := 0; try < 5 && !ok; try++ {
					h, wire := http.Header{"Content-Type": {"application/json"}}, cb.body
					if cb.upay {
						h, wire, _ = upay.Encode(resolved, cb.body, time.Now())
					}
					req, _ := http.NewRequest(http.MethodPost, url+cb.path, bytes.NewReader(wire))
					req.Header = h
					if resp, err := http.DefaultClient.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						ok = resp.StatusCode == 200
					}
					if !ok {
						time.Sleep(500 * time.Millisecond)
					}
				}
				if ok {
					acked.Add(1)
				} else {
					lost.Add(1)
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
	if err := env.Client.List(ctx, cards, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(ctx, txns, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	gotCards, gotTxns := map[string]string{}, map[string]string{}
	for _, c := range cards.Items {
		gotCards[c.Spec.ProviderCardID] = string(c.Status.Phase)
	}
	for _, x := range txns.Items {
		gotTxns[x.Spec.ProviderTransactionID] = string(x.Status.Phase)
	}
	wrong := 0
	for id, want := range wantCards {
		if want != "" && gotCards[id] != want {
			wrong++
		}
		if _, ok := gotCards[id]; !ok {
			wrong++
		}
	}
	for id, want := range wantTxns {
		if gotTxns[id] != want {
			wrong++
		}
	}
	t.Logf("%d callbacks (%d distinct, %d repeated) in %s: acknowledged %d, lost %d; cards %d stored / %d expected, transactions %d stored / %d expected; objects in the wrong state %d",
		len(list), unique, len(list)-unique, elapsed.Round(time.Millisecond), acked.Load(), lost.Load(),
		len(cards.Items), len(wantCards), len(txns.Items), len(wantTxns), wrong)
	if lost.Load() != 0 || wrong != 0 || len(cards.Items) != len(wantCards) || len(txns.Items) != len(wantTxns) {
		t.Error("the load lost, duplicated or misordered something")
	}

	// Leak scan: every object of the namespace, every Event, every log line and every metric label.
	var dump bytes.Buffer
	evs := &corev1.EventList{}
	eps := &cardsv1alpha1.WebhookEndpointList{}
	for _, l := range []client.ObjectList{evs, eps} {
		if err := env.Client.List(ctx, l, client.InNamespace(ns.Name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []any{cards, txns, evs, eps} {
		b, _ := json.Marshal(o)
		dump.Write(b)
	}
	dump.WriteString(logs.String())
	families, _ := metrics.Registry.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				dump.WriteString(l.GetValue() + "\n")
			}
		}
	}
	leaked := 0
	for p := range pans {
		if bytes.Contains(dump.Bytes(), []byte(p)) {
			leaked++
		}
	}
	t.Logf("leak scan: %d full card numbers sent, %d found in %d bytes of objects, Events, logs and metric labels", len(pans), leaked, dump.Len())
	if leaked != 0 || len(pans) == 0 || !bytes.Contains(dump.Bytes(), []byte(`"last4":"`)) {
		t.Errorf("%d full card numbers leaked (or the scan saw no card numbers at all)", leaked)
	}
}

// fullPAN makes a Luhn-valid 16-digit card number for a card ID.
func fullPAN(card string) string {
	digits := fmt.Sprintf("532612%09d", crc(card)%1_000_000_000)
	for check := 0; check < 10; check++ {
		if n := digits + strconv.Itoa(check); pan.Luhn(n) {
			return n
		}
	}
	return ""
}

func crc(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}
