package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/projection"
)

// projectionPhase is the projection step the Card and CardTransaction reconcilers share: find the object's
// endpoint, honour the redeliver annotation, deliver what is due and keep the cursors in status.
type projectionPhase struct {
	client.Client
	projector *projection.Projector
	ep        *cardsv1alpha1.WebhookEndpoint // nil: projection off, or the endpoint is gone
	// endpointErr is a failure to read the endpoint other than NotFound: the other phases still run and the
	// reconcile is retried.
	endpointErr error
	reset       bool // the redeliver annotation was taken
}

func newProjectionPhase(c client.Client, p *projection.Projector) *projectionPhase {
	return &projectionPhase{Client: c, projector: p}
}

// prepare reads the endpoint of obj, re-reads obj when a delivery is due (the cache may lag the last cursor
// write) and takes the redeliver annotation. It runs before the reconciler copies obj for its status patch.
func (p *projectionPhase) prepare(ctx context.Context, obj client.Object, x projection.Target) error {
	if p.projector != nil {
		p.ep, p.endpointErr = endpointOf(ctx, p.Client, obj)
		if err := p.projector.Fresh(ctx, p.ep, x); err != nil {
			return err
		}
	}
	var err error
	p.reset, err = projection.TakeRedeliver(ctx, p.Client, obj)
	return err
}

// redeliver resets the cursors when the redeliver annotation was taken, so every destination gets the current
// state again.
func (p *projectionPhase) redeliver(x projection.Target) {
	if p.reset {
		projection.ResetCursors(*x.Deliveries)
	}
}

// reconcile delivers the object's due state (as it was read) and returns when to try again.
func (p *projectionPhase) reconcile(ctx context.Context, x projection.Target, asRead client.Object) time.Duration {
	if p.projector == nil || p.ep == nil {
		return 0
	}
	return p.projector.Project(ctx, p.ep, x, projection.Data(asRead))
}

// endpointOf finds the WebhookEndpoint of a card, or of a transaction's card; nil when either is gone.
func endpointOf(ctx context.Context, c client.Reader, obj client.Object) (*cardsv1alpha1.WebhookEndpoint, error) {
	card, ok := obj.(*cardsv1alpha1.Card)
	if txn, isTxn := obj.(*cardsv1alpha1.CardTransaction); isTxn {
		card, ok = &cardsv1alpha1.Card{}, true
		if err := c.Get(ctx, client.ObjectKey{Namespace: txn.Namespace, Name: txn.Spec.CardRef.Name}, card); err != nil {
			return nil, client.IgnoreNotFound(err)
		}
	}
	if !ok {
		return nil, nil
	}
	ep := &cardsv1alpha1.WebhookEndpoint{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: card.Spec.EndpointRef.Namespace, Name: card.Spec.EndpointRef.Name}, ep); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if target := endpointconfig.TargetNamespace(ep); card.Namespace != target {
		// A card outside the namespace its endpoint writes to was not written by that endpoint: anyone who
		// may create a Card could point it at another team's endpoint, whose destinations and signing keys
		// must not serve it.
		logf.FromContext(ctx).Info("Ignoring a card that names an endpoint writing to another namespace", "endpoint", klog.KObj(ep), "targetNamespace", target)
		return nil, nil
	}
	return ep, nil
}

// conflictRequeue is how soon a reconcile whose status write met a newer version runs again. The write that
// conflicted also triggers a reconcile; this is the floor.
const conflictRequeue = 200 * time.Millisecond

// requeueOnConflict turns a write conflict into a quiet requeue: another writer (the receiver, on a busy card)
// got there first, which is normal and no error; the next reconcile starts from fresh state.
func requeueOnConflict(res ctrl.Result, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRequeue}, nil
	}
	return res, err
}

// patchStatus writes obj's status when it differs from before, under the resourceVersion it was read at. A
// conflict (the receiver wrote meanwhile) is not an error: the reconcile runs again on fresh state.
func patchStatus(ctx context.Context, c client.Client, before, obj client.Object) (ctrl.Result, error) {
	if equality.Semantic.DeepEqual(before, obj) {
		return ctrl.Result{}, nil
	}
	err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), FieldOwner)
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRequeue}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(err)
}
