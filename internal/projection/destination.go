package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/text"
)

// destTarget is one destination of a WebhookEndpoint: Standard Webhooks POSTs, signed with the endpoint's
// Secret. A state given up on marks the object ProjectionFailed until a later state is delivered.
type destTarget struct {
	q        *destQueue
	endpoint types.NamespacedName
	dest     string
}

func newDestinationQueue(d *Dispatcher, endpoint types.NamespacedName, dest string, start [kinds]uint64) *destQueue {
	q := newDestQueue(d, endpoint.String()+"/"+dest, destinationMetrics(endpoint, dest), start)
	q.t = &destTarget{q: q, endpoint: endpoint, dest: dest}
	return q
}

func (t *destTarget) retry() (retryPolicy, bool) {
	_, dest := t.q.d.destination(t.endpoint, t.dest)
	if dest == nil {
		return retryPolicy{}, false
	}
	maxAttempts, minB, maxB := policy(dest.Retry)
	return retryPolicy{maxAttempts: maxAttempts, minB: minB, maxB: maxB}, true
}

// prepare signs obj's current state for the destination.
func (t *destTarget) prepare(ctx context.Context, k kind, obj client.Object) (func(context.Context) error, error) {
	d := t.q.d
	ep, dest := d.destination(t.endpoint, t.dest)
	if dest == nil {
		return nil, fmt.Errorf("destination %s was removed", t.q.name)
	}
	typ := eventTypeOf(k, obj, dest.EventTypes)
	if !wants(dest.EventTypes, typ) {
		return nil, nil // the state changed since it was queued (a decision recorded): not for this destination
	}
	secret, err := endpointconfig.DestinationSecret(ctx, d.Secrets, ep, dest)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(Envelope{Type: string(typ), Timestamp: d.Now().UTC(), Data: Data(obj)})
	if err != nil {
		return nil, err
	}
	allowed, err := endpointconfig.AllowedCIDRs(ep)
	if err != nil {
		return nil, err
	}
	timeout := defaultTimeout
	if dest.Timeout != nil && dest.Timeout.Duration > 0 {
		timeout = min(dest.Timeout.Duration, maxTimeout)
	}
	m := Message{ID: eventID(obj), Body: body, URL: dest.URL, Secret: secret, Timeout: timeout, AllowedCIDRs: allowed}
	return func(ctx context.Context) error { return d.Sender.Send(ctx, m) }, nil
}

// eventID is the ID of obj's current state, the same for every attempt and every target.
func eventID(obj client.Object) string { return fmt.Sprintf("%s-%d", obj.GetUID(), sequenceOf(obj)) }

func (t *destTarget) failedPrefix() string { return "destination " + t.dest + ":" }

// succeeded clears the ProjectionFailed condition this destination set on an earlier state.
func (t *destTarget) succeeded(key objectKey, obj client.Object) {
	if c := apimeta.FindStatusCondition(*conditionsOf(obj), cardsv1alpha1.ConditionProjectionFailed); c != nil &&
		c.Status == metav1.ConditionTrue && strings.HasPrefix(c.Message, t.failedPrefix()) {
		t.q.setCondition(key, metav1.Condition{Type: cardsv1alpha1.ConditionProjectionFailed, Status: metav1.ConditionFalse,
			Reason: "Delivered", Message: "Destination " + t.dest + " received a later state"})
	}
}

// gaveUp marks the object ProjectionFailed, with a Warning Event: the redeliver annotation sends it again.
func (t *destTarget) gaveUp(key objectKey, obj client.Object, at attemptState, err error) {
	msg := text.Clip(err.Error(), 512)
	t.q.d.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, cardsv1alpha1.EventProjectionFailed, "Deliver",
		"gave up delivering state %d to destination %s after %d attempts: %s", at.seq, t.dest, at.n, msg)
	t.q.setCondition(key, metav1.Condition{Type: cardsv1alpha1.ConditionProjectionFailed, Status: metav1.ConditionTrue,
		Reason: "RetryBudgetExhausted", Message: text.Clip(fmt.Sprintf("%s state %d not delivered after %d attempts (annotate with %s to retry): %s",
			t.failedPrefix(), at.seq, at.n, cardsv1alpha1.AnnotationRedeliver, msg), 1024)})
}
