package projection

import (
	"context"
	"errors"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
)

// readerCache is a cache whose reads are served by a client: what the dead-letter and backfill paths read.
type readerCache struct {
	cache.Cache
	r client.Reader
}

func (c readerCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.r.Get(ctx, key, obj, opts...)
}

func (c readerCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.r.List(ctx, list, opts...)
}

// cardAt is a card of namespace ns at resourceVersion rv and state sequence seq.
func cardAt(name, rv string, seq int64) *cardsv1alpha1.Card {
	return &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), ResourceVersion: rv},
		Status: cardsv1alpha1.CardStatus{StateSequence: seq}}
}

// sinkDispatcher is a dispatcher reading objs, with one CardEventSink "orders" in namespace ns.
func sinkDispatcher(t *testing.T, cs *cardsv1alpha1.CardEventSink, objs ...client.Object) (*Dispatcher, *subscription) {
	t.Helper()
	r := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build()
	d := &Dispatcher{Cache: readerCache{r: r}, Client: r, Recorder: events.NewFakeRecorder(16), Now: time.Now, ctx: t.Context()}
	s := d.newSubscription(cs)
	t.Cleanup(s.q.shutDown)
	return d, s
}

func sinkAt(rv string, checkpoint *cardsv1alpha1.DeliveryCheckpoint, backfill bool) *cardsv1alpha1.CardEventSink {
	return &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orders", UID: "sink-uid", ResourceVersion: rv},
		Spec: cardsv1alpha1.CardEventSinkSpec{Backfill: backfill}, Status: cardsv1alpha1.CardEventSinkStatus{Checkpoint: checkpoint}}
}

// A resend queued each dead letter at resourceVersion 0, which the checkpoint read as "nothing pending": the
// checkpoint jumped to the newest version seen, past the resent state (and, in some map orders, past every
// other pending one), and the letters were cleared before anything was delivered. A new leader would then
// have skipped them all.
func TestResentDeadLettersHoldTheCheckpointUntilDelivered(t *testing.T) {
	card := cardAt("c1", "300", 4)
	d, s := sinkDispatcher(t, sinkAt("100", &cardsv1alpha1.DeliveryCheckpoint{Cards: "500", Transactions: "500"}, false), card)
	s.setLetters([]cardsv1alpha1.DeadLetter{{Kind: "Card", Name: "c1", StateSequence: 4}, {Kind: "Card", Name: "deleted-since", StateSequence: 2}})

	d.resendDeadLetters(t.Context(), s)
	p := s.q.progress([kinds]uint64{600, 600}, 0)
	if p.checkpoint == nil || p.checkpoint.Cards != "299" {
		t.Fatalf("checkpoint after the resend = %+v, want cards 299 (below the resent card at 300)", p.checkpoint)
	}
	if len(s.deadLetters) != 1 || s.deadLetters[0].Name != "c1" {
		t.Fatalf("dead letters after the resend = %+v, want c1 still listed (the deleted card's dropped)", s.deadLetters)
	}

	key := objectKey{kindCard, types.NamespacedName{Namespace: "ns", Name: "c1"}}
	s.q.succeeded(key, sentState{card.UID, 4}, 300, card)
	if len(s.deadLetters) != 0 {
		t.Fatalf("dead letters after the delivery = %+v, want none", s.deadLetters)
	}
	if p := s.q.progress([kinds]uint64{600, 600}, 0); p.checkpoint == nil || p.checkpoint.Cards != "600" {
		t.Fatalf("checkpoint after the delivery = %+v, want cards 600", p.checkpoint)
	}
}

// failingTarget fails every delivery and records what it gave up.
type failingTarget struct {
	maxAttempts int32
	given       []attemptState
}

func (f *failingTarget) retry() (retryPolicy, bool) {
	return retryPolicy{maxAttempts: f.maxAttempts, minB: time.Millisecond, maxB: time.Millisecond}, true
}
func (f *failingTarget) prepare(context.Context, kind, client.Object) (func(context.Context) error, error) {
	return func(context.Context) error { return errors.New("connection refused") }, nil
}
func (f *failingTarget) succeeded(objectKey, client.Object) {}
func (f *failingTarget) gaveUp(_ objectKey, _ client.Object, at attemptState, _ error) {
	f.given = append(f.given, at)
}

// A state with more failed attempts than a lowered retry budget allows used to be settled in silence: no
// dead letter, no Event, nothing to the dead-letter sink. It is given up as any other.
func TestALoweredRetryBudgetGivesUpWhatItCuts(t *testing.T) {
	card := cardAt("c1", "300", 4)
	_, s := sinkDispatcher(t, sinkAt("100", nil, false), card)
	ft := &failingTarget{maxAttempts: 12}
	s.q.t = ft
	key := objectKey{kindCard, types.NamespacedName{Namespace: "ns", Name: "c1"}}
	s.q.enqueue(key, 300, false, false)
	for range 5 {
		s.q.process(key)
	}
	if at := s.q.attempts[key]; at.n != 5 || len(ft.given) != 0 {
		t.Fatalf("after 5 failures: attempts %+v, given up %v", at, ft.given)
	}
	ft.maxAttempts = 3 // the user lowers delivery.retry.maxAttempts
	s.q.process(key)
	if len(ft.given) != 1 || ft.given[0].n != 5 {
		t.Fatalf("given up after the budget was lowered: %+v, want one state after 5 attempts", ft.given)
	}
	if _, pending := s.q.pending[key]; pending {
		t.Fatal("the state given up is still pending")
	}
	s.q.process(key) // a later notice of the same state: settled, not given up twice
	if len(ft.given) != 1 {
		t.Fatalf("given up %d times, want once", len(ft.given))
	}
}

// A sink starts from its own resourceVersion, but the informers may hand on a card's change made after the
// sink's creation before the sink itself: that change was routed to no queue and was never delivered. A new
// sink is now owed, and queued, every change after its creation; its checkpoint waits until they are queued.
func TestANewSinkIsOwedChangesMadeBeforeItWasSeen(t *testing.T) {
	d, s := sinkDispatcher(t, sinkAt("100", nil, false), cardAt("before", "90", 1), cardAt("after", "101", 1))
	if !s.q.backfilling.Load() {
		t.Fatal("a new sink's checkpoint may move before what it is owed is queued")
	}
	d.backfillSink(s)
	after := objectKey{kindCard, types.NamespacedName{Namespace: "ns", Name: "after"}}
	if _, ok := s.q.pending[after]; !ok || len(s.q.pending) != 1 {
		t.Fatalf("pending after the catch-up: %+v, want only the card changed after the sink's creation", s.q.pending)
	}
	if p := s.q.progress([kinds]uint64{101, 0}, 0); p.checkpoint == nil || p.checkpoint.Cards != "100" {
		t.Fatalf("checkpoint = %+v, want cards 100 (below the queued change)", p.checkpoint)
	}
}

// A sink deleted while its transport was being built (nats.Connect dials before it returns) used to keep the
// new connection open for good, reconnecting with the app's credentials. It is closed at once now.
func TestATransportBuiltForADeletedSinkIsClosed(t *testing.T) {
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	cs := sinkAt("100", nil, false)
	cs.Spec.Sink.NATS = &cardsv1alpha1.NATSSink{URLs: []string{srv.ClientURL()}, SubjectPrefix: "cardplane"}
	d, s := sinkDispatcher(t, cs)
	d.Secrets, d.Network, d.SinkPolicy.RecheckInterval = d.Client, &Network{AllowLoopback: true}, time.Minute

	d.mu.Lock()
	s.close() // the sink is deleted (onSink) while configure builds
	d.mu.Unlock()
	d.configure(t.Context(), s)
	deadline := time.Now().Add(5 * time.Second)
	for srv.NumClients() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d NATS connections still open for a deleted sink", srv.NumClients())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.good != nil {
		t.Fatal("a deleted sink was given a configuration")
	}
}

// A replay counted in status.replay.queued every object of the namespace received since the time, also those
// the sink's selector leaves out (and queued them, for the target to drop). It counts what the sink takes.
func TestAReplayCountsOnlyWhatTheSinkTakes(t *testing.T) {
	since := metav1.NewTime(time.Now().Add(-time.Minute))
	labelled := func(name, team string) *cardsv1alpha1.Card {
		c := cardAt(name, "150", 1)
		c.Labels = map[string]string{"team": team}
		c.Status.LastEvent = &cardsv1alpha1.ProviderEvent{ReceivedAt: &since}
		return c
	}
	d, s := sinkDispatcher(t, sinkAt("100", nil, false), labelled("growth-1", "growth"), labelled("risk-1", "risk"))
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"team": "growth"}})
	if err != nil {
		t.Fatal(err)
	}
	s.good = &sinkConfig{selector: sel}
	if err := d.replay(t.Context(), s, since.Add(-time.Second).Format(time.RFC3339Nano)); err != nil {
		t.Fatal(err)
	}
	growth := objectKey{kindCard, types.NamespacedName{Namespace: "ns", Name: "growth-1"}}
	if _, ok := s.q.pending[growth]; s.replay == nil || s.replay.Queued != 1 || !ok || len(s.q.pending) != 1 {
		t.Fatalf("replay %+v, pending %+v: want the growth card only", s.replay, s.q.pending)
	}
}
