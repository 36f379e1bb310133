package controllers

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/projection"
	"github.com/cardplane/cardplane/internal/totals"
)

// DefaultTransactionRetention is how long settled or failed transactions are kept when the endpoint does not say.
const DefaultTransactionRetention = 90 * 24 * time.Hour

// CardTransactionReconciler adds settled transactions the receiver did not count (written by hand, or by an
// earlier release) to their card's running totals, and deletes settled transactions older than the endpoint's
// retention, so etcd does not grow without bound. Delivery to destinations is projection.Dispatcher's.
type CardTransactionReconciler struct {
	client.Client
	Now func() time.Time
}

// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cardtransactions,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=cards.cardplane.io,resources=cardtransactions/status,verbs=get;patch

// Reconcile runs the phases of one CardTransaction: totals, retention.
func (r *CardTransactionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return requeueOnConflict(r.reconcile(ctx, req))
}

func (r *CardTransactionReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	txn := &cardsv1alpha1.CardTransaction{}
	if err := r.Get(ctx, req.NamespacedName, txn); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if err := r.reconcileTotals(ctx, txn); err != nil {
		return ctrl.Result{}, err
	}
	ep, err := projection.EndpointOf(ctx, r.Client, txn)
	if err != nil {
		return ctrl.Result{}, err
	}
	expireIn, err := r.reconcileRetention(ctx, txn, ep)
	if err != nil || expireIn <= 0 || expireIn > RetentionRecheck {
		// Deleted (or failed to be), never due, or due after the cache's next resync reconciles it again.
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: expireIn}, nil
}

// RetentionRecheck is how far ahead a transaction's deletion is scheduled in the work queue. One due later
// is left to the cache's periodic resync, which must come sooner (cmd/cardplane sets SyncPeriod to 10 h): a
// queue holding every transaction for its 90 days cost about 190 bytes each (bench/load's heap profile).
const RetentionRecheck = 12 * time.Hour

// reconcileTotals adds a settled transaction to its card's running totals, then marks it counted. The receiver
// does both as it writes a transaction settled; this covers transactions it did not write. The card remembers
// the latest transactions it added, so a crash between the two writes never counts one twice.
func (r *CardTransactionReconciler) reconcileTotals(ctx context.Context, txn *cardsv1alpha1.CardTransaction) error {
	if !totals.Settled(txn.Status.Phase) || totals.Counted(txn) {
		return nil
	}
	card := &cardsv1alpha1.Card{}
	err := r.Get(ctx, client.ObjectKey{Namespace: txn.Namespace, Name: txn.Spec.CardRef.Name}, card)
	if client.IgnoreNotFound(err) != nil {
		return err
	}
	if err == nil {
		first := true
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if !first {
				if err := r.Get(ctx, client.ObjectKeyFromObject(card), card); err != nil {
					return err
				}
			}
			first = false
			before := card.DeepCopy()
			if !totals.Add(&card.Status, txn) {
				return nil
			}
			return r.Status().Patch(ctx, card, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner)
		})
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("adding %s to the totals of card %s: %w", txn.Name, card.Name, err)
		}
	}
	before := txn.DeepCopy()
	now := metav1.NewTime(r.Now())
	txn.Status.CountedAt = &now
	return client.IgnoreNotFound(r.Status().Patch(ctx, txn, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner))
}

// reconcileRetention deletes a counted, settled transaction older than the retention, counted from the provider
// time of its last state. It returns how long until that is due (0: never), or -1 once it deleted it.
func (r *CardTransactionReconciler) reconcileRetention(ctx context.Context, txn *cardsv1alpha1.CardTransaction, ep *cardsv1alpha1.WebhookEndpoint) (time.Duration, error) {
	if !totals.Settled(txn.Status.Phase) || !totals.Counted(txn) {
		return 0, nil
	}
	retention := DefaultTransactionRetention
	if ep != nil && ep.Spec.TransactionRetention != nil && ep.Spec.TransactionRetention.Duration > 0 {
		retention = ep.Spec.TransactionRetention.Duration
	}
	last := txn.CreationTimestamp.Time
	if txn.Status.ObservedAt != nil {
		last = txn.Status.ObservedAt.Time
	}
	if expireIn := last.Add(retention).Sub(r.Now()); expireIn > 0 {
		return expireIn, nil
	}
	// Precondition on the resourceVersion: a transaction that changed since it was read is kept.
	err := r.Delete(ctx, txn, client.Preconditions{ResourceVersion: &txn.ResourceVersion})
	return -1, client.IgnoreNotFound(err)
}

// SetupWithManager registers the reconciler.
func (r *CardTransactionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).For(&cardsv1alpha1.CardTransaction{}).Named("cardtransaction").
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).Complete(r)
}
