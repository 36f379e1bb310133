package webhookserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapters"
	"github.com/cardplane/cardplane/webhookserver/event"
	"github.com/cardplane/cardplane/webhookserver/ingest"
)

// holderFixture is an endpoint and an ingester writing through the real API server.
type holderFixture struct {
	t  *testing.T
	ep *endpointconfig.Resolved
	in *ingest.Ingester
}

func newHolderFixture(t *testing.T) *holderFixture {
	ns := newNamespace(t)
	ep := &cardsv1alpha1.WebhookEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "issuer", UID: "u-1"},
		Spec:       cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderBananaTech},
	}
	return &holderFixture{t: t, ep: &endpointconfig.Resolved{Endpoint: ep, TargetNamespace: ns},
		in: &ingest.Ingester{Client: k8s, APIReader: k8s}}
}

func (f *holderFixture) apply(ev event.Event) *ingest.Result {
	f.t.Helper()
	if err := ingest.Fit(&ev); err != nil {
		f.t.Fatal(err)
	}
	res, err := f.in.Apply(context.Background(), f.ep, &ev, time.Now())
	if err != nil {
		f.t.Fatalf("%s: %v", ev.Type, err)
	}
	return res
}

func (f *holderFixture) holder(name string) *cardsv1alpha1.CardHolder {
	f.t.Helper()
	h := &cardsv1alpha1.CardHolder{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ep.TargetNamespace, Name: name}, h); err != nil {
		f.t.Fatalf("card holder %s: %v", name, err)
	}
	return h
}

// The receiver once answered holder facts without a card NoCardForHolder and stored nothing: KYC, which
// precedes the card, and refused applications, which never produce one, were lost.
func TestHolderFactsAreKeptBeforeAnyCard(t *testing.T) {
	f := newHolderFixture(t)
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

	res := f.apply(event.Event{Type: "USER_CREATE_RESULT", ID: "e1", OccurredAt: t0, HolderID: "U-77",
		KYC: &event.KYC{State: cardsv1alpha1.KYCApproved}})
	if res.Holder == nil || !res.Changed {
		t.Fatalf("KYC without a card: got %+v, want a written holder", res)
	}
	h := f.holder(res.Holder.Name)
	if h.Spec.ProviderHolderID != "U-77" || h.Status.KYC == nil || h.Status.KYC.State != cardsv1alpha1.KYCApproved {
		t.Fatalf("holder after KYC: %+v %+v", h.Spec, h.Status)
	}

	f.apply(event.Event{Type: "CARD_APPLY_RESULT", ID: "e2", OccurredAt: t0.Add(time.Minute), HolderID: "U-77",
		Failure: &event.Failure{Kind: "CARD_APPLY_RESULT", ProviderStatus: "FAILED", Reason: "card bin sold out", Reference: "REQ-1"}})
	dup := f.apply(event.Event{Type: "CARD_APPLY_RESULT", ID: "e2", OccurredAt: t0.Add(time.Minute), HolderID: "U-77",
		Failure: &event.Failure{Kind: "CARD_APPLY_RESULT", ProviderStatus: "FAILED", Reason: "card bin sold out", Reference: "REQ-1"}})
	if dup.Changed {
		t.Error("a duplicate failure changed the holder")
	}
	h = f.holder(res.Holder.Name)
	if len(h.Status.Failures) != 1 || h.Status.Failures[0].Reason != "card bin sold out" || h.Status.Failures[0].RequestID != "REQ-1" {
		t.Fatalf("failures: %+v", h.Status.Failures)
	}

	// The card arrives later: it links the holder and carries the holder's KYC, which rules read as card.kyc.
	out := f.apply(event.Event{Type: "CARD_APPLY_RESULT", ID: "e3", OccurredAt: t0.Add(2 * time.Minute), CardID: "C-1", HolderID: "U-77",
		Card: &event.Card{Phase: cardsv1alpha1.CardActive, Type: cardsv1alpha1.CardVirtual}})
	card := getCard(t, f.ep.TargetNamespace, out.Cards[0].Name)
	if card.Status.HolderRef == nil || card.Status.HolderRef.Name != h.Name {
		t.Errorf("card holderRef = %+v, want %s", card.Status.HolderRef, h.Name)
	}
	if card.Status.KYC == nil || card.Status.KYC.State != cardsv1alpha1.KYCApproved {
		t.Errorf("card kyc = %+v, want the holder's Approved", card.Status.KYC)
	}
	h = f.holder(h.Name)
	if len(h.Status.Cards) != 1 || h.Status.Cards[0] != card.Name || h.Status.CardCount != 1 {
		t.Errorf("holder cards = %v (%d), want [%s]", h.Status.Cards, h.Status.CardCount, card.Name)
	}
	if h.Status.LastEvent == nil || h.Status.LastEvent.ID != "e2" {
		t.Errorf("holder lastEvent = %+v; a card event without holder facts must not move it", h.Status.LastEvent)
	}

	// A holder-level failure after the card exists concerns the holder only: the card's lastEvent stays its own.
	f.apply(event.Event{Type: "CARD_APPLY_RESULT", ID: "e3b", OccurredAt: t0.Add(150 * time.Second), HolderID: "U-77",
		Failure: &event.Failure{ProviderStatus: "FAILED", Reason: "second card refused", Reference: "REQ-2"}})
	if got := getCard(t, f.ep.TargetNamespace, card.Name); got.Status.LastEvent == nil || got.Status.LastEvent.ID != "e3" {
		t.Errorf("card lastEvent after a holder failure = %+v, want e3", got.Status.LastEvent)
	}

	// An account-wide freeze names no card: every card of the holder is frozen, and the holder keeps the action.
	f.apply(event.Event{Type: "RISK_CONTROL", ID: "e4", OccurredAt: t0.Add(3 * time.Minute), HolderID: "U-77",
		Risk: &event.RiskAction{Action: "FREEZE_ACCOUNT", Reason: "chargeback ratio"},
		Card: &event.Card{Phase: cardsv1alpha1.CardFrozen, ProviderStatus: "FREEZE_ACCOUNT", Reason: "chargeback ratio"}})
	card = getCard(t, f.ep.TargetNamespace, card.Name)
	if card.Status.Phase != cardsv1alpha1.CardFrozen {
		t.Errorf("card phase after an account freeze = %s, want Frozen", card.Status.Phase)
	}
	if h = f.holder(h.Name); h.Status.Risk == nil || h.Status.Risk.Action != "FREEZE_ACCOUNT" {
		t.Errorf("holder risk = %+v", h.Status.Risk)
	}
}

// A failure that names neither a card nor a holder cannot be kept on an object: the ingester hands it back
// for the receiver to record, and writes nothing.
func TestAFailureWithoutHolderIsHandedBack(t *testing.T) {
	f := newHolderFixture(t)
	res := f.apply(event.Event{Type: "CARDHOLDER_APPROVAL", ID: "x", Failure: &event.Failure{ProviderStatus: "REJECTED", Reason: "document expired", Reference: "REQ-9"}})
	if res.Orphan == nil || res.Orphan.Kind != "CARDHOLDER_APPROVAL" || res.Orphan.Reference != "REQ-9" || res.Changed {
		t.Fatalf("got %+v, want the failure handed back (kind from the event type) and nothing written", res)
	}
	if _, err := f.in.Apply(context.Background(), f.ep, &event.Event{Type: "PING"}, time.Now()); err == nil {
		t.Error("an event with no card, holder or failure was accepted")
	}
}

// Reconciliation facts the adapters once dropped land on the objects, exactly; an unknown status is stored
// verbatim with the neutral phase the API accepts.
func TestReferencesFeesAndUnknownStatusesAreStored(t *testing.T) {
	f := newHolderFixture(t)
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	usd := func(v string) cardsv1alpha1.Money {
		return cardsv1alpha1.Money{Value: cardsv1alpha1.Decimal(v), Currency: "USD"}
	}
	fee := usd("1.30")
	res := f.apply(event.Event{Type: "consume", ID: "o-1", OccurredAt: at, CardID: "C-2",
		Card:    &event.Card{Phase: cardsv1alpha1.CardUnknown, ProviderStatus: "HIBERNATING", References: map[string]string{"dispatchTime": "2026-11-29 08:00:00"}, Amounts: map[string]cardsv1alpha1.Money{"closeRefund": usd("4.20")}},
		Balance: &event.Balance{Available: usd("95.70")},
		Transaction: &event.Transaction{ID: "T-1", Type: cardsv1alpha1.TransactionPurchase, Phase: cardsv1alpha1.TransactionUnknown, ProviderStatus: "7",
			Direction: cardsv1alpha1.Debit, Amount: &cardsv1alpha1.Money{Value: "27.10", Currency: "EUR"}, BillingAmount: ptr(usd("30.00")), Fee: &fee,
			Fees:         []cardsv1alpha1.FeeComponent{{Name: "transactionFee", Amount: usd("1.00")}, {Name: "fxFee", Amount: usd("0.30")}},
			ExchangeRate: "1.107011070110701107", References: map[string]string{"thirdOrderNo": "TP-9", "trace": "000123"}}})
	card := getCard(t, f.ep.TargetNamespace, res.Cards[0].Name)
	if card.Status.Phase != cardsv1alpha1.CardUnknown || card.Status.ProviderStatus != "HIBERNATING" {
		t.Errorf("card phase %s (%s), want Unknown (HIBERNATING)", card.Status.Phase, card.Status.ProviderStatus)
	}
	if card.Status.ProviderFields["dispatchTime"] != "2026-11-29 08:00:00" || len(card.Status.ProviderAmounts) != 1 ||
		card.Status.ProviderAmounts[0] != (cardsv1alpha1.NamedAmount{Name: "closeRefund", Amount: usd("4.20")}) {
		t.Errorf("card fields %v amounts %v", card.Status.ProviderFields, card.Status.ProviderAmounts)
	}
	if b := card.Status.Balance; b == nil || b.Available != usd("95.70") || b.Event != "consume" || !b.ObservedAt.Time.Equal(at) {
		t.Errorf("balance = %+v, want 95.70 USD as of consume at %s", b, at)
	}
	txn := &cardsv1alpha1.CardTransaction{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(res.Transaction), txn); err != nil {
		t.Fatal(err)
	}
	st := txn.Status
	if st.Phase != cardsv1alpha1.TransactionUnknown || st.ExchangeRate != "1.107011070110701107" || len(st.Fees) != 2 || st.Fees[1].Name != "fxFee" ||
		st.ProviderFields["thirdOrderNo"] != "TP-9" || st.ProviderFields["trace"] != "000123" {
		t.Errorf("transaction status = %+v", st)
	}
	if st.CountedAt != nil || card.Status.Totals != nil {
		t.Error("a transaction in an unknown state was counted in the totals")
	}
}

func ptr[T any](v T) *T { return &v }

// A Prepaidify KYC rejection names only its request (requestNo), never a holder or card: it used to be
// refused or lost. Through the real receiver it is acknowledged and recorded as a Warning Event on the
// endpoint with the provider's status and reference.
func TestAFailureWithoutHolderIsAnEndpointEvent(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	ep := applySampleEndpoints(t, ns)[cardsv1alpha1.ProviderPrepaidify]
	cfg, err := endpointconfig.Resolve(ctx, k8s, ep)
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := adapters.Encoders()[cardsv1alpha1.ProviderPrepaidify](cfg, []byte(`{"kycStatus":"rejected","requestNo":"REQ-4711"}`), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := "/webhooks/" + ns + "/" + ep.Name
	if cfg.URLToken != "" {
		path += "/" + cfg.URLToken
	}
	if r := post(t, path, h, body); r.status != 200 {
		t.Fatalf("answered %d %s, want 200", r.status, r.body)
	}
	waitFor(t, "a FailureWithoutHolder Event naming REQ-4711", func() bool {
		list := &corev1.EventList{}
		_ = k8s.List(ctx, list, client.InNamespace(ns))
		for _, e := range list.Items {
			if e.Reason == cardsv1alpha1.EventFailureWithoutHolder && e.InvolvedObject.Name == ep.Name &&
				strings.Contains(e.Message, "REQ-4711") && strings.Contains(e.Message, "rejected") {
				return true
			}
		}
		return false
	})
}
