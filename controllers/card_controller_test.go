package controllers_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

func setPhase(t *testing.T, card *cardsv1alpha1.Card, phase cardsv1alpha1.CardPhase, reason string) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(card), card); err != nil {
		t.Fatal(err)
	}
	before := card.DeepCopy()
	card.Status.Phase, card.Status.PhaseReason = phase, reason
	if err := k8s.Status().Patch(ctx, card, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
}

func TestCardConditionsAndPhaseEvents(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	startManager(t, ns)
	card := &cardsv1alpha1.Card{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "upay-main-c1"},
		Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: ns, Name: "upay-main"},
			Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: "C1"},
	}
	if err := k8s.Create(ctx, card); err != nil {
		t.Fatal(err)
	}
	conds := func() map[string]string {
		got := &cardsv1alpha1.Card{}
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(card), got)
		out := map[string]string{}
		for _, c := range got.Status.Conditions {
			out[c.Type] = string(c.Status) + "/" + c.Reason
		}
		return out
	}
	waitFor(t, "Ready Unknown before any phase", func() bool { return conds()["Ready"] == "Unknown/PhaseUnknown" })

	setPhase(t, card, cardsv1alpha1.CardActive, "")
	waitFor(t, "Ready True", func() bool {
		c := conds()
		return c["Ready"] == "True/Active" && c["Frozen"] == "False/Active" && c["Closed"] == "False/Active"
	})
	setPhase(t, card, cardsv1alpha1.CardFrozen, "frozen by user")
	waitFor(t, "Frozen True", func() bool {
		c := conds()
		return c["Ready"] == "False/Frozen" && c["Frozen"] == "True/Frozen"
	})
	setPhase(t, card, cardsv1alpha1.CardUnknown, "")
	waitFor(t, "Ready Unknown for a status no adapter knows", func() bool {
		c := conds()
		return c["Ready"] == "Unknown/Unknown" && c["Frozen"] == "False/Unknown"
	})
	setPhase(t, card, cardsv1alpha1.CardClosed, "")
	waitFor(t, "Closed True", func() bool { c := conds(); return c["Closed"] == "True/Closed" && c["Frozen"] == "False/Closed" })

	var msgs []string
	waitFor(t, "one Event per transition", func() bool {
		list := &corev1.EventList{}
		_ = k8s.List(ctx, list, client.InNamespace(card.Namespace))
		msgs = msgs[:0]
		for _, e := range list.Items {
			if e.InvolvedObject.Name == card.Name && strings.HasPrefix(e.Reason, "Card") {
				msgs = append(msgs, e.Reason+": "+e.Message)
			}
		}
		return len(msgs) >= 4
	}, func() { t.Logf("events so far: %q", msgs) })
	all := strings.Join(msgs, "|")
	for _, want := range []string{"CardActive: PhaseUnknown -> Active", "CardFrozen: Active -> Frozen: frozen by user", "CardUnknown: Frozen -> Unknown", "CardClosed: Unknown -> Closed"} {
		if !strings.Contains(all, want) {
			t.Errorf("no Event %q among %q", want, msgs)
		}
	}
	got := &cardsv1alpha1.Card{}
	_ = k8s.Get(ctx, client.ObjectKeyFromObject(card), got)
	if c := apimeta.FindStatusCondition(got.Status.Conditions, "Ready"); c == nil || c.ObservedGeneration != got.Generation {
		t.Errorf("Ready condition does not carry observedGeneration: %+v", c)
	}
}
