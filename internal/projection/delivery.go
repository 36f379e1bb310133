package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
)

// fieldOwner is the field manager of the projection's own writes (the redeliver annotation's removal).
const fieldOwner = client.FieldOwner("cardplane-controller")

// Retry policy defaults of a destination.
const (
	defaultMaxAttempts = 12
	defaultMinBackoff  = time.Second
	defaultMaxBackoff  = 5 * time.Minute
)

// wants reports whether a destination or sink listing types takes events of type t; none listed means
// card.updated and transaction.updated.
func wants(types []cardsv1alpha1.DestinationEventType, t cardsv1alpha1.DestinationEventType) bool {
	if len(types) == 0 {
		return t == cardsv1alpha1.EventCardUpdated || t == cardsv1alpha1.EventTransactionUpdated
	}
	return slices.Contains(types, t)
}

// eventTypeOf is the type obj's current state is delivered as to a destination or sink listing types:
// authorization.decided for a transaction that carries this operator's decision when listed, else the kind's.
func eventTypeOf(k kind, obj client.Object, types []cardsv1alpha1.DestinationEventType) cardsv1alpha1.DestinationEventType {
	if txn, ok := obj.(*cardsv1alpha1.CardTransaction); ok && txn.Status.Authorization != nil &&
		slices.Contains(types, cardsv1alpha1.EventAuthorizationDecided) {
		return cardsv1alpha1.EventAuthorizationDecided
	}
	return k.eventType()
}

// policy reads a retry policy with its defaults: attempts, first and largest backoff.
func policy(r *cardsv1alpha1.RetryPolicy) (int32, time.Duration, time.Duration) {
	maxAttempts, minB, maxB := int32(defaultMaxAttempts), defaultMinBackoff, defaultMaxBackoff
	if r != nil {
		if r.MaxAttempts > 0 {
			maxAttempts = r.MaxAttempts
		}
		if r.MinBackoff != nil && r.MinBackoff.Duration > 0 {
			minB = r.MinBackoff.Duration
		}
		if r.MaxBackoff != nil && r.MaxBackoff.Duration > 0 {
			maxB = r.MaxBackoff.Duration
		}
	}
	return maxAttempts, minB, max(minB, maxB)
}

// backoff is exponential from min, capped at max, with up to 20% jitter so retries of many objects spread out.
func backoff(attempts int32, minB, maxB time.Duration) time.Duration {
	d := time.Duration(float64(minB) * math.Pow(2, float64(attempts-1)))
	if d > maxB || d <= 0 {
		d = maxB
	}
	return wait.Jitter(d, 0.2)
}

// encode is the object as delivered, JSON: without managed fields and without the delivery cursors. It
// marshals a shallow copy once (the cached object is never modified), where decoding into a map to delete
// the two fields cost two more passes over every state for every target.
func encode(obj client.Object) ([]byte, error) {
	switch o := obj.(type) {
	case *cardsv1alpha1.Card:
		c := *o
		c.ManagedFields, c.Status.Deliveries = nil, nil
		return json.Marshal(&c)
	case *cardsv1alpha1.CardTransaction:
		c := *o
		c.ManagedFields, c.Status.Deliveries = nil, nil
		return json.Marshal(&c)
	}
	return nil, fmt.Errorf("cannot deliver a %T", obj)
}

// TakeRedeliver removes the redeliver annotation and reports whether it was there.
func TakeRedeliver(ctx context.Context, c client.Client, obj client.Object) (bool, error) {
	if _, ok := obj.GetAnnotations()[cardsv1alpha1.AnnotationRedeliver]; !ok {
		return false, nil
	}
	patch := client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"`+cardsv1alpha1.AnnotationRedeliver+`":null}}}`))
	if err := c.Patch(ctx, obj, patch, fieldOwner); err != nil {
		return false, err
	}
	return true, nil
}
