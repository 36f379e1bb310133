package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// CardReconciler turns a card's observed phase into conditions and records every phase transition as a
// Kubernetes Event. The last phase it acted on is the Ready condition's reason, so a transition that happened
// while the manager was down is still reported once. Delivery to destinations is projection.Dispatcher's.
type CardReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cards,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cards/status,verbs=get;patch

// Reconcile sets one Card's conditions and writes its status when they changed.
func (r *CardReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	card := &cardsv1alpha1.Card{}
	if err := r.Get(ctx, req.NamespacedName, card); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := card.DeepCopy()
	r.reconcileConditions(card, before)
	return patchStatus(ctx, r.Client, before, card)
}

// reconcileConditions sets the conditions the phase implies and records a phase transition as an Event.
func (r *CardReconciler) reconcileConditions(card, before *cardsv1alpha1.Card) {
	phase := card.Status.Phase
	// A copy: SetStatusCondition below updates the slice in place.
	prev := apimeta.FindStatusCondition(before.Status.Conditions, cardsv1alpha1.ConditionReady)
	for _, c := range CardConditions(card) {
		apimeta.SetStatusCondition(&card.Status.Conditions, c)
	}
	card.Status.ObservedGeneration = card.Generation
	switch {
	case prev != nil && prev.Reason != phaseReason(phase):
		kind := corev1.EventTypeNormal
		if phase == cardsv1alpha1.CardFailed || phase == cardsv1alpha1.CardUnknown {
			kind = corev1.EventTypeWarning
		}
		msg := fmt.Sprintf("%s -> %s", prev.Reason, phaseReason(phase))
		if card.Status.PhaseReason != "" {
			msg += ": " + card.Status.PhaseReason
		}
		// The reason names the new phase: the events API folds Events with equal reasons into one series.
		r.Recorder.Eventf(card, nil, kind, "Card"+string(phase), "ObservePhase", "%s", msg)
	case prev == nil && phase != "":
		r.Recorder.Eventf(card, nil, corev1.EventTypeNormal, "Card"+string(phase), "ObservePhase", "%s", phase)
	}
}

func phaseReason(p cardsv1alpha1.CardPhase) string {
	if p == "" {
		return "PhaseUnknown"
	}
	return string(p)
}

// CardConditions are the conditions a card's phase implies.
func CardConditions(card *cardsv1alpha1.Card) []metav1.Condition {
	phase := card.Status.Phase
	gen := card.Generation
	ready := metav1.Condition{Type: cardsv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: phaseReason(phase), ObservedGeneration: gen}
	switch phase {
	case cardsv1alpha1.CardActive:
		ready.Status, ready.Message = metav1.ConditionTrue, "The card can be used"
	case "":
		ready.Status, ready.Message = metav1.ConditionUnknown, "No lifecycle event received yet"
	case cardsv1alpha1.CardUnknown:
		ready.Status = metav1.ConditionUnknown
		ready.Message = fmt.Sprintf("The provider reported the status %q, which cardplane does not know; authorizations are declined until a known status arrives", card.Status.ProviderStatus)
	default:
		ready.Message = "The card is " + string(phase)
		if card.Status.PhaseReason != "" {
			ready.Message += ": " + card.Status.PhaseReason
		}
	}
	flag := func(t string, on bool, reason string) metav1.Condition {
		c := metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: phaseReason(phase), ObservedGeneration: gen}
		if on {
			c.Status, c.Message = metav1.ConditionTrue, reason
		}
		return c
	}
	return []metav1.Condition{
		ready,
		flag(cardsv1alpha1.ConditionFrozen, phase == cardsv1alpha1.CardFrozen || phase == cardsv1alpha1.CardLocked, card.Status.PhaseReason),
		flag(cardsv1alpha1.ConditionClosed, phase == cardsv1alpha1.CardClosed, card.Status.PhaseReason),
	}
}

// SetupWithManager registers the reconciler.
func (r *CardReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&cardsv1alpha1.Card{}).Named("card").
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).Complete(r)
}
