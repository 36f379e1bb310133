package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/money"
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
	if r.Projector != nil {
		if err := r.Projector.Fresh(ctx, ep, cardsv1alpha1.EventTransactionUpdated, txn.Status.StateSequence, txn.Status.Deliveries, txn); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if Settled(txn.Status.Phase) && txn.Annotations[cardsv1alpha1.AnnotationCounted] == "" {
		if err := r.count(ctx, txn); err != nil {
			return ctrl.Result{}, err
		}
	}

	retention := DefaultTransactionRetention
	if ep != nil && ep.Spec.TransactionRetention != nil && ep.Spec.TransactionRetention.Duration > 0 {
		retention = ep.Spec.TransactionRetention.Duration
	}
	var expireIn time.Duration
	if Settled(txn.Status.Phase) && txn.Annotations[cardsv1alpha1.AnnotationCounted] != "" {
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

// count adds a settled transaction to its card's running totals, then marks it counted. The card remembers the
// latest transactions it added, so a crash between the two writes never counts one twice.
func (r *CardTransactionReconciler) count(ctx context.Context, txn *cardsv1alpha1.CardTransaction) error {
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
			if !AddToTotals(&card.Status, txn) {
				return nil
			}
			return r.Status().Patch(ctx, card, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner)
		})
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("adding %s to the totals of card %s: %w", txn.Name, card.Name, err)
		}
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+cardsv1alpha1.AnnotationCounted+`":"true"}}}`))
	return client.IgnoreNotFound(r.Patch(ctx, txn, patch, FieldOwner))
}

// AddToTotals adds a settled transaction to a card's totals: every settled transaction is counted, and the
// amount of a Completed one (in the card's currency: the billing amount when there is one) is added to spent
// (debits) or credited (credits). The totals keep the currency of the first amount; amounts in another currency
// are counted but not summed. It reports false when the transaction was added before.
func AddToTotals(st *cardsv1alpha1.CardStatus, txn *cardsv1alpha1.CardTransaction) bool {
	amount := txn.Status.BillingAmount
	if amount == nil {
		amount = txn.Status.Amount
	}
	if st.Totals == nil {
		st.Totals = &cardsv1alpha1.CardTotals{Currency: "USD"}
		if amount != nil {
			st.Totals.Currency = amount.Currency
		}
	}
	t := st.Totals
	if slices.Contains(t.RecentTransactions, txn.Name) {
		return false
	}
	t.Transactions++
	if txn.Status.Phase == cardsv1alpha1.TransactionCompleted && amount != nil && amount.Currency == t.Currency {
		v, err := decimal.NewFromString(string(amount.Value))
		if err == nil {
			switch txn.Status.Direction {
			case cardsv1alpha1.Debit:
				t.Spent = money.Format(decimalOf(t.Spent).Add(v.Abs()), t.Currency)
			case cardsv1alpha1.Credit:
				t.Credited = money.Format(decimalOf(t.Credited).Add(v.Abs()), t.Currency)
			}
		}
	}
	t.RecentTransactions = append(t.RecentTransactions, txn.Name)
	if n := len(t.RecentTransactions); n > 64 {
		t.RecentTransactions = t.RecentTransactions[n-64:]
	}
	return true
}

func decimalOf(d cardsv1alpha1.Decimal) decimal.Decimal {
	v, err := decimal.NewFromString(string(d))
	if err != nil {
		return decimal.Zero
	}
	return v
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
