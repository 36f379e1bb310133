package ingest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/event"
)

// Holder facts are kept on a CardHolder from the first event that names the holder: KYC usually precedes the
// card, and a refused application never produces one. Cards of the holder link it (status.holderRef) and carry a
// copy of its KYC state, which the authorization rules read as card.kyc.

const (
	maxHolderFailures = 16  // status.failures keeps the latest
	maxHolderCards    = 256 // status.cards lists at most this many
)

// holderNames are the names of an endpoint's card holder.
func holderNames(endpointNamespace, endpointName, uid, holderID string) objectNames {
	return names(endpointName, holderID, endpointNamespace+"/"+endpointName, uid, 253)
}

func (in *Ingester) ensureHolder(ctx context.Context, ep *endpointconfig.Resolved, holderID string) (*cardsv1alpha1.CardHolder, error) {
	ref := cardsv1alpha1.NamespacedObjectReference{Namespace: ep.Endpoint.Namespace, Name: ep.Endpoint.Name}
	return ensure(ctx, in, ep.TargetNamespace, holderNames(ref.Namespace, ref.Name, string(ep.Endpoint.UID), holderID),
		func() *cardsv1alpha1.CardHolder { return &cardsv1alpha1.CardHolder{} },
		func(h *cardsv1alpha1.CardHolder) bool {
			return h.Spec.ProviderHolderID == holderID && h.Spec.EndpointRef == ref
		},
		func(name string) (*cardsv1alpha1.CardHolder, error) {
			h := &cardsv1alpha1.CardHolder{
				ObjectMeta: metav1.ObjectMeta{Namespace: ep.TargetNamespace, Name: name, Labels: map[string]string{
					cardsv1alpha1.LabelProvider: string(ep.Endpoint.Spec.Provider),
					cardsv1alpha1.LabelHolder:   HolderLabel(holderID),
				}},
				Spec: cardsv1alpha1.CardHolderSpec{EndpointRef: ref, Provider: ep.Endpoint.Spec.Provider, ProviderHolderID: holderID},
			}
			if v := labelValue(ep.Endpoint.Name); v != "" {
				h.Labels[cardsv1alpha1.LabelEndpoint] = v
			}
			return h, nil
		})
}

// hasHolderFacts says whether an event carries facts about the holder itself.
func hasHolderFacts(ev *event.Event) bool {
	return ev.KYC != nil || ev.Failure != nil || ev.Risk != nil
}

// applyHolder merges an event's holder facts into st and lists card (when not empty) among the holder's cards.
// lastEvent moves only with the holder's own facts: a transaction of one of its cards does not rewrite it.
func applyHolder(st *cardsv1alpha1.CardHolderStatus, ev *event.Event, card string, at, received time.Time) bool {
	before := st.DeepCopy()
	if k := ev.KYC; k != nil && (st.KYC == nil || newer(st.KYC.ObservedAt, at)) {
		st.KYC = &cardsv1alpha1.KYC{State: k.State, Reason: clip(k.Reason, 512), ProviderStatus: clip(k.ProviderStatus, 64), ObservedAt: micro(at)}
	}
	if r := ev.Risk; r != nil && (st.Risk == nil || newer(st.Risk.ObservedAt, at)) {
		st.Risk = &cardsv1alpha1.RiskAction{Action: clip(r.Action, 64), Reason: clip(r.Reason, 512), ObservedAt: micro(at)}
	}
	if f := ev.Failure; f != nil {
		addFailure(st, cardsv1alpha1.HolderFailure{Kind: clip(f.Kind, 64), Reason: clip(f.Reason, 512),
			ProviderStatus: clip(f.ProviderStatus, 64), RequestID: clip(f.Reference, 128), ObservedAt: micro(at)})
	}
	if card != "" && !slices.Contains(st.Cards, card) && len(st.Cards) < maxHolderCards {
		st.Cards = append(st.Cards, card)
		slices.Sort(st.Cards)
		st.CardCount = int32(len(st.Cards))
	}
	factsChanged := !equality.Semantic.DeepEqual(before, st)
	if hasHolderFacts(ev) {
		recordLastEvent(&st.LastEvent, ev, at, received, factsChanged)
	}
	return factsChanged || !equality.Semantic.DeepEqual(before.LastEvent, st.LastEvent)
}

// addFailure appends a failure once (a duplicate callback adds nothing), keeping the latest maxHolderFailures.
func addFailure(st *cardsv1alpha1.CardHolderStatus, f cardsv1alpha1.HolderFailure) {
	for _, have := range st.Failures {
		if have.Kind == f.Kind && have.RequestID == f.RequestID && have.ProviderStatus == f.ProviderStatus &&
			have.Reason == f.Reason && have.ObservedAt.Equal(f.ObservedAt) {
			return
		}
	}
	st.Failures = append(st.Failures, f)
	if n := len(st.Failures); n > maxHolderFailures {
		st.Failures = slices.Clone(st.Failures[n-maxHolderFailures:])
	}
}

// linkHolder points a card at its holder and copies the holder's KYC when it is newer than the card's.
func linkHolder(st *cardsv1alpha1.CardStatus, h *cardsv1alpha1.CardHolder) bool {
	if h == nil {
		return false
	}
	changed := false
	if st.HolderRef == nil || st.HolderRef.Name != h.Name {
		st.HolderRef, changed = &cardsv1alpha1.LocalObjectReference{Name: h.Name}, true
	}
	if k := h.Status.KYC; k != nil && k.ObservedAt != nil && (st.KYC == nil || newer(st.KYC.ObservedAt, k.ObservedAt.Time)) &&
		!equality.Semantic.DeepEqual(st.KYC, k) {
		st.KYC, changed = k.DeepCopy(), true
	}
	return changed
}

// updateHolder writes mutate's changes to the holder's status (patchStatus).
func (in *Ingester) updateHolder(ctx context.Context, h *cardsv1alpha1.CardHolder, mutate func(*cardsv1alpha1.CardHolderStatus) bool) (bool, error) {
	return in.patchStatus(ctx, "card holder", h, func() bool { return mutate(&h.Status) })
}

// holderFor records the event's holder facts, and the card among the holder's cards, on the event's holder;
// nil when the event names no holder. It writes only when something changed, so the transactions of a known
// card cost a cache read here and no write.
func (in *Ingester) holderFor(ctx context.Context, ep *endpointconfig.Resolved, ev *event.Event, card string, at, received time.Time) (*cardsv1alpha1.CardHolder, bool, error) {
	if ev.HolderID == "" {
		return nil, false, nil
	}
	h, err := in.ensureHolder(ctx, ep, ev.HolderID)
	if err != nil {
		return nil, false, err
	}
	changed, err := in.updateHolder(ctx, h, func(st *cardsv1alpha1.CardHolderStatus) bool {
		return applyHolder(st, ev, card, at, received)
	})
	return h, changed, err
}

// applyToHolder records holder-level facts (no card ID) on the holder, then applies the event's card facts (a
// freeze of the whole account) and KYC to every card the holder has.
func (in *Ingester) applyToHolder(ctx context.Context, ep *endpointconfig.Resolved, ev *event.Event, at, received time.Time, res *Result) error {
	h, changed, err := in.holderFor(ctx, ep, ev, "", at, received)
	if err != nil {
		return err
	}
	res.Holder, res.Changed = h, changed
	if ev.Card == nil && ev.KYC == nil {
		return nil // nothing for the cards (a failure, a risk note): their lastEvent stays theirs
	}
	list := &cardsv1alpha1.CardList{}
	if err := in.Client.List(ctx, list, client.InNamespace(ep.TargetNamespace), client.MatchingLabels{
		cardsv1alpha1.LabelHolder: HolderLabel(ev.HolderID),
	}); err != nil {
		return fmt.Errorf("listing cards of a holder: %w", err)
	}
	for i := range list.Items {
		card := &list.Items[i]
		if card.Spec.EndpointRef.Namespace != ep.Endpoint.Namespace || card.Spec.EndpointRef.Name != ep.Endpoint.Name {
			continue
		}
		changed, err := in.updateCard(ctx, card, func(st *cardsv1alpha1.CardStatus) bool {
			c := applyCard(st, ev, at, received)
			return linkHolder(st, h) || c
		})
		if err != nil {
			return err
		}
		res.Changed = res.Changed || changed
		res.Cards = append(res.Cards, card)
	}
	return nil
}
