package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/text"
)

// fieldOwner is the field manager of the projection's own writes (the redeliver annotation's removal).
const fieldOwner = client.FieldOwner("cardplane-controller")

// Retry policy defaults of a destination.
const (
	defaultMaxAttempts = 12
	defaultMinBackoff  = time.Second
	defaultMaxBackoff  = 5 * time.Minute
)

// Projector delivers the latest state of an object to the destinations of its WebhookEndpoint. Each object's
// status carries a cursor per destination (the last delivered stateSequence), so delivery resumes after a
// restart exactly where it stopped; deliveries are at least once, and every attempt of one state carries the
// same webhook-id (object UID and sequence) for consumers to deduplicate.
type Projector struct {
	Reader client.Reader
	// APIReader, when set, re-reads an object from the API server before a delivery is made: the cache may
	// not yet show the cursor a previous delivery wrote, and delivering from it would send a duplicate.
	APIReader client.Reader
	Sender    *Sender
	Recorder  events.EventRecorder
	Now       func() time.Time
}

// Target is what Project needs of a Card or CardTransaction: the object, its state sequence, and its delivery
// cursors and conditions (updated in place).
type Target struct {
	Object     client.Object
	EventType  cardsv1alpha1.DestinationEventType
	Sequence   int64
	Deliveries *[]cardsv1alpha1.DeliveryCursor
	Conditions *[]metav1.Condition
}

// CardTarget is the projection target of a Card.
func CardTarget(c *cardsv1alpha1.Card) Target {
	return Target{Object: c, EventType: cardsv1alpha1.EventCardUpdated, Sequence: c.Status.StateSequence,
		Deliveries: &c.Status.Deliveries, Conditions: &c.Status.Conditions}
}

// TransactionTarget is the projection target of a CardTransaction.
func TransactionTarget(t *cardsv1alpha1.CardTransaction) Target {
	return Target{Object: t, EventType: cardsv1alpha1.EventTransactionUpdated, Sequence: t.Status.StateSequence,
		Deliveries: &t.Status.Deliveries, Conditions: &t.Status.Conditions}
}

func wants(d *cardsv1alpha1.Destination, t cardsv1alpha1.DestinationEventType) bool {
	if len(d.EventTypes) == 0 {
		return t != cardsv1alpha1.EventChallengeOTP
	}
	return slices.Contains(d.EventTypes, t)
}

// Fresh re-reads obj from the API server when one of ep's destinations is due a delivery according to the
// (possibly stale) cached copy.
func (p *Projector) Fresh(ctx context.Context, ep *cardsv1alpha1.WebhookEndpoint, x Target) error {
	if p.APIReader == nil || ep == nil || x.Sequence == 0 {
		return nil
	}
	for i := range ep.Spec.Destinations {
		d := &ep.Spec.Destinations[i]
		if c := find(*x.Deliveries, d.Name); wants(d, x.EventType) && (c == nil || c.DeliveredSequence < x.Sequence) {
			return p.APIReader.Get(ctx, client.ObjectKeyFromObject(x.Object), x.Object)
		}
	}
	return nil
}

// Project delivers what is due and updates the cursors and the ProjectionFailed condition in place.
// It returns how long until the next attempt is due (0: nothing pending).
func (p *Projector) Project(ctx context.Context, ep *cardsv1alpha1.WebhookEndpoint, x Target, data any) time.Duration {
	if x.Sequence == 0 {
		return 0 // no observed state yet
	}
	now := p.Now()
	var next time.Duration
	failed := []string{}
	for i := range ep.Spec.Destinations {
		d := &ep.Spec.Destinations[i]
		if !wants(d, x.EventType) {
			continue
		}
		if c := find(*x.Deliveries, d.Name); c != nil && c.DeliveredSequence >= x.Sequence {
			continue
		}
		cur := cursor(x.Deliveries, d.Name)
		maxAttempts, minB, maxB := policy(d)
		if cur.AttemptedSequence != x.Sequence {
			cur.AttemptedSequence, cur.Attempts = x.Sequence, 0
		}
		if cur.Attempts >= maxAttempts {
			failed = append(failed, fmt.Sprintf("%s: %s", d.Name, cur.LastError))
			continue
		}
		if cur.Attempts > 0 && cur.LastAttemptTime != nil {
			due := cur.LastAttemptTime.Add(backoff(cur.Attempts, minB, maxB))
			if wait := due.Sub(now); wait > 0 {
				next = Earliest(next, wait)
				continue
			}
		}
		err := p.deliver(ctx, ep, d, x, data)
		t := metav1.NewTime(now)
		cur.LastAttemptTime = &t
		if err == nil {
			cur.DeliveredSequence, cur.Attempts, cur.LastError = x.Sequence, 0, ""
			continue
		}
		cur.Attempts++
		cur.LastError = text.Clip(err.Error(), 512)
		if cur.Attempts >= maxAttempts {
			failed = append(failed, fmt.Sprintf("%s: %s", d.Name, cur.LastError))
			p.Recorder.Eventf(x.Object, nil, corev1.EventTypeWarning, cardsv1alpha1.EventProjectionFailed, "Deliver",
				"gave up delivering state %d to destination %s after %d attempts: %s", x.Sequence, d.Name, cur.Attempts, cur.LastError)
			continue
		}
		wait := backoff(cur.Attempts, minB, maxB)
		var perr *Error
		if errors.As(err, &perr) && perr.RetryAfter > wait {
			wait = min(perr.RetryAfter, maxB)
		}
		next = Earliest(next, wait)
	}
	cond := metav1.Condition{Type: cardsv1alpha1.ConditionProjectionFailed, Status: metav1.ConditionFalse, Reason: "Delivering",
		Message: "No destination has exhausted its retry budget", ObservedGeneration: x.Object.GetGeneration()}
	if len(failed) > 0 {
		cond.Status, cond.Reason = metav1.ConditionTrue, "RetryBudgetExhausted"
		cond.Message = text.Clip("Not delivered (annotate with "+cardsv1alpha1.AnnotationRedeliver+" to retry): "+fmt.Sprint(failed), 1024)
	}
	if len(failed) > 0 || apimeta.FindStatusCondition(*x.Conditions, cond.Type) != nil {
		apimeta.SetStatusCondition(x.Conditions, cond)
	}
	return next
}

func (p *Projector) deliver(ctx context.Context, ep *cardsv1alpha1.WebhookEndpoint, d *cardsv1alpha1.Destination, x Target, data any) error {
	secret, err := endpointconfig.DestinationSecret(ctx, p.Reader, ep, d)
	if err != nil {
		return err
	}
	body, err := json.Marshal(Envelope{Type: string(x.EventType), Timestamp: p.Now().UTC(), Data: data})
	if err != nil {
		return err
	}
	allowed, err := endpointconfig.AllowedCIDRs(ep)
	if err != nil {
		return err
	}
	timeout := 10 * time.Second
	if d.Timeout != nil {
		timeout = d.Timeout.Duration
	}
	return p.Sender.Send(ctx, Message{
		ID:   fmt.Sprintf("%s-%d", x.Object.GetUID(), x.Sequence),
		Body: body, URL: d.URL, Secret: secret, Timeout: timeout, AllowedCIDRs: allowed,
	})
}

func find(list []cardsv1alpha1.DeliveryCursor, name string) *cardsv1alpha1.DeliveryCursor {
	for i := range list {
		if list[i].Destination == name {
			return &list[i]
		}
	}
	return nil
}

func cursor(list *[]cardsv1alpha1.DeliveryCursor, name string) *cardsv1alpha1.DeliveryCursor {
	if c := find(*list, name); c != nil {
		return c
	}
	*list = append(*list, cardsv1alpha1.DeliveryCursor{Destination: name})
	return &(*list)[len(*list)-1]
}

// ResetCursors makes every destination receive the current state again (the redeliver annotation).
func ResetCursors(list []cardsv1alpha1.DeliveryCursor) {
	for i := range list {
		list[i].DeliveredSequence, list[i].Attempts, list[i].AttemptedSequence, list[i].LastError = 0, 0, 0, ""
	}
}

func policy(d *cardsv1alpha1.Destination) (int32, time.Duration, time.Duration) {
	maxAttempts, minB, maxB := int32(defaultMaxAttempts), defaultMinBackoff, defaultMaxBackoff
	if r := d.Retry; r != nil {
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

// Earliest is the sooner of two waits, where 0 means none.
func Earliest(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

// Data is the object as delivered: without managed fields and without the delivery cursors.
func Data(obj client.Object) any {
	data, _ := json.Marshal(obj)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "managedFields")
	}
	if st, ok := m["status"].(map[string]any); ok {
		delete(st, "deliveries")
	}
	return m
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
