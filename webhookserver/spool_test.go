package webhookserver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/ingest"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

// outage is a client whose writes fail as an unavailable API server does while down is set.
type outage struct {
	client.Client
	down *atomic.Bool
}

func (o outage) err() error { return apierrors.NewServiceUnavailable("the API server is down (test)") }

func (o outage) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if o.down.Load() {
		return o.err()
	}
	return o.Client.Create(ctx, obj, opts...)
}

func (o outage) Patch(ctx context.Context, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
	if o.down.Load() {
		return o.err()
	}
	return o.Client.Patch(ctx, obj, p, opts...)
}

func (o outage) Status() client.SubResourceWriter { return outageStatus{o.Client.Status(), o} }

type outageStatus struct {
	client.SubResourceWriter
	o outage
}

func (s outageStatus) Patch(ctx context.Context, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
	if s.o.down.Load() {
		return s.o.err()
	}
	return s.SubResourceWriter.Patch(ctx, obj, p, opts...)
}

// TestSpoolCarriesEventsThroughAnAPIServerOutage: while the API server takes no writes, verified callbacks are
// spooled (fsynced) and acknowledged; when it is back they are applied in order, and none is lost.
func TestSpoolCarriesEventsThroughAnAPIServerOutage(t *testing.T) {
	ep := upayEndpoint(t, nil)
	sp, err := spool.Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	down := &atomic.Bool{}
	c := outage{Client: receiver.Ingester.Client, down: down}
	in := &ingest.Ingester{Client: c, APIReader: receiver.Ingester.APIReader}
	s := &webhookserver.Server{Reader: receiver.Reader, Ingester: in, Adapters: adapters.All(), Spool: sp}
	rs := httptest.NewServer(s.Handler())
	defer rs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = (&webhookserver.SpoolReplayer{Spool: sp, Reader: receiver.Reader, Ingester: in, Interval: 100 * time.Millisecond}).Start(ctx)
	}()

	saved := srv.URL
	srv.URL = rs.URL // sendUPay posts to srv
	defer func() { srv.URL = saved }()

	down.Store(true)
	t0 := time.Now().Add(-time.Minute)
	for i := 0; i < 5; i++ {
		// Card S<i> goes Active; card S0 then also Frozen (a later state of the same card).
		if r := sendUPay(t, ep, statusEvent(fmt.Sprint("S", i), "1", t0.Add(time.Duration(i)*time.Second), fmt.Sprint("sp-", i)), nil); r.status != 200 || r.body != "SUCCESS" {
			t.Fatalf("callback %d during the outage answered %d %q, want SUCCESS from the spool", i, r.status, r.body)
		}
	}
	sendUPay(t, ep, statusEvent("S0", "3", t0.Add(10*time.Second), "sp-frozen"), nil)
	if depth, _ := sp.Depth(); depth != 6 {
		t.Fatalf("spool depth %d, want 6", depth)
	}
	time.Sleep(300 * time.Millisecond)
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-s1"}, &cardsv1alpha1.Card{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a card was written during the outage: %v", err)
	}

	down.Store(false)
	waitFor(t, "the spool replayed", func() bool { d, _ := sp.Depth(); return d == 0 })
	for i := 0; i < 5; i++ {
		want := cardsv1alpha1.CardActive
		if i == 0 {
			want = cardsv1alpha1.CardFrozen
		}
		if card := getCard(t, ep.Namespace, fmt.Sprint("upay-main-s", i)); card.Status.Phase != want {
			t.Errorf("card S%d after replay: %q, want %q", i, card.Status.Phase, want)
		}
	}
}
