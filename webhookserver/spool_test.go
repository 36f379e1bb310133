package webhookserver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/event"
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

// spoolingReceiver is a receiver on its own spool whose writes fail as an unavailable API server's while down
// is set, with its replayer running; callbacks reach it through srv.
func spoolingReceiver(t *testing.T, dir string) (*spool.Spool, *atomic.Bool) {
	t.Helper()
	sp, err := spool.Open(dir, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	down := &atomic.Bool{}
	c := outage{Client: receiver.Ingester.Client, down: down}
	in := &ingest.Ingester{Client: c, APIReader: receiver.Ingester.APIReader}
	s := &webhookserver.Server{Reader: receiver.Reader, Ingester: in, Adapters: adapters.All(), Spool: sp, Recorder: receiver.Recorder}
	rs := httptest.NewServer(s.Handler())
	t.Cleanup(rs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		_ = (&webhookserver.SpoolReplayer{Spool: sp, Reader: receiver.Reader, Ingester: in, Interval: 100 * time.Millisecond,
			Recorder: receiver.Recorder}).Start(ctx)
	}()
	saved := srv.URL
	srv.URL = rs.URL // sendUPay posts to srv
	t.Cleanup(func() { srv.URL = saved })
	return sp, down
}

// TestAPoisonedSpoolEntryBlocksNothing: spooled during an outage, one event the API server then refuses for
// good (a ResourceQuota allows no more cards) and 100 good ones behind it: the 100 are applied, the refused
// one is kept as a dead letter (Event, metric), and once the quota is lifted a requeue applies it. (Before,
// replay stopped at the refused entry for ever and the 100 were never applied.)
func TestAPoisonedSpoolEntryBlocksNothing(t *testing.T) {
	ep := upayEndpoint(t, nil)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour)
	sendUPay(t, ep, statusEvent("Q1", "1", t0, "q-open"), nil) // the one card the quota will allow
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Name: "one-card"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/cards.cards.cardplane.io": resource.MustParse("1")}}}
	createQuota(t, quota, "1")
	dir := t.TempDir()
	sp, down := spoolingReceiver(t, dir)
	down.Store(true)
	if r := sendUPay(t, ep, statusEvent("Q2", "1", t0, "q-poison"), nil); r.status != 200 {
		t.Fatalf("the poisoned callback: %d %s", r.status, r.body)
	}
	for i := range 100 {
		st := []string{"1", "3"}[i%2]
		if r := sendUPay(t, ep, statusEvent("Q1", st, t0.Add(time.Duration(i+1)*time.Second), fmt.Sprint("q-", i)), nil); r.status != 200 {
			t.Fatalf("callback %d during the outage: %d %s", i, r.status, r.body)
		}
	}
	down.Store(false)
	waitFor(t, "the 100 good events applied", func() bool {
		d, _ := sp.Depth()
		return d == 0 && sp.DeadLetters() == 1
	})
	if card := getCard(t, ep.Namespace, "upay-main-q1"); card.Status.Phase != cardsv1alpha1.CardFrozen || card.Status.LastEvent.ID != "q-99" {
		t.Errorf("card Q1 after replay: %s after %s, want Frozen after q-99", card.Status.Phase, card.Status.LastEvent.ID)
	}
	c, err := spool.Inspect(dir)
	if err != nil || len(c.DeadLetters) != 1 || !strings.Contains(c.DeadLetters[0].Reason, "quota") {
		t.Fatalf("dead letters %+v (%v), want the refused card with its reason", c, err)
	}
	waitFor(t, "a DeadLettered Event on the endpoint", func() bool {
		list := &corev1.EventList{}
		_ = k8s.List(ctx, list, client.InNamespace(ep.Namespace))
		for _, e := range list.Items {
			if e.Reason == cardsv1alpha1.EventDeadLettered && e.InvolvedObject.Name == ep.Name {
				return true
			}
		}
		return false
	})

	if err := k8s.Delete(ctx, quota); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the quota gone", func() bool { return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(quota), quota)) })
	if _, err := spool.RequestRequeue(dir, []string{c.DeadLetters[0].ID}, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the requeued card applied", func() bool {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ep.Namespace, Name: "upay-main-q2"}, &cardsv1alpha1.Card{}) == nil
	})
	if sp.DeadLetters() != 0 {
		t.Errorf("%d dead letters after the requeue", sp.DeadLetters())
	}
}

// TestAQuotaRefusalAtReceiveTimeIsKept: an event the API server refuses for good while it is up is
// acknowledged and kept as a dead letter, not answered 5xx for the provider to retry for ever.
func TestAQuotaRefusalAtReceiveTimeIsKept(t *testing.T) {
	ep := upayEndpoint(t, nil)
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ep.Namespace, Name: "no-cards"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/cards.cards.cardplane.io": resource.MustParse("0")}}}
	createQuota(t, quota, "0")
	dir := t.TempDir()
	sp, _ := spoolingReceiver(t, dir)
	if r := sendUPay(t, ep, statusEvent("Z1", "1", time.Now(), "z-1"), nil); r.status != 200 || r.body != "SUCCESS" {
		t.Fatalf("a refused callback answered %d %s, want SUCCESS (kept as a dead letter)", r.status, r.body)
	}
	if sp.DeadLetters() != 1 {
		t.Errorf("%d dead letters, want 1", sp.DeadLetters())
	}
}

// TestAStoppingReplicaDrainsItsSpool: events in the spool when the manager stops are applied before it exits,
// after the receiver stopped taking callbacks, while the API server takes writes: a deleted pod leaves nothing
// on its emptyDir. (Before, the replayer returned at once and they were lost with the pod.)
func TestAStoppingReplicaDrainsItsSpool(t *testing.T) {
	ep := upayEndpoint(t, nil)
	sp, err := spool.Open(t.TempDir(), 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	t0 := time.Now().Add(-time.Hour)
	for i := range 20 {
		e := spool.Entry{Endpoint: client.ObjectKeyFromObject(ep), Received: t0,
			Event: event.Event{Type: "CSC_STATUS_CHANGE", ID: fmt.Sprint("d-", i), CardID: fmt.Sprint("D", i), OccurredAt: t0,
				Card: &event.Card{Phase: cardsv1alpha1.CardActive, ProviderStatus: "1"}}}
		if err := sp.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	down := &atomic.Bool{}
	down.Store(true) // the first round fails: the API server is down
	in := &ingest.Ingester{Client: outage{Client: receiver.Ingester.Client, down: down}, APIReader: receiver.Ingester.APIReader}
	stopped := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A replay interval far longer than the test: only the drain at shutdown can apply the spool.
		_ = (&webhookserver.SpoolReplayer{Spool: sp, Reader: receiver.Reader, Ingester: in, Interval: time.Hour,
			Receiver: doneChan(stopped)}).Start(ctx)
	}()
	time.Sleep(300 * time.Millisecond)
	if depth, _ := sp.Depth(); depth != 20 {
		t.Fatalf("depth %d before the stop, want 20", depth)
	}
	down.Store(false) // the API server is back, and the pod is deleted
	cancel()
	close(stopped) // the receiver has stopped
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the replayer did not stop")
	}
	if depth, _ := sp.Depth(); depth != 0 {
		t.Errorf("%d events left in the spool at exit", depth)
	}
	for i := range 20 {
		if card := getCard(t, ep.Namespace, fmt.Sprint("upay-main-d", i)); card.Status.Phase != cardsv1alpha1.CardActive {
			t.Errorf("card D%d: %q", i, card.Status.Phase)
		}
	}
}

type doneChan chan struct{}

func (d doneChan) Done() <-chan struct{} { return d }

// createQuota creates a ResourceQuota and writes the status the cluster's quota controller would (envtest runs
// none): used as given, so the API server's quota admission enforces it.
func createQuota(t *testing.T, q *corev1.ResourceQuota, used string) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Create(ctx, q); err != nil {
		t.Fatal(err)
	}
	q.Status.Hard = q.Spec.Hard
	q.Status.Used = corev1.ResourceList{}
	for r := range q.Spec.Hard {
		q.Status.Used[r] = resource.MustParse(used)
	}
	if err := k8s.Status().Update(ctx, q); err != nil {
		t.Fatal(err)
	}
}
