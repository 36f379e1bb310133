package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// DefaultTransactionRetention is how long settled or failed transactions are kept when the endpoint does not say.
const DefaultTransactionRetention = 90 * 24 * time.Hour

// CardTransactionReconciler projects transaction states to the endpoint's destinations and deletes settled or
// failed transactions older than the endpoint's retention, so etcd does not grow without bound.
type CardTransactionReconciler struct {
	client.Client
	// Projector delivers transaction states; nil disables projection.
	Projector *Projector
	Now       func() time.Time
}

// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cardtransactions,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cardtransactions/status,verbs=get;patch

// Reconcile projects and expires one CardTransaction.
func (r *CardTransactionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	txn := &cardsv1alpha1.CardTransaction{}
	if err := r.Get(ctx, req.NamespacedName, txn); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ep, err := r.endpoint(ctx, txn)
	if err != nil {
		return ctrl.Result{}, err
	}

	retention := DefaultTransactionRetention
	if ep != nil && ep.Spec.TransactionRetention != nil && ep.Spec.TransactionRetention.Duration > 0 {
		retention = ep.Spec.TransactionRetention.Duration
	}
	var expireIn time.Duration
	if Settled(txn.Status.Phase) {
		// Age counts from the provider time of the last state, so retention keeps a window of transaction history.
		last := txn.CreationTimestamp.Time
		if txn.Status.ObservedAt != nil {
			last = txn.Status.ObservedAt.Time
		}
		if expireIn = last.Add(retention).Sub(r.Now()); expireIn <= 0 {
			// Precondition on the resourceVersion: a transaction that changed since it was read is kept.
			err := r.Delete(ctx, txn, client.Preconditions{ResourceVersion: &txn.ResourceVersion})
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}

	redeliver, err := takeRedeliver(ctx, r.Client, txn)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := txn.DeepCopy()
	if redeliver {
		resetCursors(txn.Status.Deliveries)
	}
	var next time.Duration
	if r.Projector != nil && ep != nil {
		next = r.Projector.Project(ctx, ep, projected{obj: txn, eventType: cardsv1alpha1.EventTransactionUpdated,
			sequence: txn.Status.StateSequence, deliveries: &txn.Status.Deliveries, conditions: &txn.Status.Conditions,
			data: projectionData(before)})
	}
	if !equality.Semantic.DeepEqual(before.Status, txn.Status) {
		if err := r.Status().Patch(ctx, txn, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if expireIn > 0 {
		next = earliest(next, expireIn)
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// Settled reports whether a transaction has reached a final phase.
func Settled(p cardsv1alpha1.TransactionPhase) bool {
	switch p {
	case cardsv1alpha1.TransactionCompleted, cardsv1alpha1.TransactionDeclined, cardsv1alpha1.TransactionReversed,
		cardsv1alpha1.TransactionRefunded, cardsv1alpha1.TransactionFailed, cardsv1alpha1.TransactionExpired,
		cardsv1alpha1.TransactionCanceled:
		return true
	}
	return false
}

// endpoint finds the transaction's WebhookEndpoint through its card; nil when either is gone.
func (r *CardTransactionReconciler) endpoint(ctx context.Context, txn *cardsv1alpha1.CardTransaction) (*cardsv1alpha1.WebhookEndpoint, error) {
	card := &cardsv1alpha1.Card{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: txn.Namespace, Name: txn.Spec.CardRef.Name}, card); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: card.Spec.EndpointRef.Namespace, Name: card.Spec.EndpointRef.Name}, ep); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return ep, nil
}

// SetupWithManager registers the reconciler.
func (r *CardTransactionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).For(&cardsv1alpha1.CardTransaction{}).Named("cardtransaction").Complete(r)
}
