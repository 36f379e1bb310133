package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// txReceipt is one event as the receiving system itself decoded it: one raw receipt (a request, a record, a
// stream message), never deduplicated.
type txReceipt struct {
	ID, Type, Name string
	Sequence       int64
	// Key is the Kafka record key, Partition its partition; Subject the NATS subject.
	Key       string
	Partition int32
	Subject   string
}

// txReceiver is an external system of one transport on loopback, which can go down and come back on the
// same address with what it stored.
type txReceiver struct {
	start, stop func()
	sink        cardsv1alpha1.SinkSpec
	// received is every receipt so far, in arrival order (Kafka: per partition; NATS: stream order).
	received func() []txReceipt
	// problems is what the receiver refused or found malformed (a bad signature, a wrong ce-source, ...).
	problems func() []string
	// mayRedeliver: the transport may legitimately store one state twice across an outage (see txKafkaReceiver).
	mayRedeliver bool
}

type txReceiverFactory func(t *testing.T, ns, id string) *txReceiver

// txTransactionUpdated is the event type of a CardTransaction state.
const txTransactionUpdated = "transaction.updated"

// TestCardEventSinkTransports runs the same delivery guarantees of a CardEventSink over each transport,
// against real receivers: a Standard Webhooks verifier, the CloudEvents sdk-go HTTP receiver (binary and
// structured), a kfake Kafka cluster read by a franz-go consumer, and an embedded NATS server with JetStream.
func TestCardEventSinkTransports(t *testing.T) {
	kinds := []struct {
		name string
		recv txReceiverFactory
	}{
		{"webhook", txWebhookReceiver},
		{"cloudEvents-binary", txCloudEventsReceiver("Binary")},
		{"cloudEvents-structured", txCloudEventsReceiver("Structured")},
		{"kafka", txKafkaReceiver},
		{"nats", txNATSReceiver},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			// One manager over the kind's namespace and another one, whose cards must never reach it.
			ns, other := newNamespace(t), newNamespace(t)
			startManager(t, ns, other)
			t.Run("everyStateOnceInOrder", func(t *testing.T) { txEveryStateOnce(t, ns, k.recv(t, ns, "order")) })
			t.Run("downThenBack", func(t *testing.T) { txDownThenBack(t, ns, k.recv(t, ns, "outage")) })
			t.Run("filterAdmitsHalf", func(t *testing.T) { txFilterAdmitsHalf(t, ns, k.recv(t, ns, "filter")) })
			t.Run("otherNamespaceNotDelivered", func(t *testing.T) {
				txOtherNamespaceNotDelivered(t, ns, other, k.recv(t, ns, "isolation"))
			})
		})
	}
}

// txDelivery is the delivery policy of every sink here: retries start at 100 ms and stay under 1 s, and a
// state is not given up during the outages these tests make.
func txDelivery() *cardsv1alpha1.DeliveryPolicy {
	return &cardsv1alpha1.DeliveryPolicy{Timeout: &metav1.Duration{Duration: 2 * time.Second},
		Retry: &cardsv1alpha1.RetryPolicy{MaxAttempts: 100, MinBackoff: &metav1.Duration{Duration: 100 * time.Millisecond},
			MaxBackoff: &metav1.Duration{Duration: time.Second}}}
}

// txCreateSink creates a CardEventSink and waits until it is Ready.
func txCreateSink(t *testing.T, ns, name string, spec cardsv1alpha1.CardEventSinkSpec) {
	t.Helper()
	if spec.Delivery == nil {
		spec.Delivery = txDelivery()
	}
	cs := &cardsv1alpha1.CardEventSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	txWaitSink(t, ns, name, "Ready", func(s *cardsv1alpha1.CardEventSinkStatus) bool { return true })
}

// txSinkStatus reads a sink's status.
func txSinkStatus(t *testing.T, ns, name string) *cardsv1alpha1.CardEventSink {
	t.Helper()
	cs := &cardsv1alpha1.CardEventSink{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// txWaitSink waits until the sink is Ready (for its current generation) and cond holds of its status.
func txWaitSink(t *testing.T, ns, name, what string, cond func(*cardsv1alpha1.CardEventSinkStatus) bool) {
	t.Helper()
	var last *cardsv1alpha1.CardEventSink
	waitFor(t, "CardEventSink "+name+": "+what, func() bool {
		last = txSinkStatus(t, ns, name)
		return apimeta.IsStatusConditionTrue(last.Status.Conditions, "Ready") && cond(&last.Status)
	}, func() { t.Logf("status of %s: %+v", name, txStatusString(last)) })
}

func txStatusString(cs *cardsv1alpha1.CardEventSink) string {
	if cs == nil {
		return "<none>"
	}
	s := cs.Status
	b, _ := json.Marshal(struct {
		Conditions                                         []metav1.Condition
		State                                              cardsv1alpha1.DestinationState
		Delivered, Failed, Filtered, DeadLettered, Pending int64
		LastError                                          string
		DeadLetters                                        []cardsv1alpha1.DeadLetter
	}{s.Conditions, s.State, s.Delivered, s.Failed, s.Filtered, s.DeadLettered, s.Pending, s.LastError, s.DeadLetters})
	return string(b)
}

// txCard creates a card with labels and no state yet; observe writes its states.
func txCard(t *testing.T, ns, name string, labels map[string]string) types.UID {
	t.Helper()
	card := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: ns, Name: "orders"},
			Provider: cardsv1alpha1.ProviderAlchemyPay, ProviderCardID: strings.ToUpper(ns + "-" + name)}}
	if err := k8s.Create(context.Background(), card); err != nil {
		t.Fatal(err)
	}
	return card.UID
}

// txTransaction creates a pending CardTransaction of card, at state 1.
func txTransaction(t *testing.T, ns, name, card string) types.UID {
	t.Helper()
	ctx := context.Background()
	txn := &cardsv1alpha1.CardTransaction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cardsv1alpha1.CardTransactionSpec{CardRef: cardsv1alpha1.LocalObjectReference{Name: card},
			Provider: cardsv1alpha1.ProviderAlchemyPay, ProviderTransactionID: ns + "-" + name}}
	if err := k8s.Create(ctx, txn); err != nil {
		t.Fatal(err)
	}
	before := txn.DeepCopy()
	at := metav1.NewMicroTime(time.Now())
	txn.Status.Phase, txn.Status.ObservedAt, txn.Status.StateSequence = cardsv1alpha1.TransactionPending, &at, 1
	txn.Status.Direction, txn.Status.Amount = cardsv1alpha1.Debit, &cardsv1alpha1.Money{Value: "10.25", Currency: "USD"}
	if err := k8s.Status().Patch(ctx, txn, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	return txn.UID
}

// txByName groups receipts by object name, in arrival order.
func txByName(rs []txReceipt) map[string][]txReceipt {
	out := map[string][]txReceipt{}
	for _, r := range rs {
		out[r.Name] = append(out[r.Name], r)
	}
	return out
}

// txHas reports whether name's state seq arrived.
func txHas(rs []txReceipt, name string, seq int64) bool {
	return slices.ContainsFunc(rs, func(r txReceipt) bool { return r.Name == name && r.Sequence == seq })
}

func txSequences(rs []txReceipt) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.Sequence)
	}
	return out
}

// txCheckProblems fails on anything the receiver refused.
func txCheckProblems(t *testing.T, r *txReceiver) {
	t.Helper()
	if p := r.problems(); len(p) > 0 {
		t.Errorf("the receiver refused or found malformed %d receipts: %v", len(p), p)
	}
}

// txCheckTransport checks what only some transports carry: the Kafka record key (the card's UID) and the NATS
// subject.
func txCheckTransport(t *testing.T, r *txReceiver, rc txReceipt, cardUID types.UID) {
	t.Helper()
	if r.sink.Kafka != nil && rc.Key != string(cardUID) {
		t.Errorf("%s: Kafka key %q, want the card's UID %q", rc.ID, rc.Key, cardUID)
	}
	if r.sink.NATS != nil && rc.Subject != r.sink.NATS.SubjectPrefix+"."+rc.Type {
		t.Errorf("%s: NATS subject %q, want %s.%s", rc.ID, rc.Subject, r.sink.NATS.SubjectPrefix, rc.Type)
	}
}

// txEveryStateOnce: three cards walked through four states, paced so that none is coalesced, and a
// transaction: exactly those events arrive, each once, each card's in order.
func txEveryStateOnce(t *testing.T, ns string, r *txReceiver) {
	labels := map[string]string{"scenario": "order"}
	txCreateSink(t, ns, "order", cardsv1alpha1.CardEventSinkSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Sink: r.sink})
	cards := []string{"order-0", "order-1", "order-2"}
	uids := map[string]types.UID{}
	for _, c := range cards {
		uids[c] = txCard(t, ns, c, labels)
	}
	phases := []cardsv1alpha1.CardPhase{cardsv1alpha1.CardActive, cardsv1alpha1.CardFrozen, cardsv1alpha1.CardActive, cardsv1alpha1.CardClosed}
	for i, phase := range phases {
		seq := int64(i + 1)
		for _, c := range cards {
			observe(t, ns, c, phase)
		}
		waitFor(t, fmt.Sprintf("state %d of every card", seq), func() bool {
			rs := r.received()
			for _, c := range cards {
				if !txHas(rs, c, seq) {
					return false
				}
			}
			return true
		}, func() { t.Logf("received %+v", r.received()) })
	}
	txnUID := txTransaction(t, ns, "order-0-txn", "order-0")
	waitFor(t, "the transaction", func() bool { return txHas(r.received(), "order-0-txn", 1) },
		func() { t.Logf("received %+v", r.received()) })
	time.Sleep(time.Second) // nothing more may arrive

	rs := r.received()
	if len(rs) != 13 {
		t.Errorf("received %d events, want 12 card states and 1 transaction state: %+v", len(rs), rs)
	}
	byName := txByName(rs)
	partitions := map[string]int32{}
	for _, c := range cards {
		got := byName[c]
		if fmt.Sprint(txSequences(got)) != "[1 2 3 4]" {
			t.Errorf("card %s: sequences %v, want [1 2 3 4] (each once, in order)", c, txSequences(got))
		}
		for _, rc := range got {
			if want := fmt.Sprintf("%s-%d", uids[c], rc.Sequence); rc.ID != want || rc.Type != "card.updated" {
				t.Errorf("card %s: receipt %+v, want ID %s type card.updated", c, rc, want)
			}
			txCheckTransport(t, r, rc, uids[c])
			if p, ok := partitions[c]; ok && p != rc.Partition {
				t.Errorf("card %s in partitions %d and %d", c, p, rc.Partition)
			}
			partitions[c] = rc.Partition
		}
	}
	got := byName["order-0-txn"]
	if len(got) != 1 || got[0].ID != fmt.Sprintf("%s-1", txnUID) || got[0].Type != txTransactionUpdated {
		t.Errorf("transaction: receipts %+v, want one %s-1 of type transaction.updated", got, txnUID)
	}
	for _, rc := range got {
		txCheckTransport(t, r, rc, uids["order-0"]) // keyed by its card
		if r.sink.Kafka != nil && rc.Partition != partitions["order-0"] {
			t.Errorf("the transaction is in partition %d, its card in %d", rc.Partition, partitions["order-0"])
		}
	}
	txCheckProblems(t, r)
	txWaitSink(t, ns, "order", "Healthy, 13 delivered, nothing pending", func(s *cardsv1alpha1.CardEventSinkStatus) bool {
		return s.State == cardsv1alpha1.DestinationHealthy && s.Delivered == 13 && s.Pending == 0 && s.Failed == 0 && s.DeadLettered == 0
	})
}

// txDownThenBack: the receiver goes down while states are written, and comes back on the same address with
// what it stored; every card's latest state arrives, no card goes backwards, and the sink is Healthy again.
func txDownThenBack(t *testing.T, ns string, r *txReceiver) {
	labels := map[string]string{"scenario": "outage"}
	txCreateSink(t, ns, "outage", cardsv1alpha1.CardEventSinkSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Sink: r.sink})
	cards := []string{"outage-0", "outage-1", "outage-2"}
	uids := map[string]types.UID{}
	for _, c := range cards {
		uids[c] = txCard(t, ns, c, labels)
		observe(t, ns, c, cardsv1alpha1.CardActive)
	}
	waitFor(t, "state 1 of every card", func() bool {
		rs := r.received()
		return txHas(rs, cards[0], 1) && txHas(rs, cards[1], 1) && txHas(rs, cards[2], 1)
	})
	txWaitSink(t, ns, "outage", "3 delivered", func(s *cardsv1alpha1.CardEventSinkStatus) bool { return s.Delivered == 3 && s.Pending == 0 })

	r.stop()
	down := time.Now()
	for _, c := range cards {
		observe(t, ns, c, cardsv1alpha1.CardFrozen)
	}
	txWaitSink(t, ns, "outage", "failures while the receiver is down", func(s *cardsv1alpha1.CardEventSinkStatus) bool {
		return s.Failed > 0 && s.Pending > 0 && s.State != cardsv1alpha1.DestinationHealthy
	})
	for _, phase := range []cardsv1alpha1.CardPhase{cardsv1alpha1.CardActive, cardsv1alpha1.CardClosed} {
		for _, c := range cards {
			observe(t, ns, c, phase)
		}
	}
	txWaitSink(t, ns, "outage", "every card pending", func(s *cardsv1alpha1.CardEventSinkStatus) bool { return s.Pending == 3 })
	// Back within the breaker's first cool-down (5 s), so the probe that follows finds it up.
	time.Sleep(time.Until(down.Add(3 * time.Second)))
	r.start()
	back := time.Now()
	waitFor(t, "the latest state (4) of every card after the outage", func() bool {
		rs := r.received()
		return txHas(rs, cards[0], 4) && txHas(rs, cards[1], 4) && txHas(rs, cards[2], 4)
	}, func() { t.Logf("received %+v", r.received()) })
	t.Logf("delivered again %s after the receiver came back", time.Since(back).Round(100*time.Millisecond))
	time.Sleep(time.Second)

	byName := txByName(r.received())
	for _, c := range cards {
		got := byName[c]
		seqs := txSequences(got)
		for i, rc := range got {
			if want := fmt.Sprintf("%s-%d", uids[c], rc.Sequence); rc.ID != want {
				t.Errorf("card %s: ID %s, want %s", c, rc.ID, want)
			}
			txCheckTransport(t, r, rc, uids[c])
			if i == 0 {
				continue
			}
			prev := got[i-1]
			switch {
			case rc.Sequence > prev.Sequence:
			case rc.ID == prev.ID && r.mayRedeliver:
				t.Logf("card %s: %s stored twice across the outage (a retry after a lost ack)", c, rc.ID)
			default:
				t.Errorf("card %s: sequences %v, want strictly increasing (no state twice, none out of order)", c, seqs)
			}
		}
		if len(seqs) == 0 || seqs[0] != 1 || seqs[len(seqs)-1] != 4 {
			t.Errorf("card %s: sequences %v, want the first state (1) and the latest (4), ending with 4", c, seqs)
		}
	}
	txCheckProblems(t, r)
	txWaitSink(t, ns, "outage", "Healthy again with nothing pending", func(s *cardsv1alpha1.CardEventSinkStatus) bool {
		return s.State == cardsv1alpha1.DestinationHealthy && s.Pending == 0 && s.Failed > 0 && s.DeadLettered == 0 &&
			s.LastFailureTime != nil && s.LastDeliveryTime != nil &&
			!s.LastDeliveryTime.Before(s.LastFailureTime) // status keeps seconds: a failure and the recovery may share one
	})
}

// txFilterAdmitsHalf: a CEL filter admits the cards labelled with an even n; the odd ones are counted as
// filtered and never sent.
func txFilterAdmitsHalf(t *testing.T, ns string, r *txReceiver) {
	txCreateSink(t, ns, "filter", cardsv1alpha1.CardEventSinkSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"scenario": "filter"}},
		Filter:   `int(object.metadata.labels["n"]) % 2 == 0`, Sink: r.sink})
	var want []string
	for i := range 10 {
		name := fmt.Sprintf("filter-%d", i)
		txCard(t, ns, name, map[string]string{"scenario": "filter", "n": fmt.Sprint(i)})
		observe(t, ns, name, cardsv1alpha1.CardActive)
		if i%2 == 0 {
			want = append(want, name)
		}
	}
	txWaitSink(t, ns, "filter", "5 delivered and 5 filtered", func(s *cardsv1alpha1.CardEventSinkStatus) bool {
		return s.Delivered == 5 && s.Filtered == 5 && s.Pending == 0
	})
	time.Sleep(time.Second)
	var got []string
	for _, rc := range r.received() {
		got = append(got, rc.Name)
	}
	slices.Sort(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("received %v, want exactly the even cards %v, each once", got, want)
	}
	txCheckProblems(t, r)
	if s := txSinkStatus(t, ns, "filter").Status; s.Delivered != 5 || s.Filtered != 5 || s.LastError != "" {
		t.Errorf("status %s, want 5 delivered, 5 filtered and no error", txStatusString(txSinkStatus(t, ns, "filter")))
	}
}

// txOtherNamespaceNotDelivered: a sink selecting every card of its namespace does not receive the cards (nor
// transactions) of another namespace the same manager serves, labelled alike.
func txOtherNamespaceNotDelivered(t *testing.T, ns, other string, r *txReceiver) {
	txCreateSink(t, ns, "all", cardsv1alpha1.CardEventSinkSpec{Sink: r.sink})
	labels := map[string]string{"scenario": "isolation"}
	txCard(t, other, "intruder", labels)
	observe(t, other, "intruder", cardsv1alpha1.CardActive)
	txTransaction(t, other, "intruder-txn", "intruder")
	observe(t, other, "intruder", cardsv1alpha1.CardFrozen)
	uid := txCard(t, ns, "own", labels)
	observe(t, ns, "own", cardsv1alpha1.CardActive)
	waitFor(t, "the sink's own card", func() bool { return txHas(r.received(), "own", 1) })
	time.Sleep(time.Second)
	rs := r.received()
	if len(rs) != 1 || rs[0].ID != fmt.Sprintf("%s-1", uid) {
		t.Errorf("received %+v, want only the namespace's own card (another namespace's cards leaked)", rs)
	}
	txCheckProblems(t, r)
	txWaitSink(t, ns, "all", "1 delivered", func(s *cardsv1alpha1.CardEventSinkStatus) bool {
		return s.Delivered == 1 && s.Pending == 0
	})
}

// --- receivers ---

var txSecrets atomic.Int64

// txHTTPServer serves a handler on a loopback address it keeps across restarts.
type txHTTPServer struct {
	t    *testing.T
	h    http.Handler
	addr string
	mu   sync.Mutex
	srv  *http.Server
}

func txServe(t *testing.T, h http.Handler) *txHTTPServer {
	s := &txHTTPServer{t: t, h: h, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *txHTTPServer) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l net.Listener
	var err error
	for range 100 { // the address was ours a moment ago
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.srv = &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second}
	go func(srv *http.Server) { _ = srv.Serve(l) }(s.srv)
}

// stop closes the listener and every connection: the sink finds nothing there.
func (s *txHTTPServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// txWebhookReceiver verifies Standard Webhooks signatures with the destination of projection_test.go (its own
// implementation of the spec), served on a restartable address.
func txWebhookReceiver(t *testing.T, ns, id string) *txReceiver {
	d := newDestination(t)
	d.Close() // its handler is served below, on an address that survives a restart
	srv := txServe(t, d.Config.Handler)
	secret := fmt.Sprintf("tx-webhook-%d", txSecrets.Add(1))
	if err := k8s.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secret,
		Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		StringData: map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret}}); err != nil {
		t.Fatal(err)
	}
	return &txReceiver{start: srv.start, stop: srv.stop,
		sink: cardsv1alpha1.SinkSpec{Webhook: &cardsv1alpha1.WebhookSink{URL: "http://" + srv.addr + "/hooks/" + id,
			SecretRef: cardsv1alpha1.LocalObjectReference{Name: secret}}},
		received: func() []txReceipt {
			d.mu.Lock()
			defer d.mu.Unlock()
			var out []txReceipt
			for _, x := range d.got {
				out = append(out, txReceipt{ID: x.ID, Type: x.Type, Name: x.Name, Sequence: x.Sequence})
			}
			return out
		},
		problems: func() []string {
			d.mu.Lock()
			defer d.mu.Unlock()
			var out []string
			for _, id := range d.rejected {
				out = append(out, "bad signature: "+id)
			}
			return out
		},
	}
}

// txObject is what the receivers read of a delivered object.
type txObject struct {
	Metadata struct{ Name, Namespace string } `json:"metadata"`
	Status   struct {
		StateSequence int64 `json:"stateSequence"`
	} `json:"status"`
}

// txSource is the CloudEvents source of an object of ns: its API path.
func txSource(ns, typ, name string) string {
	resource := "cards"
	if typ == txTransactionUpdated {
		resource = "cardtransactions"
	}
	return fmt.Sprintf("/apis/cards.cardplane.io/v1alpha1/namespaces/%s/%s/%s", ns, resource, name)
}

// txCloudEventsReceiver decodes with the CloudEvents sdk-go HTTP receiver (what Knative and Argo Events use)
// and checks the mode by the requests' Content-Type.
func txCloudEventsReceiver(mode cardsv1alpha1.CloudEventsMode) txReceiverFactory {
	return func(t *testing.T, ns, id string) *txReceiver {
		var mu sync.Mutex
		var got []txReceipt
		var problems []string
		bad := func(format string, a ...any) {
			mu.Lock()
			problems = append(problems, fmt.Sprintf(format, a...))
			mu.Unlock()
		}
		p, err := cehttp.New()
		if err != nil {
			t.Fatal(err)
		}
		h, err := cloudevents.NewHTTPReceiveHandler(context.Background(), p, func(e event.Event) protocol.Result {
			var obj txObject
			if err := e.DataAs(&obj); err != nil {
				bad("%s: data: %v", e.ID(), err)
				return protocol.ResultACK
			}
			typ, ok := strings.CutPrefix(e.Type(), "io.cardplane.")
			if !ok || e.SpecVersion() != "1.0" || e.ID() == "" {
				bad("%s: type %q specversion %q", e.ID(), e.Type(), e.SpecVersion())
			}
			if want := txSource(ns, typ, obj.Metadata.Name); e.Source() != want {
				bad("%s: ce-source %q, want %q", e.ID(), e.Source(), want)
			}
			mu.Lock()
			got = append(got, txReceipt{ID: e.ID(), Type: typ, Name: obj.Metadata.Name, Sequence: obj.Status.StateSequence})
			mu.Unlock()
			return protocol.ResultACK
		})
		if err != nil {
			t.Fatal(err)
		}
		wantCT := "application/json"
		if mode == "Structured" {
			wantCT = "application/cloudevents+json"
		}
		srv := txServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantCT) {
				bad("Content-Type %q, want %s (%s mode)", ct, wantCT, mode)
			}
			if mode == "Structured" && r.Header.Get("ce-id") != "" {
				bad("ce-id header %q in structured mode", r.Header.Get("ce-id"))
			}
			h.ServeHTTP(w, r)
		}))
		return &txReceiver{start: srv.start, stop: srv.stop,
			sink: cardsv1alpha1.SinkSpec{CloudEvents: &cardsv1alpha1.CloudEventsSink{URL: "http://" + srv.addr + "/" + id, Mode: mode}},
			received: func() []txReceipt {
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(got)
			},
			problems: func() []string {
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(problems)
			},
		}
	}
}

// txFreePort is a loopback port nothing listens on (yet).
func txFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const txKafkaTopic = "cardplane.cards"

// txKafkaReceiver is a kfake cluster (4 partitions) keeping its log in a directory, so it comes back on the
// same port with what it stored, read from the start by a plain franz-go consumer.
//
// Kafka may legitimately store one state twice across an outage: the producer is idempotent within its
// session, but a record whose ack was lost when the broker went away (or a record the sink's Send gave up
// waiting for, then sent again once franz-go had failed it) is a second record with the same ce_id. Consumers
// deduplicate on ce_id; the outage scenario tolerates such a repeat only when it is the same ID right after
// itself. The healthy scenario allows none.
func txKafkaReceiver(t *testing.T, ns, id string) *txReceiver {
	port, dir := txFreePort(t), t.TempDir()
	var mu sync.Mutex
	var got []txReceipt
	var problems []string
	var cluster *kfake.Cluster
	var consumer *kgo.Client
	var cancel context.CancelFunc
	var done chan struct{}
	start := func() {
		var err error
		for range 100 {
			if cluster, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir),
				kfake.SeedTopics(4, txKafkaTopic)); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		if consumer, err = kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(txKafkaTopic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got, problems = nil, nil // the log is read again from its start
		mu.Unlock()
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan struct{})
		go func(cl *kgo.Client) {
			defer close(done)
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(rec *kgo.Record) {
					hd := map[string]string{}
					for _, h := range rec.Headers {
						hd[h.Key] = string(h.Value)
					}
					var obj txObject
					err := json.Unmarshal(rec.Value, &obj)
					typ, ok := strings.CutPrefix(hd["ce_type"], "io.cardplane.")
					mu.Lock()
					defer mu.Unlock()
					if err != nil || !ok || hd["ce_source"] != txSource(ns, typ, obj.Metadata.Name) || hd["ce_specversion"] != "1.0" {
						problems = append(problems, fmt.Sprintf("record %s: headers %v, data error %v", hd["ce_id"], hd, err))
					}
					if rec.ProducerID < 0 {
						problems = append(problems, fmt.Sprintf("record %s written without a producer ID: not idempotent", hd["ce_id"]))
					}
					got = append(got, txReceipt{ID: hd["ce_id"], Type: typ, Name: obj.Metadata.Name,
						Sequence: obj.Status.StateSequence, Key: string(rec.Key), Partition: rec.Partition})
				})
			}
		}(consumer)
	}
	running := false
	stop := func() {
		if !running {
			return
		}
		running = false
		cancel()
		<-done
		consumer.Close()
		cluster.Close()
	}
	start()
	running = true
	t.Cleanup(stop)
	return &txReceiver{
		start:        func() { start(); running = true },
		stop:         stop,
		mayRedeliver: true,
		sink:         cardsv1alpha1.SinkSpec{Kafka: &cardsv1alpha1.KafkaSink{Brokers: cluster.ListenAddrs(), Topic: txKafkaTopic}},
		received: func() []txReceipt {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		},
		problems: func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(problems)
		},
	}
}

const txNATSStream = "CARDPLANE"

// txNATSReceiver is an embedded NATS server with JetStream storing in a directory, so it comes back on the same
// port with its stream; the stream is read message by message. JetStream de-duplicates on Nats-Msg-Id within
// its window (2 minutes here, kept in the store across the restart), so the stream must hold every state
// once even when the sink sends one again after a lost ack: raw messages are counted.
func txNATSReceiver(t *testing.T, ns, id string) *txReceiver {
	port, dir := txFreePort(t), t.TempDir()
	var srv *server.Server
	start := func() {
		opts := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
		var err error
		for range 100 {
			if srv, err = server.NewServer(opts); err == nil {
				srv.Start()
				if srv.ReadyForConnections(10 * time.Second) {
					break
				}
				srv.Shutdown()
				err = errors.New("NATS server not ready")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{Name: txNATSStream,
			Subjects: []string{"cardplane.>"}, Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage}); err != nil {
			t.Fatal(err)
		}
	}
	running := false
	stop := func() {
		if running {
			running = false
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}
	start()
	running = true
	t.Cleanup(stop)
	url := srv.ClientURL()
	var mu sync.Mutex
	var problems []string
	return &txReceiver{
		start: func() { start(); running = true },
		stop:  stop,
		sink: cardsv1alpha1.SinkSpec{NATS: &cardsv1alpha1.NATSSink{URLs: []string{url}, SubjectPrefix: "cardplane",
			Stream: txNATSStream}},
		received: func() []txReceipt {
			nc, err := nats.Connect(url)
			if err != nil {
				return nil // down
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := js.Stream(ctx, txNATSStream)
			if err != nil {
				return nil
			}
			info, err := st.Info(ctx)
			if err != nil {
				return nil
			}
			var out []txReceipt
			var bad []string
			for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
				m, err := st.GetMsg(ctx, seq)
				if err != nil {
					return nil
				}
				var obj txObject
				err = json.Unmarshal(m.Data, &obj)
				typ, ok := strings.CutPrefix(m.Header.Get("ce-type"), "io.cardplane.")
				ceID := m.Header.Get("ce-id")
				if err != nil || !ok || m.Header.Get(jetstream.MsgIDHeader) != ceID ||
					m.Header.Get("ce-source") != txSource(ns, typ, obj.Metadata.Name) {
					bad = append(bad, fmt.Sprintf("message %d on %s: headers %v, data error %v", seq, m.Subject, m.Header, err))
				}
				out = append(out, txReceipt{ID: ceID, Type: typ, Name: obj.Metadata.Name,
					Sequence: obj.Status.StateSequence, Subject: m.Subject})
			}
			mu.Lock()
			problems = bad
			mu.Unlock()
			return out
		},
		problems: func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(problems)
		},
	}
}
