package webhookserver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

// TestASettledTransactionCostsThreeWrites: the receiver writes a new settled transaction in three API writes
// (the transaction, its status marked counted, the card's status with the totals) and leaves nothing for the
// controllers to write. (Before, the card's totals, the counted mark and the delivery cursors were written
// afterwards by the reconcilers, one write each.)
func TestASettledTransactionCostsThreeWrites(t *testing.T) {
	ctx := context.Background()
	ep := upayEndpoint(t, nil)
	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if r := sendUPay(t, ep, statusEvent("UC30001", "1", now, "ON-W"), nil); r.status != 200 {
		t.Fatalf("card callback: %d %s", r.status, r.body)
	}

	// A receiver whose writes are counted, on the same API server.
	direct, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var writes []string
	note := func(verb string, obj client.Object) {
		mu.Lock()
		defer mu.Unlock()
		writes = append(writes, fmt.Sprintf("%s %T", verb, obj))
	}
	counted := interceptor.NewClient(direct, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			note("create", obj)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			note("update", obj)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			note("patch", obj)
			return c.Patch(ctx, obj, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			note(sub+" update", obj)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			note(sub+" patch", obj)
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
	rcv := &webhookserver.Server{Reader: secrets, Ingester: &ingest.Ingester{Client: counted, APIReader: direct},
		Adapters: adapters.All(), Recorder: receiver.Recorder, Counters: &webhookserver.Counters{}, Authorizer: receiver.Authorizer}
	s := httptest.NewServer(rcv.Handler())
	defer s.Close()

	body := fmt.Sprintf(`{"event":"CC_CONSUME","trace":"tr_w","orderNo":"ON-W-1","timestamp":%d,"detail":{"cardId":"UC30001","cardNumber":"5326123412341234","orderNo":"x","customerNo":"CUST77","type":2,"status":1,"amount":12.50,"direction":2,"merchantName":"Coffee Bar","currency":"USD","transactionAt":%d,"transactionId":"TX-W-1","merchantMcc":"5814","merchantCountry":"US"}}`,
		now.Add(time.Second).UnixMilli(), now.UnixMilli())
	h, wire, err := upay.Encode(&endpointconfig.Resolved{Endpoint: ep, SigningKey: []byte(upayKey)}, []byte(body), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := postTo(t, s.URL+"/webhooks/"+ep.Namespace+"/"+ep.Name, h, wire); r.status != 200 {
		t.Fatalf("transaction callback: %d %s", r.status, r.body)
	}
	mu.Lock()
	got := slices.Clone(writes)
	mu.Unlock()
	want := []string{"create *v1alpha1.CardTransaction", "status patch *v1alpha1.CardTransaction", "status patch *v1alpha1.Card"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("writes for a new settled transaction = %q, want %q", got, want)
	}
	// Written counted and in the card's totals by the receiver itself: no controller runs here.
	txn := &cardsv1alpha1.CardTransaction{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-tx-w-1"}, txn); err != nil {
		t.Fatal(err)
	}
	card := getCard(t, ep.Namespace, "upay-main-uc30001")
	if txn.Status.CountedAt == nil || card.Status.Totals == nil || card.Status.Totals.Transactions != 1 || card.Status.Totals.Spent != "12.50" {
		t.Errorf("countedAt %v, card totals %+v; want counted and 12.50 spent over 1 transaction", txn.Status.CountedAt, card.Status.Totals)
	}
}
