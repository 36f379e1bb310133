package controllers_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// destinationSecret is a Standard Webhooks secret: "whsec_" + base64 of the key bytes.
const destinationSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// destination is an external system on loopback. It verifies every delivery with its own implementation of
// the Standard Webhooks spec (not cardplane's) and records the verified ones.
type destination struct {
	*httptest.Server
	mu       sync.Mutex
	got      []delivery
	rejected []string
	// fail answers 500 to the first fail[name] deliveries for object name.
	fail map[string]int
}

type delivery struct {
	ID, Type, Name string
	Sequence       int64
	Phase          string
}

func newDestination(t *testing.T) *destination {
	d := &destination{fail: map[string]int{}}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(destinationSecret, "whsec_"))
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		sec, _ := strconv.ParseInt(ts, 10, 64)
		d.mu.Lock()
		defer d.mu.Unlock()
		if !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			d.rejected = append(d.rejected, id)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var env struct {
			Type string `json:"type"`
			Data struct {
				Metadata struct{ Name string } `json:"metadata"`
				Status   struct {
					Phase         string `json:"phase"`
					StateSequence int64  `json:"stateSequence"`
				} `json:"status"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &env)
		name := env.Data.Metadata.Name
		if d.fail[name] > 0 {
			d.fail[name]--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		d.got = append(d.got, delivery{id, env.Type, name, env.Data.Status.StateSequence, env.Data.Status.Phase})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *destination) deliveries(name string) []delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []delivery
	for _, x := range d.got {
		if x.Name == name {
			out = append(out, x)
		}
	}
	return out
}

// projectionEndpoint creates an endpoint in ns with one destination pointing at d.
func projectionEndpoint(t *testing.T, ns string, d *destination, retry *cardsv1alpha1.RetryPolicy) *cardsv1alpha1.WebhookEndpoint {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger", Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}},
		StringData: map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: destinationSecret}}); err != nil {
		t.Fatal(err)
	}
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderAlchemyPay,
			Verification: &cardsv1alpha1.Verification{SourceCIDRs: []string{"127.0.0.0/8"}},
			Destinations: []cardsv1alpha1.Destination{{Name: "ledger", URL: d.URL + "/hooks",
				SecretRef: cardsv1alpha1.LocalObjectReference{Name: "ledger"}, Retry: retry}}}}
	if err := k8s.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

// observe writes a card state the way the receiver does: absolute status, stateSequence + 1.
func observe(t *testing.T, ns, name string, phase cardsv1alpha1.CardPhase) {
	t.Helper()
	observeAt(t, ns, name, phase, time.Time{})
}

// observeAt is observe with status.lastEvent.receivedAt set to receivedAt (unless zero); it returns the card
// as written.
func observeAt(t *testing.T, ns, name string, phase cardsv1alpha1.CardPhase, receivedAt time.Time) *cardsv1alpha1.Card {
	t.Helper()
	ctx := context.Background()
	card := &cardsv1alpha1.Card{}
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, card)
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	if err != nil {
		card = &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: ns, Name: "orders"},
				Provider: cardsv1alpha1.ProviderAlchemyPay, ProviderCardID: strings.ToUpper(name)}}
		if err := k8s.Create(ctx, card); err != nil {
			t.Fatal(err)
		}
	}
	for {
		before := card.DeepCopy()
		card.Status.Phase = phase
		card.Status.StateSequence++
		if !receivedAt.IsZero() {
			at := metav1.NewTime(receivedAt)
			card.Status.LastEvent = &cardsv1alpha1.ProviderEvent{Type: "CSC_STATUS_CHANGE", ReceivedAt: &at}
		}
		err := k8s.Status().Patch(ctx, card, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			return card
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(card), card); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProjectionDeliversEveryStateSignedAndOnce(t *testing.T) {
	ns := newNamespace(t)
	d := newDestination(t)
	projectionEndpoint(t, ns, d, nil)
	startManager(t, ns)

	observe(t, ns, "c1", cardsv1alpha1.CardActive)
	waitFor(t, "state 1 delivered", func() bool { return len(d.deliveries("c1")) == 1 })
	observe(t, ns, "c1", cardsv1alpha1.CardFrozen)
	waitFor(t, "state 2 delivered", func() bool { return len(d.deliveries("c1")) == 2 })
	time.Sleep(time.Second) // nothing more may arrive
	got := d.deliveries("c1")
	card := &cardsv1alpha1.Card{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "c1"}, card)
	want := []delivery{
		{fmt.Sprintf("%s-1", card.UID), "card.updated", "c1", 1, "Active"},
		{fmt.Sprintf("%s-2", card.UID), "card.updated", "c1", 2, "Frozen"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(d.rejected) != 0 {
		t.Errorf("deliveries = %+v (rejected %v), want %+v", got, d.rejected, want)
	}
	// Nothing is written on the card: the destination's state is the endpoint's.
	waitFor(t, "the ledger destination Healthy with nothing pending", func() bool {
		s := destinationStatus(t, ns, "ledger")
		return s != nil && s.State == cardsv1alpha1.DestinationHealthy && s.Pending == 0 && s.Checkpoint != nil && s.LastDeliveryTime != nil
	})
}

// destinationStatus reads the status of one destination of the endpoint "orders" in ns.
func destinationStatus(t *testing.T, ns, name string) *cardsv1alpha1.DestinationStatus {
	t.Helper()
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "orders"}, ep); err != nil {
		t.Fatal(err)
	}
	for i := range ep.Status.Destinations {
		if ep.Status.Destinations[i].Name == name {
			return &ep.Status.Destinations[i]
		}
	}
	return nil
}

func TestProjectionRetriesThenDelivers(t *testing.T) {
	ns := newNamespace(t)
	d := newDestination(t)
	d.fail["c2"] = 3
	projectionEndpoint(t, ns, d, &cardsv1alpha1.RetryPolicy{MinBackoff: &metav1.Duration{Duration: 100 * time.Millisecond}})
	startManager(t, ns)
	observe(t, ns, "c2", cardsv1alpha1.CardActive)
	waitFor(t, "delivery after three 500s", func() bool { return len(d.deliveries("c2")) == 1 })
	waitFor(t, "the destination Healthy again, its last failure kept", func() bool {
		s := destinationStatus(t, ns, "ledger")
		return s != nil && s.State == cardsv1alpha1.DestinationHealthy && s.Pending == 0 && s.LastFailureTime != nil &&
			s.LastError == "destination answered 500"
	})
}

func TestProjectionBudgetExhaustedThenRedeliveredOnDemand(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	d := newDestination(t)
	d.fail["c3"] = 1000
	projectionEndpoint(t, ns, d, &cardsv1alpha1.RetryPolicy{MaxAttempts: 2, MinBackoff: &metav1.Duration{Duration: 50 * time.Millisecond}})
	startManager(t, ns)
	observe(t, ns, "c3", cardsv1alpha1.CardActive)
	card := &cardsv1alpha1.Card{}
	waitFor(t, "ProjectionFailed", func() bool {
		_ = k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c3"}, card)
		return apimeta.IsStatusConditionTrue(card.Status.Conditions, cardsv1alpha1.ConditionProjectionFailed)
	})
	waitFor(t, "a ProjectionFailed Event", func() bool {
		list := &corev1.EventList{}
		_ = k8s.List(ctx, list, client.InNamespace(ns))
		for _, e := range list.Items {
			if e.Reason == "ProjectionFailed" && e.InvolvedObject.Name == "c3" {
				return true
			}
		}
		return false
	})

	// The destination recovers; an operator asks for redelivery.
	d.mu.Lock()
	d.fail["c3"] = 0
	d.mu.Unlock()
	before := card.DeepCopy()
	card.Annotations = map[string]string{cardsv1alpha1.AnnotationRedeliver: "1"}
	if err := k8s.Patch(ctx, card, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redelivery", func() bool { return len(d.deliveries("c3")) == 1 })
	waitFor(t, "ProjectionFailed cleared and annotation removed", func() bool {
		_ = k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c3"}, card)
		_, annotated := card.Annotations[cardsv1alpha1.AnnotationRedeliver]
		return !annotated && apimeta.IsStatusConditionFalse(card.Status.Conditions, cardsv1alpha1.ConditionProjectionFailed)
	})
}

// TestProjectionSurvivesRestart: state changes made while the operator is down are all delivered once it is
// back, and what was delivered before is not sent again, because the endpoint's status keeps a checkpoint.
func TestProjectionSurvivesRestart(t *testing.T) {
	ns := newNamespace(t)
	d := newDestination(t)
	projectionEndpoint(t, ns, d, nil)
	stop := startManager(t, ns)
	observe(t, ns, "steady", cardsv1alpha1.CardActive)
	observe(t, ns, "c4", cardsv1alpha1.CardActive)
	waitFor(t, "first deliveries", func() bool { return len(d.deliveries("c4")) == 1 && len(d.deliveries("steady")) == 1 })
	card := &cardsv1alpha1.Card{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "c4"}, card)
	rv, _ := strconv.ParseUint(card.ResourceVersion, 10, 64)
	waitFor(t, "the checkpoint past both cards", func() bool {
		s := destinationStatus(t, ns, "ledger")
		if s == nil || s.Checkpoint == nil {
			return false
		}
		cp, _ := strconv.ParseUint(s.Checkpoint.Cards, 10, 64)
		return cp >= rv
	})
	stop()

	for i := 0; i < 5; i++ {
		observe(t, ns, fmt.Sprintf("b%d", i), cardsv1alpha1.CardActive)
	}
	observe(t, ns, "c4", cardsv1alpha1.CardFrozen)
	startManager(t, ns)
	waitFor(t, "backlog delivered", func() bool {
		for i := 0; i < 5; i++ {
			if len(d.deliveries(fmt.Sprintf("b%d", i))) != 1 {
				return false
			}
		}
		return len(d.deliveries("c4")) == 2
	})
	if last := d.deliveries("c4")[1]; last.Sequence != 2 || last.Phase != "Frozen" {
		t.Errorf("after restart delivered %+v, want sequence 2 Frozen", last)
	}
	time.Sleep(time.Second)
	if got := d.deliveries("steady"); len(got) != 1 {
		t.Errorf("a card unchanged across the restart was delivered %d times, want once: %+v", len(got), got)
	}
}

func TestRetentionDeletesOnlyOldSettledTransactions(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	d := newDestination(t)
	ep := projectionEndpoint(t, ns, d, nil)
	before := ep.DeepCopy()
	ep.Spec.TransactionRetention = &metav1.Duration{Duration: time.Hour}
	if err := k8s.Patch(ctx, ep, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	observe(t, ns, "c5", cardsv1alpha1.CardActive)
	card := &cardsv1alpha1.Card{}
	_ = k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c5"}, card)
	mk := func(name string, phase cardsv1alpha1.TransactionPhase, age time.Duration) {
		txn := &cardsv1alpha1.CardTransaction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: cardsv1alpha1.CardTransactionSpec{CardRef: cardsv1alpha1.LocalObjectReference{Name: "c5"},
				Provider: cardsv1alpha1.ProviderAlchemyPay, ProviderTransactionID: name}}
		if err := k8s.Create(ctx, txn); err != nil {
			t.Fatal(err)
		}
		b := txn.DeepCopy()
		at := metav1.NewMicroTime(time.Now().Add(-age))
		txn.Status.Phase, txn.Status.ObservedAt, txn.Status.StateSequence = phase, &at, 1
		txn.Status.Direction, txn.Status.Amount = cardsv1alpha1.Debit, &cardsv1alpha1.Money{Value: "10.25", Currency: "USD"}
		if err := k8s.Status().Patch(ctx, txn, client.MergeFrom(b)); err != nil {
			t.Fatal(err)
		}
	}
	// Created before the manager starts: its creation time is now, so only observedAt makes them old.
	mk("old-completed", cardsv1alpha1.TransactionCompleted, 2*time.Hour)
	mk("old-pending", cardsv1alpha1.TransactionPending, 2*time.Hour)
	mk("new-completed", cardsv1alpha1.TransactionCompleted, time.Minute)
	startManager(t, ns)
	exists := func(name string) bool {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cardsv1alpha1.CardTransaction{}) == nil
	}
	waitFor(t, "the old settled transaction deleted", func() bool { return !exists("old-completed") })
	waitFor(t, "the others delivered", func() bool {
		return len(d.deliveries("old-pending")) == 1 && len(d.deliveries("new-completed")) == 1
	})
	if !exists("old-pending") || !exists("new-completed") {
		t.Error("retention deleted a pending or a recent transaction")
	}
	// The card keeps the running totals of both settled transactions, the deleted one included.
	waitFor(t, "totals", func() bool {
		_ = k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c5"}, card)
		return card.Status.Totals != nil && card.Status.Totals.Transactions == 2
	})
	if tt := card.Status.Totals; tt.Spent != "20.50" || tt.Currency != "USD" {
		t.Errorf("totals = %+v, want 20.50 USD spent over 2 transactions", tt)
	}
}

// TestAForgedCardIsNotProjected: a Card created in one team's namespace that names another team's endpoint
// (which writes to its own namespace) is not delivered to that team's destinations. (Before, the leader sent
// the made-up card to them, signed with their secret.)
func TestAForgedCardIsNotProjected(t *testing.T) {
	victim, attacker := newNamespace(t), newNamespace(t)
	d := newDestination(t)
	projectionEndpoint(t, victim, d, nil)
	startManager(t, victim, attacker)
	ctx := context.Background()
	forged := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: attacker, Name: "made-up"},
		Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: victim, Name: "orders"},
			Provider: cardsv1alpha1.ProviderAlchemyPay, ProviderCardID: "MADE-UP"}}
	if err := k8s.Create(ctx, forged); err != nil {
		t.Fatal(err)
	}
	before := forged.DeepCopy()
	forged.Status.Phase, forged.Status.StateSequence = cardsv1alpha1.CardActive, 1
	if err := k8s.Status().Patch(ctx, forged, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	observe(t, victim, "real", cardsv1alpha1.CardActive) // the endpoint's own card, delivered
	waitFor(t, "the real card delivered", func() bool { return len(d.deliveries("real")) == 1 })
	time.Sleep(time.Second)
	if got := d.deliveries("made-up"); len(got) != 0 {
		t.Errorf("the forged card was delivered to the victim's destination: %+v", got)
	}
}
