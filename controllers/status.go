package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

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
